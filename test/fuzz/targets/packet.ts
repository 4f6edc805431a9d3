// Packet layer: every view and decoder of src/packet on frames and packets from the wire. The
// only error a parser may throw is PacketParseError (gsoSplit also throws its documented
// RangeError when the output buffers are too small), and none may read past its buffer.
import {
  PacketParseError, EthernetView, ArpView, Ipv4View, Ipv6View, TcpView, UdpView, IcmpView, Icmpv6View,
  parseNd, summarize, readPcap, gsoSplit, GroCoalescer, decodeVnetHdr, describe, PcapWriter, LinkType,
} from '../../../src/packet/index.js';
import { corpus as packetCorpus } from '../../packet/corpus.js';
import type { BytesTarget } from '../framework.js';

const isParseError = (e: unknown) => e instanceof PacketParseError;
/** First bytes of IP packets and frames, for random inputs. */
const FIRST_BYTES = [0x45, 0x46, 0x4f, 0x60, 0x86, 0x08];

/** Valid inputs per parser, cut from the shared packet corpus (test/packet/corpus.ts). */
function seeds(): Record<string, Uint8Array[]> {
  const by: Record<string, Uint8Array[]> = {};
  const add = (name: string, b: Uint8Array) => { (by[name] ??= []).push(b); };
  for (const s of packetCorpus()) {
    add('ethernet', s.frame); add('frame-ethernet', s.frame);
    if (s.frame.length > 14 && s.frame[12] === 0x08 && s.frame[13] === 0x06) add('arp', s.frame.subarray(14));
    const raw = s.raw;
    if (!raw || raw.length < 20) continue;
    add('frame-raw', raw);
    const version = raw[0]! >> 4;
    add(version === 4 ? 'ipv4' : 'ipv6', raw);
    if (s.truncated) continue;
    add('gro', raw);
    const l3 = version === 4 ? (raw[0]! & 15) * 4 : 40;
    const proto = version === 4 ? raw[9]! : raw[6]!;
    const l4 = raw.subarray(l3);
    const name = proto === 6 ? 'tcp' : proto === 17 ? 'udp' : proto === 1 ? 'icmp' : proto === 58 ? 'icmpv6' : '';
    if (name) add(name, l4);
    if (proto === 6 || proto === 17) add('gso', superPacket(raw, version, l3, proto, l4));
  }
  const frames = (by['frame-ethernet'] ?? []).slice(0, 6);
  for (const nanoseconds of [false, true]) add('pcap', capture(frames, nanoseconds, 64));
  add('pcap', bigEndian(capture(frames.slice(0, 3), false, 262144)));
  return by;
}

/** A pcap file of `frames` as PcapWriter writes it (little endian), snapped at `snap`. */
function capture(frames: Uint8Array[], nanoseconds: boolean, snap: number): Uint8Array {
  const chunks: Uint8Array[] = [];
  const w = new PcapWriter((c) => chunks.push(c), { linkType: LinkType.ETHERNET, nanoseconds, snapLength: snap, blockSize: 0 });
  frames.forEach((f, i) => w.write(f, 1_700_000_000_000_000_000n + BigInt(i) * 1_001_000n));
  w.close();
  return Buffer.concat(chunks);
}

/** The same capture as a big-endian machine writes it: every 32-bit header field byte-swapped. */
function bigEndian(file: Uint8Array): Uint8Array {
  const b = Buffer.from(file);
  const swap32 = (o: number) => b.writeUInt32BE(b.readUInt32LE(o), o);
  swap32(0); b.writeUInt16BE(b.readUInt16LE(4), 4); b.writeUInt16BE(b.readUInt16LE(6), 6);
  for (const o of [8, 12, 16, 20]) swap32(o);
  for (let o = 24; o + 16 <= b.length;) {
    const cap = b.readUInt32LE(o + 8);
    for (const f of [0, 4, 8, 12]) swap32(o + f);
    o += 16 + cap;
  }
  return b;
}

/** A super-packet for gsoSplit: virtio_net_hdr (little endian) + the packet. */
function superPacket(raw: Uint8Array, version: number, l3: number, proto: number, l4: Uint8Array): Uint8Array {
  const hdrLen = l3 + (proto === 6 ? (l4[12]! >> 4) * 4 : 8);
  const v = new Uint8Array(10 + raw.length);
  v.set(raw, 10);
  const put = (o: number, x: number) => { v[o] = x & 0xff; v[o + 1] = x >> 8; };
  v[0] = 1; v[1] = proto === 17 ? 5 : version === 4 ? 1 : 4;
  put(2, hdrLen); put(4, 4); put(6, l3); put(8, proto === 6 ? 16 : 6);
  return v;
}

