// Whole-frame decoding: walks Ethernet/VLAN → ARP/IPv4/IPv6 → TCP/UDP/ICMP/ICMPv6 with the views
// and returns a plain summary (for tools and tests) or a one-line description in the manner of
// `tcpdump -n -S`. Every length printed comes from the parsed headers: IPv4 options and IPv6
// extension headers count as header, not payload, as tcpdump and tshark count them.
import { PacketParseError } from './errors.js';
import { EthernetView } from './ethernet.js';
import { ArpView } from './arp.js';
import { Ipv4View } from './ipv4.js';
import { Ipv6View } from './ipv6.js';
import { TcpView } from './tcp.js';
import { UdpView } from './udp.js';
import { IcmpView } from './icmp.js';
import { Icmpv6View } from './icmpv6.js';
import { u16, u32 } from './bytes.js';
import { verifyTransportChecksum } from './checksum.js';
import { tcpdumpFlags, tcpOptionsText, icmpText, icmp6Text, ipv6ExtensionText } from './tcpdump-format.js';
import { EtherType, IpProtocol, etherTypeOfIpVersion } from './protocols.js';

export interface FrameSummary {
  length: number;
  ethernet?: { src: string; dst: string; etherType: number; vlans: number[] };
  arp?: { operation: number; senderMac: string; senderIp: string; targetMac: string; targetIp: string };
  ip?: {
    version: 4 | 6; src: string; dst: string; protocol: number; ttl: number; length: number;
    /** Network-layer header bytes: IPv4 with its options, IPv6 with the extension headers walked. */
    headerLength: number;
    /** Bytes after those headers up to the end of the IP payload (the upper layer's length). */
    payloadLength: number;
    /** IPv6 extension headers walked, by protocol number, in order. */
    extensions?: number[];
    id?: number; fragmentOffset?: number; moreFragments?: boolean; headerChecksumOk?: boolean;
  };
  tcp?: { srcPort: number; dstPort: number; seq: number; ack: number; flags: number; window: number; urgent: number; payloadLength: number; checksum: number; checksumOk: boolean; options: ReturnType<TcpView['options']> };
  udp?: { srcPort: number; dstPort: number; length: number; checksum: number; checksumOk: boolean };
  icmp?: { type: number; code: number; checksum: number; checksumOk: boolean; id?: number; seq?: number; target?: string };
  /** The first parse error met (the summary then holds what was decoded before it). */
  error?: string;
}

/** A summary plus where each layer starts in the frame (for describe()). */
interface Walk {
  s: FrameSummary;
  /** Start of the Ethernet payload (0 on raw IP). */
  l3: number;
  /** Start of the upper-layer header, or -1 when the walk did not reach one. */
  l4: number;
  /** End of the IP payload. */
  end: number;
}

const eth = new EthernetView();
const arpView = new ArpView();
const ip4 = new Ipv4View();
const ip6 = new Ipv6View();
const tcpView = new TcpView();
const udpView = new UdpView();
const icmpView = new IcmpView();
const icmp6View = new Icmpv6View();

