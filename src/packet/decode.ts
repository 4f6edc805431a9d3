// Whole-frame decoding: walks Ethernet/VLAN → ARP/IPv4/IPv6 → TCP/UDP/ICMP/ICMPv6 with the views
// and returns a plain summary (for tools and tests) or a one-line tcpdump -n style description.
import { PacketParseError } from './errors.js';
import { EthernetView } from './ethernet.js';
import { ArpView } from './arp.js';
import { Ipv4View } from './ipv4.js';
import { Ipv6View } from './ipv6.js';
import { TcpView, tcpFlagString } from './tcp.js';
import { UdpView } from './udp.js';
import { IcmpView } from './icmp.js';
import { Icmpv6View } from './icmpv6.js';
import { verifyTransportChecksum } from './checksum.js';

export interface FrameSummary {
  length: number;
  ethernet?: { src: string; dst: string; etherType: number; vlans: number[] };
  arp?: { operation: number; senderMac: string; senderIp: string; targetMac: string; targetIp: string };
  ip?: {
    version: 4 | 6; src: string; dst: string; protocol: number; ttl: number; length: number;
    id?: number; fragmentOffset?: number; moreFragments?: boolean; headerChecksumOk?: boolean;
  };
  tcp?: { srcPort: number; dstPort: number; seq: number; ack: number; flags: number; window: number; payloadLength: number; checksum: number; checksumOk: boolean; options: ReturnType<TcpView['options']> };
  udp?: { srcPort: number; dstPort: number; length: number; checksum: number; checksumOk: boolean };
  icmp?: { type: number; code: number; checksum: number; checksumOk: boolean; id?: number; seq?: number; target?: string };
  /** The first parse error met (the summary then holds what was decoded before it). */
  error?: string;
}

const eth = new EthernetView();
const arpView = new ArpView();
const ip4 = new Ipv4View();
const ip6 = new Ipv6View();
const tcpView = new TcpView();
const udpView = new UdpView();
const icmpView = new IcmpView();
const icmp6View = new Icmpv6View();

