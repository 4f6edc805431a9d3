// A mixed sample of frames for filter and fuzz tests: Ethernet/VLAN/ARP/IPv4/IPv6 with TCP,
// UDP, ICMP, fragments, options and truncations, plus the raw-IP (TUN) form of each IP frame.
import {
  buildEthernet, buildArp, buildIpv4, buildIpv6, buildTcp, buildUdp, buildIcmp, buildIcmpv6, ndToIcmpv6, linkLayerOption,
  fragmentExtension, optionsExtension, echoBody, parseMac, TcpFlags, type EthernetRepr,
} from '../../src/packet/index.js';

export interface Sample { frame: Uint8Array; raw?: Uint8Array; tagged: boolean; truncated: boolean }

const v4 = ['198.18.0.1', '198.18.0.2', '198.19.7.9', '198.18.200.3'];
const v6 = ['fd00::1', 'fd00::2', 'fd00:1::77', 'fd01:abcd::9'];
const ports = [22, 53, 80, 443, 1000, 5353, 8080, 40000];

export function corpus(): Sample[] {
  const out: Sample[] = [];
  const ipPackets: Uint8Array[] = [];
  let k = 0;
  for (let i = 0; i < v4.length; i++) {
    for (let j = 0; j < v4.length; j++) {
      if (i === j) continue;
      const ip = { src: v4[i]!, dst: v4[j]! };
      const sp = ports[(k++) % ports.length]!; const dp = ports[(k * 3) % ports.length]!;
      ipPackets.push(buildIpv4({ ...ip, protocol: 6, payload: buildTcp({ srcPort: sp, dstPort: dp, seq: 1, ack: 2, flags: TcpFlags.ACK, window: 9, payload: new Uint8Array(10) }, ip) }));
      ipPackets.push(buildIpv4({ ...ip, protocol: 17, payload: buildUdp({ srcPort: dp, dstPort: sp, payload: new Uint8Array(5) }, ip) }));
      ipPackets.push(buildIpv4({ ...ip, protocol: 1, payload: buildIcmp({ type: 8, code: 0, identifier: 1, sequence: k, payload: new Uint8Array(8) }) }));
      ipPackets.push(buildIpv4({ ...ip, protocol: 6, options: Uint8Array.from([1, 1, 1, 0]), payload: buildTcp({ srcPort: 80, dstPort: sp, seq: 1, ack: 2, flags: TcpFlags.SYN, window: 9, payload: new Uint8Array(0) }, ip) }));
      ipPackets.push(buildIpv4({ ...ip, protocol: 17, fragmentOffset: 1480, payload: new Uint8Array(40).fill(0x50) }));
      ipPackets.push(buildIpv4({ ...ip, protocol: 132, payload: Uint8Array.from([0, 80, 0x1f, 0x90, 0, 0, 0, 0, 0, 0, 0, 0]) }));
    }
  }
  for (let i = 0; i < v6.length; i++) {
    for (let j = 0; j < v6.length; j++) {
      if (i === j) continue;
      const ip = { src: v6[i]!, dst: v6[j]! };
      const sp = ports[(k++) % ports.length]!; const dp = ports[(k * 5) % ports.length]!;
      ipPackets.push(buildIpv6({ ...ip, protocol: 6, payload: buildTcp({ srcPort: sp, dstPort: dp, seq: 1, ack: 2, flags: TcpFlags.ACK, window: 9, payload: new Uint8Array(3) }, ip) }));
      ipPackets.push(buildIpv6({ ...ip, protocol: 17, payload: buildUdp({ srcPort: dp, dstPort: sp, payload: new Uint8Array(5) }, ip) }));
      ipPackets.push(buildIpv6({ ...ip, protocol: 58, payload: buildIcmpv6({ type: 128, code: 0, body: echoBody(1, k) }, ip) }));
      ipPackets.push(buildIpv6({ ...ip, protocol: 58, hopLimit: 255, payload: buildIcmpv6(ndToIcmpv6({ kind: 'ns', target: v6[j]!, options: [linkLayerOption(1, parseMac('02:00:00:00:00:01'))] }), ip) }));
      ipPackets.push(buildIpv6({ ...ip, protocol: 17, extensions: [optionsExtension(60), fragmentExtension(0, true, 5)], payload: buildUdp({ srcPort: 53, dstPort: 53, payload: new Uint8Array(4) }, ip) }));
    }
  }
  const mac1 = '02:00:00:00:00:01'; const mac2 = '02:00:00:00:00:02';
  const eth = (payload: Uint8Array, etherType: number, vlan?: number): Uint8Array => {
    const r: EthernetRepr = { dst: mac2, src: mac1, etherType, payload, ...(vlan !== undefined ? { vlans: [{ vid: vlan }] } : {}) };
    return buildEthernet(r);
  };
  for (const p of ipPackets) {
    const et = p[0]! >> 4 === 4 ? 0x0800 : 0x86dd;
    out.push({ frame: eth(p, et), raw: p, tagged: false, truncated: false });
    out.push({ frame: eth(p, et, 100 + (p.length % 3)), tagged: true, truncated: false });
    const cut = Math.max(1, Math.floor(p.length * 0.6));
    out.push({ frame: eth(p, et).subarray(0, 14 + cut), raw: p.subarray(0, cut), tagged: false, truncated: true });
    out.push({ frame: eth(p, et).subarray(0, 14 + Math.min(p.length, (p[0]! >> 4 === 4 ? 22 : 41))), raw: p.subarray(0, Math.min(p.length, 22)), tagged: false, truncated: true });
  }
  for (let i = 0; i < v4.length; i++) {
    const arp = buildArp({ operation: 1 + (i % 2), senderMac: mac1, senderIp: v4[i]!, targetMac: '00:00:00:00:00:00', targetIp: v4[(i + 1) % v4.length]! });
    out.push({ frame: eth(arp, 0x0806), tagged: false, truncated: false });
    out.push({ frame: eth(arp, 0x0806, 7), tagged: true, truncated: false });
    out.push({ frame: buildEthernet({ dst: mac1, src: mac2, etherType: 0x0806, payload: arp }), tagged: false, truncated: false });
  }
  out.push({ frame: eth(new Uint8Array(46), 0x88cc), tagged: false, truncated: false });
  out.push({ frame: new Uint8Array(10), tagged: false, truncated: true });
  return out;
}