function walk(frame: Uint8Array, mode: 'ethernet' | 'raw'): Walk {
  const s: FrameSummary = { length: frame.length };
  const w: Walk = { s, l3: 0, l4: -1, end: frame.length };
  try {
    let etherType: number;
    if (mode === 'ethernet') {
      eth.wrap(frame);
      const vlans: number[] = [];
      for (let i = 0; i < eth.vlanCount; i++) vlans.push(eth.vlanId(i));
      s.ethernet = { src: eth.src, dst: eth.dst, etherType: eth.etherType, vlans };
      etherType = eth.etherType;
      w.l3 = eth.payloadOffset;
    } else {
      const v = frame.length > 0 ? frame[0]! >> 4 : 0;
      etherType = etherTypeOfIpVersion(v);
      if (etherType === 0) throw new PacketParseError('ip', `unknown IP version ${v}`);
    }
    const off = w.l3;
    if (etherType === EtherType.ARP) {
      arpView.wrap(frame, off);
      if (arpView.isEthernetIPv4) {
        s.arp = { operation: arpView.operation, senderMac: arpView.senderMac, senderIp: arpView.senderIp, targetMac: arpView.targetMac, targetIp: arpView.targetIp };
      }
      return w;
    }
    let proto: number; let l4: number; let end: number; let whole: boolean;
    if (etherType === EtherType.IPv4) {
      ip4.wrap(frame, off);
      proto = ip4.protocol; l4 = ip4.payloadOffset; end = ip4.payloadEnd;
      s.ip = { version: 4, src: ip4.srcAddress, dst: ip4.dstAddress, protocol: proto, ttl: ip4.ttl, length: ip4.totalLength,
        headerLength: l4 - off, payloadLength: end - l4,
        id: ip4.identification, fragmentOffset: ip4.fragmentOffset, moreFragments: ip4.moreFragments, headerChecksumOk: ip4.verifyChecksum() };
      whole = !ip4.isFragment; // part of a datagram cannot be checksummed
      w.end = end;
      if (ip4.fragmentOffset !== 0) return w;
    } else if (etherType === EtherType.IPv6) {
      ip6.wrap(frame, off);
      proto = ip6.upperProtocol; l4 = ip6.upperOffset; end = ip6.payloadEnd;
      s.ip = { version: 6, src: ip6.srcAddress, dst: ip6.dstAddress, protocol: proto, ttl: ip6.hopLimit, length: 40 + ip6.payloadLength,
        headerLength: l4 - off, payloadLength: end - l4 };
      if (ip6.extensionCount > 0) s.ip.extensions = ip6.extensions().map((e) => e.type);
      if (ip6.isFragment) { s.ip.fragmentOffset = ip6.fragmentOffset; s.ip.moreFragments = ip6.moreFragments; s.ip.id = ip6.fragmentId; }
      whole = !ip6.isFragment;
      w.end = end;
      if (ip6.isFragment && ip6.fragmentOffset !== 0) return w;
    } else return w;
    w.l4 = l4;
    if (proto === IpProtocol.TCP) {
      tcpView.wrap(frame, l4, end);
      s.tcp = { srcPort: tcpView.srcPort, dstPort: tcpView.dstPort, seq: tcpView.seq, ack: tcpView.ack, flags: tcpView.flags,
        window: tcpView.window, urgent: tcpView.urgent, payloadLength: tcpView.payloadLength, checksum: tcpView.checksum,
        checksumOk: whole && verifyTransportChecksum(frame, off, l4, end, IpProtocol.TCP), options: {} };
      s.tcp.options = tcpView.options();
    } else if (proto === IpProtocol.UDP) {
      // A first fragment holds less than the UDP length says: record the header, then check it.
      if (end - l4 >= 8) {
        s.udp = { srcPort: u16(frame, l4), dstPort: u16(frame, l4 + 2), length: u16(frame, l4 + 4), checksum: u16(frame, l4 + 6), checksumOk: false };
        if (!whole) return w;
      }
      udpView.wrap(frame, l4, end);
      s.udp!.checksumOk = (udpView.checksum === 0 && s.ip.version === 4) || verifyTransportChecksum(frame, off, l4, l4 + udpView.length, IpProtocol.UDP);
    } else if (proto === IpProtocol.ICMP && s.ip.version === 4) {
      icmpView.wrap(frame, l4, end);
      s.icmp = { type: icmpView.type, code: icmpView.code, checksum: icmpView.checksum, checksumOk: whole && icmpView.verifyChecksum() };
      if (icmpView.type === 0 || icmpView.type === 8) { s.icmp.id = icmpView.identifier; s.icmp.seq = icmpView.sequence; }
    } else if (proto === IpProtocol.ICMPv6 && s.ip.version === 6) {
      icmp6View.wrap(frame, l4, end);
      s.icmp = { type: icmp6View.type, code: icmp6View.code, checksum: icmp6View.checksum, checksumOk: whole && verifyTransportChecksum(frame, off, l4, end, IpProtocol.ICMPv6) };
      if (icmp6View.type === 128 || icmp6View.type === 129) { s.icmp.id = icmp6View.identifier; s.icmp.seq = icmp6View.sequence; }
      if (icmp6View.type === 135 || icmp6View.type === 136) s.icmp.target = icmp6View.targetAddress;
    }
  } catch (e) {
    if (!(e instanceof PacketParseError)) throw e;
    s.error = e.message;
  }
  return w;
}

/** Decodes a frame ('ethernet' for TAP, 'raw' for TUN: starts at the IP header). */
export function summarize(frame: Uint8Array, mode: 'ethernet' | 'raw'): FrameSummary {
  return walk(frame, mode).s;
}

function tsText(timeNs: bigint): string {
  const d = new Date(Number(timeNs / 1_000_000n));
  const us = String((timeNs / 1000n) % 1_000_000n).padStart(6, '0');
  return `${String(d.getUTCHours()).padStart(2, '0')}:${String(d.getUTCMinutes()).padStart(2, '0')}:${String(d.getUTCSeconds()).padStart(2, '0')}.${us}`;
}

/** The TCP part of a line; `bad` when the options could not be walked (tcpdump ends the line there). */
function tcpText(frame: Uint8Array, l4: number, t: NonNullable<FrameSummary['tcp']>): { text: string; bad: boolean } {
  let text = `Flags [${tcpdumpFlags(t.flags)}]`;
  if (t.payloadLength > 0 || (t.flags & 0x07)) text += `, seq ${t.seq}${t.payloadLength > 0 ? `:${(t.seq + t.payloadLength) >>> 0}` : ''}`;
  if (t.flags & 0x10) text += `, ack ${t.ack}`;
  text += `, win ${t.window}`;
  if (t.flags & 0x20) text += `, urg ${t.urgent}`;
  const headerEnd = l4 + (frame[l4 + 12]! >> 4) * 4;
  if (headerEnd > l4 + 20) {
    const options = tcpOptionsText(frame, l4 + 20, headerEnd);
    text += `, options [${options.text}]`;
    if (options.bad) return { text, bad: true };
  }
  return { text: `${text}, length ${t.payloadLength}`, bad: false };
}

