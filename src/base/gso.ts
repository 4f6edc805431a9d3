// Generic segmentation offload done in user space: one TCP or UDP super-packet, as read from a
// TUN/TAP with IFF_VNET_HDR and TSO/USO enabled, becomes MTU-sized packets the way the kernel's
// tcp_gso_segment/udp_gso_segment would cut it. Output goes into caller-provided memory (a
// batch's buffer, or one buffer per segment), so the hot path allocates nothing.
import { EtherType, IpProtocol } from './protocols.js';
import { PacketParseError } from './parse-error.js';
import { u16, u32, put16, put32 } from './bytes.js';
import { finish, fold, internetChecksum, pseudoHeaderSum, sum16, completePartialChecksum } from './checksum.js';
import { GsoType, VIRTIO_NET_HDR_F, type VirtioNetHdr } from './vnet.js';
import type { BatchBuffer, PieceBuffer } from './batch.js';
import type { DeferredChecksums, RangeSummer } from './checksum-batch.js';

const FIN = 0x01, PSH = 0x08, CWR = 0x80;
/** Most segments splitPieces cuts one packet into (64 KiB at a 256-byte MSS). */
export const MAX_SPLIT_SEGMENTS = 256;

/** What one super-packet splits into: filled by planSplit, read by writeSegment. */
export interface SplitPlan {
  /** Number of segments. */
  count: number;
  /** Bytes of all segments together (each repeats the headers). */
  bytes: number;
  version: number;
  tcp: boolean;
  /** Offset of the transport header (csum_start) and of the payload (end of the headers). */
  l4: number;
  hdrLen: number;
  ipHeaderLength: number;
  ipOffset: number;
  mss: number;
  /** The first segment's IPv4 ID, TCP sequence number and TCP flags. */
  id: number;
  seq: number;
  flags: number;
  /** pseudoHeaderSum without the length, the same for every segment. */
  pseudo: number;
}

const ETHERNET_HEADER = 14;
const VLAN_TAG = 4;

/** Where an Ethernet frame's IP header starts (planSplit's ipOffset on a TAP): after up to two VLAN tags. */
export function ipOffsetOfFrame(frame: Uint8Array): number {
  let at = ETHERNET_HEADER;
  for (let tags = 0; tags < 2 && frame.length >= at + VLAN_TAG; tags++) {
    const type = u16(frame, at - 2);
    if (type !== EtherType.VLAN && type !== EtherType.QinQ) break;
    at += VLAN_TAG;
  }
  return at;
}

export function newSplitPlan(): SplitPlan {
  return { count: 0, bytes: 0, version: 0, tcp: false, l4: 0, hdrLen: 0, ipHeaderLength: 0, ipOffset: 0, mss: 0, id: 0, seq: 0, flags: 0, pseudo: 0 };
}

/**
 * Checks that `pkt` and its GSO header agree and fills `plan` (see SplitPlan). `ipOffset` is
 * where the IP header starts: 0 on a TUN, 14 (18 with a VLAN tag) on a TAP. Throws
 * PacketParseError when they disagree: the header is the kernel's, but a program may hand any
 * bytes to the split.
 */