export const expressions = [
  'ip', 'ip6', 'arp', 'tcp', 'udp', 'icmp', 'icmp6', 'vlan', 'vlan 100',
  'host 198.18.0.1', 'src host 198.18.0.2', 'dst host 198.19.7.9', 'ip host 198.18.200.3', 'arp host 198.18.0.2',
  'host fd00::1', 'src fd00:1::77', 'dst host fd01:abcd::9', 'ip6 host fd00::2',
  'net 198.18.0.0/24', 'src net 198.19.0.0/16', 'dst net 198.18.0.0/15', 'net fd00::/16', 'net fd00:1::/32', 'net fd00::/8',
  'port 80', 'src port 53', 'dst port 8080', 'tcp port 443', 'udp port 53', 'tcp dst port 22', 'udp src port 5353',
  'portrange 1000-9000', 'tcp portrange 20-80', 'dst portrange 40000-65535',
  'tcp and port 80', 'not tcp', 'not port 53', 'icmp or icmp6', 'host 198.18.0.1 and not port 22',
  '(tcp or udp) and (host 198.18.0.1 or host fd00::1)', 'host 198.18.0.1 or 198.18.0.2', 'port 80 or 443 or 53',
  '!arp && !(udp || icmp6)', 'ether host 02:00:00:00:00:01', 'ether src 02:00:00:00:00:02', 'ether dst 02:00:00:00:00:02 and ip6',
  'ip and not net 198.18.0.0/24', 'tcp or arp or icmp',
];