/** "HBH DSTOPT frag (0|1448) " for the extension headers between the IPv6 header and the upper layer. */
function extensionsText(frame: Uint8Array, l3: number, upper: number, payloadEnd: number): string {
  let text = '';
  let nh = frame[l3 + 6]!;
  for (let o = l3 + 40; o < upper;) {
    const len = nh === 44 ? 8 : nh === 51 ? (frame[o + 1]! + 2) * 4 : (frame[o + 1]! + 1) * 8;
    text += ipv6ExtensionText(frame, nh, o, len, payloadEnd);
    nh = frame[o]!;
    o += len;
  }
  return text;
}

/** One line in the manner of `tcpdump -n -S` (UTC time; a TAP frame's line starts with its MACs). */
export function describe(frame: Uint8Array, mode: 'ethernet' | 'raw', timeNs?: bigint): string {
  const { s, l3, l4, end } = walk(frame, mode);
  let head = timeNs !== undefined ? `${tsText(timeNs)} ` : '';
  if (s.ethernet) head += `${s.ethernet.src} > ${s.ethernet.dst}${s.ethernet.vlans.length ? ` vlan ${s.ethernet.vlans.join('.')}` : ''}, `;
  const tail = s.error ? ` [${s.error}]` : '';
  if (s.arp) {
    const a = s.arp;
    const length = frame.length - l3;
    const targetMac = a.targetMac === '00:00:00:00:00:00' ? '' : ` (${a.targetMac})`;
    return head + (a.operation === 1 ? `ARP, Request who-has ${a.targetIp}${targetMac} tell ${a.senderIp}, length ${length}`
      : a.operation === 2 ? `ARP, Reply ${a.senderIp} is-at ${a.senderMac}, length ${length}` : `ARP, op ${a.operation}, length ${length}`) + tail;
  }
  if (!s.ip) {
    return head + (s.ethernet ? `ethertype 0x${s.ethernet.etherType.toString(16).padStart(4, '0')}, length ${s.length}` : `length ${s.length}`) + tail;
  }
  const ip = s.ip;
  let line = `${head}${ip.version === 4 ? 'IP' : 'IP6'} `;
  // IPv6 extension headers are named before the upper layer, whose ports then stand alone.
  const exts = ip.version === 6 && ip.extensions ? extensionsText(frame, l3, l3 + ip.headerLength, end) : '';
  const ports = (sp: number, dp: number) => exts ? `${ip.src} > ${ip.dst}: ${exts}${sp} > ${dp}: ` : `${ip.src}.${sp} > ${ip.dst}.${dp}: `;
  const addrs = `${ip.src} > ${ip.dst}: ${exts}`;
  if (l4 < 0) {
    // A later fragment: no upper-layer header (IPv6 ends with the fragment header's label).
    return ip.version === 4 ? `${line}${ip.src} > ${ip.dst}: ip-proto-${ip.protocol}${tail}` : `${line}${addrs}${tail}`;
  }
  if (s.tcp) {
    // A malformed option is shown in the option list, as tcpdump shows it, not as a tail.
    const t = tcpText(frame, l4, s.tcp);
    return `${line}${ports(s.tcp.srcPort, s.tcp.dstPort)}${t.text}`;
  }
  if (s.udp) {
    const u = s.udp;
    line += ports(u.srcPort, u.dstPort);
    // A UDP length that lies is said in tcpdump's words (a first fragment holds only part of the datagram).
    if (u.length < 8) return `${line}truncated-udplength ${u.length}`;
    if (u.length > ip.payloadLength && !ip.moreFragments) return `${line}UDP, bad length ${u.length - 8} > ${ip.payloadLength - 8}`;
    return `${line}UDP, length ${u.length - 8}${tail}`;
  }
  if (s.icmp) {
    return ip.version === 4 ? `${line}${addrs}ICMP ${icmpText(frame, l4, end)}, length ${ip.payloadLength}${tail}`
      : `${line}${addrs}ICMP6, ${icmp6Text(frame, l4, end)}, length ${ip.payloadLength}${tail}`;
  }
  if (ip.protocol === 50 && ip.payloadLength >= 8) {
    return `${line}${addrs}ESP(spi=0x${u32(frame, l4).toString(16).padStart(8, '0')},seq=0x${u32(frame, l4 + 4).toString(16)}), length ${ip.payloadLength}${tail}`;
  }
  if (ip.version === 6 && ip.protocol === 59) return `${line}${addrs}no next header${tail}`;
  return `${line}${addrs} ip-proto-${ip.protocol} ${ip.payloadLength}${tail}`;
}