export function planSplit(pkt: Uint8Array, hdr: VirtioNetHdr, ipOffset: number, plan: SplitPlan): SplitPlan {
  const gsoType = hdr.gsoType & ~GsoType.ECN;
  if (pkt.length < ipOffset + 20) throw new PacketParseError('gso', 'packet shorter than an IP header');
  const version = pkt[ipOffset]! >> 4;
  const tcp = gsoType === GsoType.TCPV4 || gsoType === GsoType.TCPV6;
  if (gsoType === GsoType.UDP) throw new PacketParseError('gso', 'UFO (IP fragmentation offload) is not supported');
  if (!tcp && gsoType !== GsoType.UDP_L4) throw new PacketParseError('gso', `unknown gso type ${hdr.gsoType}`);
  if ((gsoType === GsoType.TCPV4 && version !== 4) || (gsoType === GsoType.TCPV6 && version !== 6) || (version !== 4 && version !== 6)) {
    throw new PacketParseError('gso', `gso type ${gsoType} does not match IP version ${version}`);
  }
  const l4 = hdr.csumStart;
  const ipHeaderLength = version === 4 ? (pkt[ipOffset]! & 15) * 4 : 40;
  if (l4 < ipOffset + ipHeaderLength || l4 + (tcp ? 20 : 8) > pkt.length) {
    throw new PacketParseError('gso', `csum_start ${l4} does not point at the transport header`);
  }
  const hdrLen = tcp ? l4 + (pkt[l4 + 12]! >> 4) * 4 : l4 + 8;
  if (hdrLen > pkt.length || (tcp && hdrLen < l4 + 20)) throw new PacketParseError('gso', 'transport header runs past the packet');
  const mss = hdr.gsoSize;
  if (mss === 0) throw new PacketParseError('gso', 'gso_size is 0');
  const payload = pkt.length - hdrLen;
  const count = payload === 0 ? 1 : Math.ceil(payload / mss);
  plan.count = count;
  plan.bytes = payload + count * hdrLen;
  plan.version = version;
  plan.tcp = tcp;
  plan.l4 = l4;
  plan.hdrLen = hdrLen;
  plan.ipHeaderLength = ipHeaderLength;
  plan.ipOffset = ipOffset;
  plan.mss = mss;
  plan.id = version === 4 ? u16(pkt, ipOffset + 4) : 0;
  plan.seq = tcp ? u32(pkt, l4 + 4) : 0;
  plan.flags = tcp ? pkt[l4 + 13]! : 0;
  plan.pseudo = pseudoHeaderSum(pkt, ipOffset, tcp ? IpProtocol.TCP : IpProtocol.UDP, 0);
  return plan;
}

/**
 * Writes segment i of the planned split of `pkt` into out[o, o + length) and returns its length:
 * the headers (`headers` is pkt's first plan.hdrLen bytes) with lengths, IPv4 ID and header
 * checksum, TCP sequence number and flags (FIN and PSH only on the last, CWR only on the first)
 * or UDP length fixed, and the transport checksum computed in full (or, with `deferred`, left
 * zero and recorded there for one pass over the whole batch).
 */
function writeSegment(pkt: Uint8Array, headers: Uint8Array, plan: SplitPlan, i: number, out: Uint8Array, o: number,
  deferred?: DeferredChecksums): number {
  const { hdrLen, mss, tcp } = plan;
  const start = hdrLen + i * mss;
  const end = Math.min(start + mss, pkt.length);
  const segLen = hdrLen + (end - start);
  if (out.length - o < segLen) throw new RangeError(`output holds ${out.length - o} bytes, segment ${i} needs ${segLen}`);
  out.set(headers, o);
  out.set(pkt.subarray(start, end), o + hdrLen);
  const field = writeSegmentHeaders(plan, i, segLen, out, o);
  const t = o + plan.l4;
  const l4Len = segLen - plan.l4;
  if (deferred !== undefined) {
    deferred.add(t, o + segLen, plan.pseudo + l4Len, field, !tcp);
    return segLen;
  }
  let c = finish(sum16(out, t, o + segLen, plan.pseudo + l4Len));
  if (!tcp && c === 0) c = 0xffff;
  put16(out, field, c);
  return segLen;
}

/** Segment i's TCP flags: FIN and PSH only on the last segment, CWR only on the first. */
function segmentFlags(plan: SplitPlan, i: number): number {
  let f = plan.flags;
  if (i !== plan.count - 1) f &= ~(FIN | PSH);
  if (i !== 0) f &= ~CWR;
  return f;
}

/**
 * Turns the headers copied to out[o, o + plan.hdrLen) into segment i's (segLen bytes with its
 * payload): IP lengths, IPv4 ID and header checksum, TCP sequence number and flags (FIN and PSH
 * only on the last, CWR only on the first) or UDP length; the transport checksum field is
 * zeroed. Returns that field's offset.
 */
function writeSegmentHeaders(plan: SplitPlan, i: number, segLen: number, out: Uint8Array, o: number): number {
  const { l4, ipOffset, tcp } = plan;
  const ip = o + ipOffset;
  if (plan.version === 4) {
    put16(out, ip + 2, segLen - ipOffset);
    put16(out, ip + 4, (plan.id + i) & 0xffff);
    put16(out, ip + 10, 0);
    put16(out, ip + 10, internetChecksum(out, ip, ip + plan.ipHeaderLength));
  } else {
    put16(out, ip + 4, segLen - ipOffset - 40);
  }
  const t = o + l4;
  if (tcp) {
    put32(out, t + 4, (plan.seq + i * plan.mss) >>> 0);
    out[t + 13] = segmentFlags(plan, i);
  } else {
    put16(out, t + 4, segLen - l4);
  }
  const field = t + (tcp ? 16 : 6);
  put16(out, field, 0);
  return field;
}

