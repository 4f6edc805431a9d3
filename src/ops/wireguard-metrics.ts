// A WireGuard interface's metrics. The per-peer families carry the names, types and labels of
// prometheus_wireguard_exporter (interface, public_key, allowed_ips; remote_ip and remote_port
// once the endpoint is known), so dashboards made for it work unchanged; the engine's own
// counters follow under tuntap_wireguard_. Everything is read from counters the engine and the
// interface keep anyway: a scrape costs a walk over the peers, the data path nothing.
import type { WireGuardInterface } from '../wireguard/interface.js';
import { keyToBase64 } from '../wireguard/crypto.js';
import { MetricFamily, snakeCase } from './prometheus.js';

export function wireguardFamilies(iface: WireGuardInterface): MetricFamily[] {
  const engine = iface.engine;
  const sent = new MetricFamily('wireguard_sent_bytes_total', 'counter', 'Bytes sent to the peer');
  const received = new MetricFamily('wireguard_received_bytes_total', 'counter', 'Bytes received from the peer');
  const handshake = new MetricFamily('wireguard_latest_handshake_seconds', 'gauge', 'Seconds from the last handshake');
  for (const peer of engine.peers.values()) {
    const allowed = engine.allowedIps.entries(peer).map((e) => e.cidr);
    const labels: Record<string, string> = {
      interface: iface.name,
      public_key: keyToBase64(peer.publicKey),
      // As `wg show dump` prints them, which is what the exporter passes on.
      allowed_ips: allowed.length ? allowed.join(',') : '(none)',
    };
    if (peer.endpoint) {
      labels.remote_ip = peer.endpoint.address;
      labels.remote_port = String(peer.endpoint.port);
    }
    sent.add(labels, peer.txBytes);
    received.add(labels, peer.rxBytes);
    // A Unix time despite the help text (the exporter's own wording, kept for compatibility).
    handshake.add(labels, Math.floor(peer.lastHandshake / 1000));
  }
  const interfaceLabel = { interface: iface.name };
  const st = engine.stats;
  const dropped = new MetricFamily('tuntap_wireguard_dropped_packets_total', 'counter', 'Packets dropped, by reason');
  for (const [reason, n] of Object.entries(st.dropped)) dropped.add({ ...interfaceLabel, reason: snakeCase(reason) }, n);
  const sentReceived = (name: string, help: string, sentCount: number, receivedCount: number) =>
    new MetricFamily(name, 'counter', help)
      .add({ ...interfaceLabel, direction: 'sent' }, sentCount)
      .add({ ...interfaceLabel, direction: 'received' }, receivedCount);
  const counters = new MetricFamily('tuntap_wireguard_interface_events_total', 'counter',
    'Batches, offload splits and merges, and failed sends and writes of the interface, by event');
  for (const [event, n] of Object.entries(iface.counters)) counters.add({ ...interfaceLabel, event: snakeCase(event) }, n);
  return [
    sent, received, handshake,
    // (The exporter's newer wireguard_peers_total is left out: a gauge named _total, which
    // Prometheus's own checker refuses.)
    new MetricFamily('tuntap_wireguard_peers', 'gauge', 'Peers configured').add(interfaceLabel, engine.peers.size),
    dropped,
    sentReceived('tuntap_wireguard_handshake_initiations_total', 'Handshake initiations', st.handshakeInitiationsSent, st.handshakeInitiationsReceived),
    sentReceived('tuntap_wireguard_handshake_responses_total', 'Handshake responses', st.handshakeResponsesSent, st.handshakeResponsesReceived),
    sentReceived('tuntap_wireguard_cookie_replies_total', 'Cookie replies (sent to sources asked to prove their address under load)', st.cookieRepliesSent, st.cookieRepliesReceived),
    sentReceived('tuntap_wireguard_keepalives_total', 'Keepalive messages', st.keepalivesSent, st.keepalivesReceived),
    sentReceived('tuntap_wireguard_data_packets_total', 'Data packets carried through the tunnel', st.dataPacketsSent, st.dataPacketsReceived),
    counters,
  ];
}