/** Decodes a frame ('ethernet' for TAP, 'raw' for TUN: starts at the IP header). */
export function summarize(frame: Uint8Array, mode: 'ethernet' | 'raw'): FrameSummary {
  const s: FrameSummary = { length: frame.length };
  try {
    let off = 0;
    let etherType: number;
    if (mode === 'ethernet') {
      eth.wrap(frame);
      const vlans: number[] = [];
      for (let i = 0; i < eth.vlanCount; i++) vlans.push(eth.vlanId(i));
      s.ethernet = { src: eth.src, dst: eth.dst, etherType: eth.etherType, vlans };
      etherType = eth.etherType;
      off = eth.payloadOffset;
    } else {
      const v = frame.length > 0 ? frame[0]! >> 4 : 0;
      etherType = v === 4 ? 0x0800 : v === 6 ? 0x86dd : 0;
      if (etherType === 0) throw new PacketParseError('ip', `unknown IP version ${v}`);
    }
    if (etherType === 0x0806) {
      arpView.wrap(frame, off);
      if (arpView.isEthernetIPv4) {
        s.arp = { operation: arpView.operation, senderMac: arpView.senderMac, senderIp: arpView.senderIp, targetMac: arpView.targetMac, targetIp: arpView.targetIp };
      }
      return s;
    }
    let proto: number; let l4: number; let end: number; let ipOff: number; let first = true;
    if (etherType === 0x0800) {
      ip4.wrap(frame, off);
      s.ip = { version: 4, src: ip4.srcAddress, dst: ip4.dstAddress, protocol: ip4.protocol, ttl: ip4.ttl, length: ip4.totalLength,
        id: ip4.identification, fragmentOffset: ip4.fragmentOffset, moreFragments: ip4.moreFragments, headerChecksumOk: ip4.verifyChecksum() };
      proto = ip4.protocol; l4 = ip4.payloadOffset; end = ip4.payloadEnd; ipOff = off;
      first = ip4.fragmentOffset === 0;
      if (ip4.moreFragments) first = false; // cannot checksum part of a datagram
      if (ip4.fragmentOffset !== 0) return s;
    } else if (etherType === 0x86dd) {
      ip6.wrap(frame, off);
      s.ip = { version: 6, src: ip6.srcAddress, dst: ip6.dstAddress, protocol: ip6.upperProtocol, ttl: ip6.hopLimit, length: 40 + ip6.payloadLength };
      if (ip6.isFragment) { s.ip.fragmentOffset = ip6.fragmentOffset; s.ip.moreFragments = ip6.moreFragments; s.ip.id = ip6.fragmentId; }
      proto = ip6.upperProtocol; l4 = ip6.upperOffset; end = ip6.payloadEnd; ipOff = off;
      first = !ip6.isFragment;
      if (ip6.isFragment && ip6.fragmentOffset !== 0) return s;
    } else return s;
    const whole = first;
    if (proto === 6) {
      tcpView.wrap(frame, l4, end);
      s.tcp = { srcPort: tcpView.srcPort, dstPort: tcpView.dstPort, seq: tcpView.seq, ack: tcpView.ack, flags: tcpView.flags,
        window: tcpView.window, payloadLength: tcpView.payloadLength, checksum: tcpView.checksum,
        checksumOk: whole && verifyTransportChecksum(frame, ipOff, l4, end, 6), options: tcpView.options() };
    } else if (proto === 17) {
      udpView.wrap(frame, l4, end);
      s.udp = { srcPort: udpView.srcPort, dstPort: udpView.dstPort, length: udpView.length, checksum: udpView.checksum,
        checksumOk: whole && ((udpView.checksum === 0 && s.ip!.version === 4) || verifyTransportChecksum(frame, ipOff, l4, l4 + udpView.length, 17)) };
    } else if (proto === 1 && s.ip!.version === 4) {
      icmpView.wrap(frame, l4, end);
      s.icmp = { type: icmpView.type, code: icmpView.code, checksum: icmpView.checksum, checksumOk: whole && icmpView.verifyChecksum() };
      if (icmpView.type === 0 || icmpView.type === 8) { s.icmp.id = icmpView.identifier; s.icmp.seq = icmpView.sequence; }
    } else if (proto === 58 && s.ip!.version === 6) {
      icmp6View.wrap(frame, l4, end);
      s.icmp = { type: icmp6View.type, code: icmp6View.code, checksum: icmp6View.checksum, checksumOk: whole && verifyTransportChecksum(frame, ipOff, l4, end, 58) };
      if (icmp6View.type === 128 || icmp6View.type === 129) { s.icmp.id = icmp6View.identifier; s.icmp.seq = icmp6View.sequence; }
      if (icmp6View.type === 135 || icmp6View.type === 136) s.icmp.target = icmp6View.targetAddress;
    }
  } catch (e) {
    if (!(e instanceof PacketParseError)) throw e;
    s.error = e.message;
  }
  return s;
}

const icmpNames: Record<number, string> = { 0: 'echo reply', 3: 'unreachable', 5: 'redirect', 8: 'echo request', 11: 'time exceeded' };
const icmp6Names: Record<number, string> = {
  1: 'destination unreachable', 2: 'packet too big', 3: 'time exceeded', 128: 'echo request', 129: 'echo reply',
  133: 'router solicitation', 134: 'router advertisement', 135: 'neighbor solicitation', 136: 'neighbor advertisement',
  143: 'multicast listener report v2',
};

function tsText(timeNs: bigint): string {
  const d = new Date(Number(timeNs / 1_000_000n));
  const us = String((timeNs / 1000n) % 1_000_000n).padStart(6, '0');
  return `${String(d.getUTCHours()).padStart(2, '0')}:${String(d.getUTCMinutes()).padStart(2, '0')}:${String(d.getUTCSeconds()).padStart(2, '0')}.${us}`;
}