/** Scratch for splitPieces: each segment's payload range in the packet and its sum. */
const payloadStarts = new Uint32Array(MAX_SPLIT_SEGMENTS);
const payloadEnds = new Uint32Array(MAX_SPLIT_SEGMENTS);
const payloadSums = new Uint32Array(MAX_SPLIT_SEGMENTS);
/** Scratch for splitPieces: the prefix and first headers with every per-segment field zeroed. */
let template = new Uint8Array(256);

/**
 * Splits `pkt` as pieces, copying only headers: segment i becomes two pieces of `into`, its
 * headers (written to `headers` from byte `at`, behind a copy of `prefix`, e.g. a tunnel's
 * header; the piece includes both) and its payload, left where it is in `pkt` (pkt[0] is byte
 * `sourceOffset` of into.sources[source]). Each transport checksum is complete: the payloads
 * are summed with one `summer` call over pkt; the headers are summed once per packet, with the
 * fields that differ between segments zeroed, and each segment adds its own fields to that sum
 * (RFC 1624), as it does for the IPv4 header checksum. The caller has checked with planSplit (at
 * most MAX_SPLIT_SEGMENTS segments) and left plan.count * (prefix.length + plan.hdrLen) bytes of
 * room in `headers`. Returns the header bytes written.
 */
export function splitPieces(pkt: Uint8Array, plan: SplitPlan, into: PieceBuffer, source: number, sourceOffset: number,
  headers: Uint8Array, at: number, prefix: Uint8Array, summer: RangeSummer): number {
  const { count, hdrLen, mss, tcp } = plan;
  if (count > MAX_SPLIT_SEGMENTS) throw new RangeError(`${count} segments: at most ${MAX_SPLIT_SEGMENTS} split as pieces`);
  for (let i = 0; i < count; i++) {
    payloadStarts[i] = hdrLen + i * mss;
    payloadEnds[i] = Math.min(hdrLen + (i + 1) * mss, pkt.length);
    payloadSums[i] = 0;
  }
  summer(pkt, payloadStarts, payloadEnds, payloadSums, count);
  // Offsets below are from the start of a segment's piece (prefix included).
  const headroom = prefix.length;
  const size = headroom + hdrLen;
  if (template.length < size) template = new Uint8Array(size * 2);
  const t0 = template;
  t0.set(prefix, 0);
  t0.set(pkt.subarray(0, hdrLen), headroom);
  const ip = headroom + plan.ipOffset;
  const l4 = headroom + plan.l4;
  const v4 = plan.version === 4;
  let ipSum = 0;
  if (v4) {
    put16(t0, ip + 2, 0); put16(t0, ip + 4, 0); put16(t0, ip + 10, 0);
    ipSum = sum16(t0, ip, ip + plan.ipHeaderLength);
  } else {
    put16(t0, ip + 4, 0);
  }
  // TCP: sequence number, flags and checksum vary (the data offset byte is kept and summed
  // here); UDP: length and checksum.
  const field = l4 + (tcp ? 16 : 6);
  put16(t0, field, 0);
  if (tcp) { put32(t0, l4 + 4, 0); t0[l4 + 13] = 0; } else put16(t0, l4 + 4, 0);
  const headerSum = sum16(t0, l4, headroom + hdrLen, plan.pseudo);
  const model = t0.subarray(0, size);
  let o = at;
  for (let i = 0; i < count; i++) {
    const payload = payloadEnds[i]! - payloadStarts[i]!;
    const segLen = hdrLen + payload;
    const l4Len = segLen - plan.l4;
    headers.set(model, o);
    if (v4) {
      const totalLength = segLen - plan.ipOffset;
      const id = (plan.id + i) & 0xffff;
      put16(headers, o + ip + 2, totalLength);
      put16(headers, o + ip + 4, id);
      put16(headers, o + ip + 10, finish(ipSum + totalLength + id));
    } else {
      put16(headers, o + ip + 4, segLen - plan.ipOffset - 40);
    }
    let sum = headerSum + l4Len + payloadSums[i]!;
    if (tcp) {
      const seq = (plan.seq + i * mss) >>> 0;
      const f = segmentFlags(plan, i);
      put32(headers, o + l4 + 4, seq);
      headers[o + l4 + 13] = f;
      sum += (seq >>> 16) + (seq & 0xffff) + f;
    } else {
      put16(headers, o + l4 + 4, l4Len);
      sum += l4Len;
    }
    let c = finish(sum);
    if (!tcp && c === 0) c = 0xffff;
    put16(headers, o + field, c);
    into.add(0, o, size);
    into.add(source, sourceOffset + payloadStarts[i]!, payload);
    into.end();
    o += size;
  }
  return o - at;
}

