// The learning switch's metrics, from the per-port counters it keeps anyway: frames and bytes
// each way, floods, drops, the MAC table's size, and each VXLAN port's own counters.
import type { LearningSwitch } from '../l2/switch.js';
import type { VxlanStats } from '../l2/vxlan.js';
import { MetricFamily, snakeCase } from './prometheus.js';

export function bridgeFamilies(sw: LearningSwitch, vxlan: ReadonlyMap<string, () => VxlanStats>): MetricFamily[] {
  const frames = new MetricFamily('tuntap_bridge_frames_total', 'counter', 'Frames received (rx) and sent (tx) on the port');
  const bytes = new MetricFamily('tuntap_bridge_bytes_total', 'counter', 'Bytes of the frames received (rx) and sent (tx) on the port');
  const floods = new MetricFamily('tuntap_bridge_flooded_frames_total', 'counter',
    'Frames received on the port and flooded (unknown unicast, broadcast, multicast)');
  const drops = new MetricFamily('tuntap_bridge_dropped_frames_total', 'counter',
    'Frames dropped: rx on arrival (malformed, outside the port\'s VLANs), tx on the way out');
  const filtered = new MetricFamily('tuntap_bridge_filtered_frames_total', 'counter',
    'Frames received on the port for a MAC behind that same port (not sent back)');
  for (const [port, s] of Object.entries(sw.stats())) {
    frames.add({ port, direction: 'rx' }, s.rxFrames).add({ port, direction: 'tx' }, s.txFrames);
    bytes.add({ port, direction: 'rx' }, s.rxBytes).add({ port, direction: 'tx' }, s.txBytes);
    floods.add({ port }, s.floods);
    drops.add({ port, direction: 'rx' }, s.drops).add({ port, direction: 'tx' }, s.txDrops);
    filtered.add({ port }, s.filtered);
  }
  const vxlanPackets = new MetricFamily('tuntap_bridge_vxlan_packets_total', 'counter', 'VXLAN datagrams received (rx) and sent (tx)');
  const vxlanErrors = new MetricFamily('tuntap_bridge_vxlan_errors_total', 'counter', 'VXLAN datagrams dropped or not sent, by reason');
  for (const [port, stats] of vxlan) {
    const { rxPackets, txPackets, ...errors } = stats();
    vxlanPackets.add({ port, direction: 'rx' }, rxPackets).add({ port, direction: 'tx' }, txPackets);
    for (const [reason, n] of Object.entries(errors)) vxlanErrors.add({ port, reason: snakeCase(reason) }, n);
  }
  return [
    frames, bytes, floods, drops, filtered,
    new MetricFamily('tuntap_bridge_fdb_entries', 'gauge', 'Entries in the MAC table (learned and static)').add({}, sw.macCount),
    new MetricFamily('tuntap_bridge_fdb_refused_total', 'counter', 'MACs not learned because the table was full').add({}, sw.macsRefused),
    vxlanPackets, vxlanErrors,
  ];
}