/** One line in the manner of `tcpdump -n` (UTC time). */
export function describe(frame: Uint8Array, mode: 'ethernet' | 'raw', timeNs?: bigint): string {
  const s = summarize(frame, mode);
  const parts: string[] = [];
  if (timeNs !== undefined) parts.push(tsText(timeNs));
  if (s.ethernet) {
    parts.push(`${s.ethernet.src} > ${s.ethernet.dst}${s.ethernet.vlans.length ? ` vlan ${s.ethernet.vlans.join('.')}` : ''},`);
  }
  const tail = s.error ? ` [${s.error}]` : '';
  if (s.arp) {
    const a = s.arp;
    parts.push(a.operation === 1 ? `ARP, Request who-has ${a.targetIp} tell ${a.senderIp}, length ${s.length - 14}`
      : a.operation === 2 ? `ARP, Reply ${a.senderIp} is-at ${a.senderMac}, length ${s.length - 14}` : `ARP, op ${a.operation}`);
    return parts.join(' ') + tail;
  }
  if (!s.ip) {
    parts.push(s.ethernet ? `ethertype 0x${s.ethernet.etherType.toString(16).padStart(4, '0')}, length ${s.length}` : `length ${s.length}`);
    return parts.join(' ') + tail;
  }
  const ip = s.ip;
  const fam = ip.version === 4 ? 'IP' : 'IP6';
  const frag = ip.fragmentOffset || ip.moreFragments ? ` (frag ${ip.id}:${ip.fragmentOffset}${ip.moreFragments ? '+' : ''})` : '';
  if (s.tcp) {
    const t = s.tcp;
    let line = `${fam} ${ip.src}.${t.srcPort} > ${ip.dst}.${t.dstPort}: Flags [${tcpFlagString(t.flags)}]`;
    if (t.payloadLength > 0 || (t.flags & 0x07)) line += `, seq ${t.seq}${t.payloadLength > 0 ? `:${(t.seq + t.payloadLength) >>> 0}` : ''}`;
    if (t.flags & 0x10) line += `, ack ${t.ack}`;
    line += `, win ${t.window}`;
    const o = t.options;
    const opts: string[] = [];
    if (o.mss !== undefined) opts.push(`mss ${o.mss}`);
    if (o.sackPermitted) opts.push('sackOK');
    if (o.timestamp) opts.push(`TS val ${o.timestamp[0]} ecr ${o.timestamp[1]}`);
    if (o.windowScale !== undefined) opts.push(`wscale ${o.windowScale}`);
    if (o.sack) opts.push(`sack ${o.sack.length} ${o.sack.map(([l, r]) => `{${l}:${r}}`).join('')}`);
    if (opts.length) line += `, options [${opts.join(',')}]`;
    parts.push(`${line}, length ${t.payloadLength}${frag}`);
  } else if (s.udp) {
    parts.push(`${fam} ${ip.src}.${s.udp.srcPort} > ${ip.dst}.${s.udp.dstPort}: UDP, length ${s.udp.length - 8}${frag}`);
  } else if (s.icmp) {
    const names = ip.version === 4 ? icmpNames : icmp6Names;
    const name = names[s.icmp.type] ?? `type ${s.icmp.type} code ${s.icmp.code}`;
    const extra = s.icmp.id !== undefined ? `, id ${s.icmp.id}, seq ${s.icmp.seq}` : s.icmp.target ? `, who has ${s.icmp.target}` : '';
    parts.push(`${fam} ${ip.src} > ${ip.dst}: ${ip.version === 4 ? 'ICMP' : 'ICMP6'} ${name}${extra}, length ${ip.length - (ip.version === 4 ? 20 : 40)}${frag}`);
  } else {
    parts.push(`${fam} ${ip.src} > ${ip.dst}: ip-proto-${ip.protocol}, length ${ip.length}${frag}`);
  }
  return parts.join(' ') + tail;
}
