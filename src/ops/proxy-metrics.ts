// tun2socks/tun2http metrics, from the counters the proxy keeps anyway (its stats() and session
// states): sessions by protocol and state, bytes each way, failures by kind and errno, DNS
// answers, and the NAT's and the packet loop's drops.
import type { TunProxy } from '../proxy/engine.js';
import { MetricFamily, snakeCase } from './prometheus.js';

export function proxyFamilies(proxy: TunProxy, iface: string): MetricFamily[] {
  const s = proxy.stats();
  const states = proxy.sessionStates();
  const l = { interface: iface };
  const failures = new MetricFamily('tuntap_proxy_failures_total', 'counter',
    'Failures on the side paths, by kind (accept, connect: the upstream, udp, dns) and errno name or reason');
  for (const [kind, byCode] of Object.entries(s.failures)) {
    for (const [code, n] of Object.entries(byCode)) failures.add({ ...l, kind, code }, n);
  }
  const nat = new MetricFamily('tuntap_proxy_nat_events_total', 'counter', 'TCP NAT events, by event');
  for (const [event, n] of Object.entries(s.nat)) nat.add({ ...l, event: snakeCase(event) }, n);
  return [
    new MetricFamily('tuntap_proxy_sessions', 'gauge', 'Sessions now, by protocol and state')
      .add({ ...l, protocol: 'tcp', state: 'connecting' }, states.connecting)
      .add({ ...l, protocol: 'tcp', state: 'open' }, states.open)
      .add({ ...l, protocol: 'udp', state: 'open' }, s.udpSessions),
    new MetricFamily('tuntap_proxy_nat_entries', 'gauge', 'TCP NAT entries now (sessions and handshakes in progress)').add(l, s.natEntries),
    new MetricFamily('tuntap_proxy_connections_total', 'counter', 'TCP connections accepted').add(l, s.connectionsTotal),
    new MetricFamily('tuntap_proxy_bytes_total', 'counter',
      'Bytes sent up to and received down from the upstream on TCP sessions (a proxy\'s handshake included)')
      .add({ ...l, direction: 'up' }, s.bytesUp)
      .add({ ...l, direction: 'down' }, s.bytesDown),
    new MetricFamily('tuntap_proxy_udp_datagrams_total', 'counter', 'UDP datagrams relayed, up and down')
      .add({ ...l, direction: 'up' }, s.udpSent)
      .add({ ...l, direction: 'down' }, s.udpReceived),
    failures,
    new MetricFamily('tuntap_proxy_dns_queries_total', 'counter', 'DNS queries seen on the TUN').add(l, s.dnsQueries),
    new MetricFamily('tuntap_proxy_dns_answers_total', 'counter', 'DNS answers made here, by source (fake_ip, servfail: the fake-IP pool; tcp: carried over TCP)')
      .add({ ...l, source: 'fake_ip' }, s.dnsFake)
      .add({ ...l, source: 'servfail' }, s.dnsServfail)
      .add({ ...l, source: 'tcp' }, s.dnsOverTcpAnswered),
    new MetricFamily('tuntap_proxy_packets_total', 'counter', 'Packets read from and written to the TUN')
      .add({ ...l, direction: 'in' }, s.packetsIn)
      .add({ ...l, direction: 'out' }, s.packetsOut),
    new MetricFamily('tuntap_proxy_dropped_packets_total', 'counter', 'Packets dropped outside the NAT, by reason')
      .add({ ...l, reason: 'unhandled' }, s.dropped)
      .add({ ...l, reason: 'foreign_source' }, s.foreign)
      .add({ ...l, reason: 'udp_unsolicited' }, s.udpUnsolicited)
      .add({ ...l, reason: 'udp_relay' }, s.udpDropped),
    nat,
  ];
}