let cachedSeeds: Record<string, Uint8Array[]> | undefined;
/** A parser's own seeds plus a sample of every other's (a TCP parser should see IPv6 headers too). */
function corpusFor(name: string): Uint8Array[] {
  cachedSeeds ??= seeds();
  const everything = Object.values(cachedSeeds).flat();
  return [...(cachedSeeds[name] ?? []), ...everything.filter((_, i) => i % 10 === 0)];
}

function packetTarget(name: string, about: string, parse: (b: Uint8Array) => string | void,
  extra: Partial<BytesTarget> = {}): BytesTarget {
  return {
    kind: 'bytes', name, layer: 'packet', about, weight: 5, guard: true, maxLength: 4096, firstBytes: FIRST_BYTES,
    isTyped: isParseError, corpus: () => corpusFor(name), create: () => ({ run: (b) => parse(b) || 'parsed' }),
    ...extra,
  };
}

const ethV = new EthernetView(); const arpV = new ArpView(); const v4V = new Ipv4View(); const v6V = new Ipv6View();
const tcpV = new TcpView(); const udpV = new UdpView(); const icmpV = new IcmpView(); const icmp6V = new Icmpv6View();
const gsoOut = Array.from({ length: 64 }, () => new Uint8Array(2048));
const gsoSizes = new Uint32Array(64);
const gro = new GroCoalescer({ udp: true });
const groOut = new Uint8Array(70000);

/** summarize() reports a parse error in its result instead of throwing: count which it was. */
const summaryOutcome = (b: Uint8Array, mode: 'ethernet' | 'raw'): string => {
  describe(b, mode);
  return summarize(b, mode).error ? 'partly decoded' : 'decoded';
};

export const packetTargets: BytesTarget[] = [
  packetTarget('ethernet', 'EthernetView: header, VLAN tags, payload',
    (b) => { ethV.wrap(b); void ethV.etherType; void ethV.payload; for (let i = 0; i < ethV.vlanCount; i++) ethV.vlanId(i); }),
  packetTarget('arp', 'ArpView fields', (b) => { arpV.wrap(b); void arpV.senderIp; void arpV.targetMac; void arpV.operation; }),
  packetTarget('ipv4', 'Ipv4View: options, payload, header checksum',
    (b) => { v4V.wrap(b); v4V.options(); void v4V.payload; v4V.verifyChecksum(); }),
  packetTarget('ipv6', 'Ipv6View: extension header walk, fragment, upper payload',
    (b) => { v6V.wrap(b); v6V.extensions(); void v6V.fragmentOffset; void v6V.upperPayload; void v6V.srcAddress; }),
  packetTarget('tcp', 'TcpView: options, timestamps, payload',
    (b) => { tcpV.wrap(b); tcpV.options(); tcpV.timestampOffset(); void tcpV.payload; }),
  packetTarget('udp', 'UdpView: length and payload', (b) => { udpV.wrap(b); void udpV.payload; }),
  packetTarget('icmp', 'IcmpView: checksum and payload', (b) => { icmpV.wrap(b); icmpV.verifyChecksum(); void icmpV.payload; }),
  packetTarget('icmpv6', 'Icmpv6View: neighbour discovery options',
    (b) => { icmp6V.wrap(b); icmp6V.ndOptions(); if (icmp6V.isNeighborDiscovery) parseNd(icmp6V); void icmp6V.body; }),
  packetTarget('frame-ethernet', 'summarize/describe of an Ethernet frame (tcpdump lines)',
    (b) => summaryOutcome(b, 'ethernet'), { weight: 2 }),
  packetTarget('frame-raw', 'summarize/describe of a raw IP packet', (b) => summaryOutcome(b, 'raw'), { weight: 2 }),
  packetTarget('pcap', 'readPcap of a whole capture file', (b) => { readPcap(b); }, { weight: 3 }),
  packetTarget('gso', 'gsoSplit of a virtio_net_hdr + super-packet into segments', (b) => {
    if (b.length < 10) throw new PacketParseError('fuzz', 'no virtio_net_hdr');
    return `${gsoSplit(b.subarray(10), decodeVnetHdr(b, 0), gsoOut, gsoSizes) > 1 ? 'split' : 'one segment'}`;
  }, { isTyped: (e) => isParseError(e) || (e instanceof RangeError && /output buffer/.test(e.message)) }),
  packetTarget('gro', 'GroCoalescer.coalesce of a batch (bad packets pass through unmerged)',
    (b) => (gro.coalesce([b, b, b.subarray(0, b.length >> 1)], groOut).merged > 0 ? 'merged' : 'passed through'), { weight: 3 }),
];