/**
 * Splits `pkt` into `into` (a batch over one buffer), segments back to back from byte `at` of
 * its buffer. Returns the bytes written. With `headroom`, that many bytes are left before each
 * segment and counted in its batch entry, for an encapsulation header the caller writes there
 * (a tunnel's datagrams then leave as they are). The caller has checked with planSplit and left
 * room for plan.bytes + plan.count * headroom bytes and plan.count slots. With `deferred` the
 * transport checksums are recorded there instead of computed: the caller finishes them over
 * `into.buffer` (at the same offsets) before the segments leave.
 */
export function splitInto(pkt: Uint8Array, plan: SplitPlan, into: BatchBuffer, at: number, headroom = 0,
  deferred?: DeferredChecksums): number {
  const headers = pkt.subarray(0, plan.hdrLen);
  const out = into.buffer;
  let o = at;
  for (let i = 0; i < plan.count; i++) {
    const len = headroom + writeSegment(pkt, headers, plan, i, out, o + headroom, deferred);
    into.push(o, len);
    o += len;
  }
  return o - at;
}

const scratchPlan = newSplitPlan();

/**
 * Splits `pkt` (starting `ipOffset` bytes before the IP header: 0 for TUN, 14 for TAP) according
 * to `hdr`. Segment i is written to outBuffers[i] at `outOffset`, its length to sizes[i].
 * Returns the number of segments. A packet without GSO is copied as one segment, with its
 * checksum completed if NEEDS_CSUM is set. Throws PacketParseError when the packet and header
 * disagree and RangeError when the output buffers are too few or too small.
 */
export function gsoSplit(pkt: Uint8Array, hdr: VirtioNetHdr, outBuffers: readonly Uint8Array[],
  sizes: Uint32Array | number[], outOffset = 0, ipOffset = 0): number {
  if ((hdr.gsoType & ~GsoType.ECN) === GsoType.NONE) {
    const out = outBuffers[0];
    if (!out || out.length - outOffset < pkt.length) throw new RangeError('output buffer too small for the packet');
    out.set(pkt, outOffset);
    if ((hdr.flags & VIRTIO_NET_HDR_F.NEEDS_CSUM) !== 0) {
      if (hdr.csumStart + hdr.csumOffset + 2 > pkt.length) throw new PacketParseError('gso', 'checksum offset lies outside the packet');
      completePartialChecksum(out, hdr.csumStart, hdr.csumOffset, outOffset, outOffset + pkt.length);
    }
    sizes[0] = pkt.length;
    return 1;
  }
  const plan = planSplit(pkt, hdr, ipOffset, scratchPlan);
  if (plan.count > outBuffers.length) throw new RangeError(`${plan.count} segments need ${plan.count} output buffers, got ${outBuffers.length}`);
  const headers = pkt.subarray(0, plan.hdrLen);
  for (let i = 0; i < plan.count; i++) sizes[i] = writeSegment(pkt, headers, plan, i, outBuffers[i]!, outOffset);
  return plan.count;
}

/** The uncomplemented, folded pseudo-header sum NEEDS_CSUM expects in the checksum field. */
export function partialPseudoChecksum(pkt: Uint8Array, ipOffset: number, protocol: number, l4Length: number): number {
  return fold(pseudoHeaderSum(pkt, ipOffset, protocol, l4Length));
}
