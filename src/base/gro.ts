// Generic receive offload in user space: a batch of TCP (and UDP) packets becomes as few
// super-packets as possible, each preceded by the virtio_net_hdr the kernel expects on a write
// to a TUN/TAP with IFF_VNET_HDR: NEEDS_CSUM with the pseudo-header sum in the checksum field,
// gso_type TCPV4/TCPV6 (or UDP_L4), gso_size = the first segment's payload, hdr_len and
// csum_start/csum_offset. Packets that cannot be merged pass through with an all-zero header.
//
// Merge rules (those of the kernel's tcp_gro_receive, simplified): same link header (TAP), same
// addresses and ports, same IP TOS/TTL/DF, same ACK number, window and TCP options, flags ACK
// (PSH only on the last merged segment), contiguous sequence numbers, every segment the same size
// except a shorter last one, total at most 65535 bytes of IP and 64 segments. A merged packet's
// checksum is completed by the kernel, so each packet's own checksum is verified before it joins
// (unless the caller knows the bytes are intact); one that fails is passed on as it is, for the
// kernel to drop.
//
// The work per batch is bounded: a packet looks for its flow among the last LOOKBACK groups only.
import { u16, u32, put16, bytesEqual } from './bytes.js';
import { fold, internetChecksum, pseudoHeaderSum, sum16 } from './checksum.js';
import { encodeVnetHdr, GsoType, VIRTIO_NET_HDR_F, VIRTIO_NET_HDR_LEN } from './vnet.js';
import { batchBytes, type Batch, type PieceBatch } from './batch.js';
import { EtherType, IpProtocol } from './protocols.js';

const ACK = 0x10, PSH = 0x08;
/** Groups a packet compares its flow with, newest first. */
const LOOKBACK = 64;
/** Segments in one super-packet (the kernel's cap on a GSO packet it builds). */
const MAX_SEGMENTS = 64;
/** Most headers a merged packet has before its payload: Ethernet with two tags, IPv6, TCP with options. */
const MAX_HEADERS = 22 + 40 + 60;
/** Buffers one gathered write takes its pieces from (native/gather.h). */
const MAX_PIECE_SOURCES = 16;

export interface GroOptions {
  /**
   * Verify each packet's transport checksum before merging it (default true). Turn off only when
   * the bytes were checked on the way here (an outer UDP checksum, an AEAD tag): a merged
   * packet's checksum is computed afresh by the kernel, which would hide a corrupted segment.
   */
  verifyChecksums?: boolean;
  /** Also merge UDP datagrams of one flow into UDP_L4 (USO) super-packets (default false). */
  udp?: boolean;
  /** Largest IP packet to build (default 65535). */
  maxSize?: number;
  /** Bytes before the IP header: 0 on a TUN (default), 14 on a TAP (untagged Ethernet; frames merge only with an equal header). */
  linkHeader?: number;
  /** Size of the virtio_net_hdr written before each output packet (default 10; 12 with num_buffers). */
  headerSize?: number;
  /** Header fields little-endian (default true; false for a device with TUNSETVNETBE). */
  littleEndian?: boolean;
}

/** Output packet i (virtio_net_hdr + packet) is buffer[offsets[i] .. offsets[i] + lengths[i]). */
export interface GroResult extends Batch {
  /** Input packets merged into another (not counting each group's first). */
  merged: number;
}

/**
 * A coalesced batch as pieces to write gathered: output i is pieces [ends[i - 1], ends[i]), each
 * a (source index, offset, length) triple into `sources`; source 0 is the header buffer.
 */
export interface GroPieces extends PieceBatch {
  sources: Uint8Array[];
  pieces: Uint32Array;
  ends: Uint32Array;
  count: number;
  /** Input packets merged into another (not counting each group's first). */
  merged: number;
}

/** Reusable coalescer: keeps its scratch arrays between batches, so a batch allocates nothing. */
export class GroCoalescer {
  private readonly verify: boolean;
  private readonly udp: boolean;
  private readonly maxSize: number;
  private readonly link: number;
  private readonly headerSize: number;
  private readonly littleEndian: boolean;
  // The packets of the batch being planned.
  private bufs: Uint8Array[] = [];
  private offs = new Uint32Array(0);
  private lens = new Uint32Array(0);
  private next = new Int32Array(0);
  // Groups, one entry per output packet (struct of arrays: no object per packet).
  private groups = 0;
  private gFirst = new Int32Array(0);
  private gLast = new Int32Array(0);
  private gHash = new Int32Array(0);
  private gL4 = new Int32Array(0);       // transport offset; -1: not mergeable
  private gHdrLen = new Int32Array(0);
  private gProto = new Int32Array(0);
  private gGsoSize = new Int32Array(0);
  private gNextSeq = new Uint32Array(0);
  private gTotal = new Int32Array(0);    // bytes of the merged packet, link header included
  private gSegs = new Int32Array(0);
  private gOpen = new Uint8Array(0);
  private gChecked = new Uint8Array(0);
  private merged = 0;
  /** Packets in the batch last grouped. */
  private planned = 0;
  private readonly result: { buffer: Uint8Array; offsets: Uint32Array; lengths: Uint32Array; count: number; merged: number } =
    { buffer: new Uint8Array(0), offsets: new Uint32Array(0), lengths: new Uint32Array(0), count: 0, merged: 0 };
  private readonly pieces: GroPieces = { sources: [], pieces: new Uint32Array(0), ends: new Uint32Array(0), count: 0, merged: 0 };
  /** What classify() found in the packet it accepted last (fields, not an object per packet). */
  private l4 = 0;
  private proto = 0;
  private hash = 0;
  /** The call's per-packet "checksum already vouched for" flags (coalesce's `intact`), or null. */
  private intact: Uint8Array | null = null;

  constructor(opts: GroOptions = {}) {
    this.verify = opts.verifyChecksums ?? true;
    this.udp = opts.udp ?? false;
    this.maxSize = opts.maxSize ?? 65535;
    this.link = opts.linkHeader ?? 0;
    this.headerSize = opts.headerSize ?? VIRTIO_NET_HDR_LEN;
    this.littleEndian = opts.littleEndian ?? true;
  }

  /** Upper bound of output bytes for packets given as views (pass a buffer at least this large). */
  static outputBound(packets: readonly Uint8Array[], headerSize = VIRTIO_NET_HDR_LEN): number {
    let n = 0;
    for (const p of packets) n += p.length + headerSize;
    return n;
  }

  /** Upper bound of output bytes for a batch. */
  static batchOutputBound(batch: Batch, headerSize = VIRTIO_NET_HDR_LEN): number {
    return batch.count * headerSize + batchBytes(batch);
  }

  /**
   * Coalesces `packets` (views, as on a TUN without headers) into `out`; the result is reused by
   * the next call. `intact[i]` non-zero says packet i's bytes were already checked on the way
   * here (an outer UDP checksum the kernel verified): its own checksum is not verified again.
   */
  coalesce(packets: readonly Uint8Array[], out: Uint8Array, intact?: Uint8Array): GroResult {
    this.planViews(packets, intact);
    return this.emit(out);
  }

  /**
   * Groups `packets` (views, `intact` as for coalesce) and returns how many would merge; emit()
   * or emitPieces() writes the plan.
   */
  planViews(packets: readonly Uint8Array[], intact?: Uint8Array): number {
    const n = packets.length;
    this.reserve(n);
    for (let i = 0; i < n; i++) {
      const p = packets[i]!;
      this.bufs[i] = p;
      this.offs[i] = 0;
      this.lens[i] = p.length;
    }
    this.intact = intact !== undefined && intact.length >= n ? intact : null;
    try {
      this.group(n);
    } finally {
      this.intact = null;
    }
    return this.merged;
  }

  /** Coalesces a batch into `out` (see batchOutputBound); the result is reused by the next call. */
  coalesceBatch(batch: Batch, out: Uint8Array): GroResult {
    this.plan(batch);
    return this.emit(out);
  }

  /**
   * Groups a batch's packets into the super-packets they can form and returns how many packets
   * would merge: 0 means writing them as they are gives the same packets. emit() writes the plan.
   */
  plan(batch: Batch): number {
    const n = batch.count;
    this.reserve(n);
    const buffer = batch.buffer;
    for (let i = 0; i < n; i++) {
      this.bufs[i] = buffer;
      this.offs[i] = batch.offsets[i]!;
      this.lens[i] = batch.lengths[i]!;
    }
    this.group(n);
    return this.merged;
  }

  private reserve(n: number): void {
    if (this.next.length >= n) return;
    const size = Math.max(64, n * 2);
    this.offs = new Uint32Array(size); this.lens = new Uint32Array(size); this.next = new Int32Array(size);
    this.gFirst = new Int32Array(size); this.gLast = new Int32Array(size); this.gHash = new Int32Array(size);
    this.gL4 = new Int32Array(size); this.gHdrLen = new Int32Array(size); this.gProto = new Int32Array(size);
    this.gGsoSize = new Int32Array(size); this.gNextSeq = new Uint32Array(size); this.gTotal = new Int32Array(size);
    this.gSegs = new Int32Array(size); this.gOpen = new Uint8Array(size); this.gChecked = new Uint8Array(size);
    this.result.offsets = new Uint32Array(size); this.result.lengths = new Uint32Array(size);
  }

  private group(n: number): void {
    this.planned = n;
    this.groups = 0;
    this.merged = 0;
    for (let i = 0; i < n; i++) {
      this.next[i] = -1;
      if (!this.classify(i)) { this.open(i, -1); continue; }
      const g = this.findFlow(i);
      if (g >= 0 && this.gOpen[g] && this.canAppend(g, i) && this.checked(g, i)) this.append(g, i);
      else this.open(i, this.l4);
    }
  }

  /** The newest group of packet i's flow among the last LOOKBACK, or -1. */
  private findFlow(i: number): number {
    const stop = Math.max(0, this.groups - LOOKBACK);
    for (let g = this.groups - 1; g >= stop; g--) {
      if (this.gHash[g] !== this.hash || this.gL4[g] !== this.l4 || this.gProto[g] !== this.proto) continue;
      if (this.sameFlow(this.gFirst[g]!, i)) return g;
    }
    return -1;
  }

  /** Starts a group with packet i (l4 < 0: a packet that merges with nothing). */
  private open(i: number, l4: number): void {
    const g = this.groups++;
    const b = this.bufs[i]!, o = this.offs[i]!, len = this.lens[i]!;
    this.gFirst[g] = i; this.gLast[g] = i; this.gSegs[g] = 1; this.gTotal[g] = len; this.gChecked[g] = 0;
    this.gL4[g] = l4;
    if (l4 < 0) { this.gOpen[g] = 0; this.gHash[g] = 0; this.gProto[g] = -1; return; }
    const proto = this.proto;
    const hdrLen = proto === IpProtocol.TCP ? l4 + (b[o + l4 + 12]! >> 4) * 4 : l4 + 8;
    const pay = len - hdrLen;
    this.gHash[g] = this.hash; this.gProto[g] = proto; this.gHdrLen[g] = hdrLen; this.gGsoSize[g] = pay;
    this.gNextSeq[g] = proto === IpProtocol.TCP ? (u32(b, o + l4 + 4) + pay) >>> 0 : 0;
    this.gOpen[g] = pay > 0 && !(proto === IpProtocol.TCP && (b[o + l4 + 13]! & PSH) !== 0) ? 1 : 0;
  }

  private append(g: number, i: number): void {
    const b = this.bufs[i]!, o = this.offs[i]!;
    const pay = this.lens[i]! - this.gHdrLen[g]!;
    this.next[this.gLast[g]!] = i;
    this.gLast[g] = i;
    this.gTotal[g] = this.gTotal[g]! + pay;
    this.gSegs[g] = this.gSegs[g]! + 1;
    const tcp = this.gProto[g] === IpProtocol.TCP;
    if (tcp) this.gNextSeq[g] = (this.gNextSeq[g]! + pay) >>> 0;
    if (pay < this.gGsoSize[g]! || (tcp && (b[o + this.gL4[g]! + 13]! & PSH) !== 0)) this.gOpen[g] = 0;
    this.merged++;
  }

  /**
   * With verification on, packet i and its group's first packet (once) must carry a valid
   * transport checksum before they merge; a group whose first packet fails is closed.
   */
  private checked(g: number, i: number): boolean {
    if (!this.verify) return true;
    const intact = this.intact;
    if (!this.gChecked[g]) {
      const f = this.gFirst[g]!;
      if (!intact?.[f] && !this.checksumValid(f, this.gL4[g]!, this.gProto[g]!)) { this.gOpen[g] = 0; return false; }
      this.gChecked[g] = 1;
    }
    return !!intact?.[i] || this.checksumValid(i, this.gL4[g]!, this.gProto[g]!);
  }

  private checksumValid(i: number, l4: number, proto: number): boolean {
    const b = this.bufs[i]!, o = this.offs[i]!, len = this.lens[i]!;
    const ip = o + this.link;
    return fold(sum16(b, o + l4, o + len, pseudoHeaderSum(b, ip, proto, len - l4))) === 0xffff;
  }

  /**
   * Whether packet i is a mergeable TCP/UDP packet; if so its transport offset (from the start
   * of the packet, link header included), protocol and a flow hash are left in l4/proto/hash.
   */
  private classify(i: number): boolean {
    const b = this.bufs[i]!, o = this.offs[i]!, len = this.lens[i]!;
    const link = this.link;
    if (len < link + 20) return false;
    if (link > 0) {
      const type = u16(b, o + 12);
      if (link !== 14 || (type !== EtherType.IPv4 && type !== EtherType.IPv6)) return false;
    }
    const ip = o + link;
    const version = b[ip]! >> 4;
    let l4: number; let proto: number;
    if (version === 4) {
      if (b[ip] !== 0x45 || u16(b, ip + 2) !== len - link || (u16(b, ip + 6) & 0x3fff) !== 0) return false; // options or fragments
      if (internetChecksum(b, ip, ip + 20) !== 0) return false;
      l4 = link + 20; proto = b[ip + 9]!;
    } else if (version === 6) {
      if (len < link + 40 || u16(b, ip + 4) + 40 !== len - link) return false;
      l4 = link + 40; proto = b[ip + 6]!; // extension headers are not merged
    } else return false;
    if (proto === IpProtocol.TCP) {
      if (len < l4 + 20) return false;
      const thl = (b[o + l4 + 12]! >> 4) * 4;
      if (thl < 20 || len < l4 + thl) return false;
      const flags = u16(b, o + l4 + 12) & 0x1ff;
      if (flags !== ACK && flags !== (ACK | PSH)) return false;
    } else if (proto === IpProtocol.UDP && this.udp) {
      if (len < l4 + 8 || u16(b, o + l4 + 4) !== len - l4) return false;
      if (version === 4 && u16(b, o + l4 + 6) === 0) return false; // no checksum: nothing to offload
    } else return false;
    // Addresses and ports mixed into 32 bits: a cheap first test before the byte comparison.
    let h = (u32(b, o + l4) ^ proto) | 0;
    const addrs = version === 4 ? ip + 12 : ip + 8;
    const addrEnd = version === 4 ? ip + 20 : ip + 40;
    for (let a = addrs; a < addrEnd; a += 4) h = (Math.imul(h, 0x01000193) ^ u32(b, a)) | 0;
    this.l4 = l4; this.proto = proto; this.hash = h;
    return true;
  }

  /** Same link header, addresses, protocol and ports (the caller matched l4, protocol and hash). */
  private sameFlow(f: number, i: number): boolean {
    const fb = this.bufs[f]!, fo = this.offs[f]!, pb = this.bufs[i]!, po = this.offs[i]!;
    const link = this.link;
    if (link > 0 && !bytesEqual(fb, fo, pb, po, link)) return false;
    const l4 = this.l4;
    if (l4 - link === 20) {
      if (!bytesEqual(fb, fo + link + 12, pb, po + link + 12, 8)) return false;
    } else if (!bytesEqual(fb, fo + link + 8, pb, po + link + 8, 32)) return false;
    return u32(fb, fo + l4) === u32(pb, po + l4);
  }

  private canAppend(g: number, i: number): boolean {
    const f = this.gFirst[g]!;
    const fb = this.bufs[f]!, fo = this.offs[f]!, pb = this.bufs[i]!, po = this.offs[i]!;
    const l4 = this.gL4[g]!, hdrLen = this.gHdrLen[g]!;
    const pay = this.lens[i]! - hdrLen;
    if (pay <= 0 || pay > this.gGsoSize[g]!) return false;
    if (this.gTotal[g]! - this.link + pay > this.maxSize || this.gSegs[g]! >= MAX_SEGMENTS) return false;
    const fi = fo + this.link, pi = po + this.link;
    // IP: TOS, TTL (and DF for v4) equal; v6: traffic class/flow label and hop limit.
    if (l4 - this.link === 20) {
      if (fb[fi + 1] !== pb[pi + 1] || fb[fi + 8] !== pb[pi + 8] || (fb[fi + 6]! & 0x40) !== (pb[pi + 6]! & 0x40)) return false;
    } else if (u32(fb, fi) !== u32(pb, pi) || fb[fi + 7] !== pb[pi + 7]) return false;
    if (this.gProto[g] === IpProtocol.TCP) {
      if ((pb[po + l4 + 12]! >> 4) * 4 !== hdrLen - l4) return false;
      if (u32(pb, po + l4 + 4) !== this.gNextSeq[g]) return false;
      if (u32(pb, po + l4 + 8) !== u32(fb, fo + l4 + 8) || u16(pb, po + l4 + 14) !== u16(fb, fo + l4 + 14)) return false;
      // Options equal byte for byte (timestamps included: the kernel would not merge either).
      return bytesEqual(fb, fo + l4 + 20, pb, po + l4 + 20, hdrLen - l4 - 20);
    }
    return true; // UDP: same flow, size rule checked above
  }

  /** Writes the planned groups into `out`, each as virtio_net_hdr + packet. */
  emit(out: Uint8Array): GroResult {
    const r = this.result;
    const hs = this.headerSize;
    let o = 0;
    for (let g = 0; g < this.groups; g++) {
      const need = this.gTotal[g]! + hs;
      if (out.length - o < need) throw new RangeError('GRO output buffer too small (use GroCoalescer.batchOutputBound)');
      r.offsets[g] = o;
      r.lengths[g] = need;
      this.emitGroup(g, out, o);
      o += need;
    }
    r.buffer = out;
    r.count = this.groups;
    r.merged = this.merged;
    return r;
  }

  private emitGroup(g: number, out: Uint8Array, o: number): void {
    const first = this.gFirst[g]!;
    const at = o + this.headerSize;
    const fb = this.bufs[first]!, fo = this.offs[first]!, flen = this.lens[first]!;
    out.set(fb.subarray(fo, fo + flen), at);
    if (this.gSegs[g] === 1) {
      out.fill(0, o, at);
      return;
    }
    const hdrLen = this.gHdrLen[g]!;
    let w = at + flen;
    for (let i = this.next[first]!; i >= 0; i = this.next[i]!) {
      const b = this.bufs[i]!, po = this.offs[i]!, len = this.lens[i]!;
      out.set(b.subarray(po + hdrLen, po + len), w);
      w += len - hdrLen;
    }
    this.writeMergedHeaders(g, out, o);
  }

  /**
   * Plans the groups as pieces to write gathered (GroPieces), copying only headers: each output
   * is its virtio_net_hdr (and, merged, its first packet's headers rebuilt) in `headers`, then
   * the packets' payloads where they lie. `headers` needs piecesHeaderBound bytes. Null when the
   * packets lie in more buffers than one gathered write takes (write emit()'s copy instead).
   */
  emitPieces(headers: Uint8Array): GroPieces | null {
    const p = this.pieces;
    const groups = this.groups;
    const n = this.planned;
    if (p.ends.length < groups) p.ends = new Uint32Array(Math.max(64, groups * 2));
    if (p.pieces.length < 3 * (groups + n)) p.pieces = new Uint32Array(Math.max(384, 6 * (groups + n)));
    p.sources.length = 1;
    p.sources[0] = headers;
    const hs = this.headerSize;
    const pieces = p.pieces;
    let h = 0;
    let k = 0;
    // A batch's packets usually share one buffer: look a source up only when it changes.
    let lastBuffer: ArrayBufferLike | undefined;
    let lastSource = 0;
    for (let g = 0; g < groups; g++) {
      const first = this.gFirst[g]!;
      const single = this.gSegs[g] === 1;
      const hdrLen = single ? 0 : this.gHdrLen[g]!;
      if (headers.length - h < hs + hdrLen) throw new RangeError('GRO header buffer too small (use GroCoalescer.piecesHeaderBound)');
      const fb = this.bufs[first]!, fo = this.offs[first]!;
      if (single) headers.fill(0, h, h + hs);
      else {
        headers.set(fb.subarray(fo, fo + hdrLen), h + hs);
        this.writeMergedHeaders(g, headers, h);
      }
      pieces[k * 3] = 0; pieces[k * 3 + 1] = h; pieces[k * 3 + 2] = hs + hdrLen; k++;
      h += hs + hdrLen;
      for (let i = first; i >= 0; i = this.next[i]!) {
        const b = this.bufs[i]!;
        if (b.buffer !== lastBuffer) {
          lastSource = this.sourceIndex(b);
          if (lastSource < 0) return null;
          lastBuffer = b.buffer;
        }
        const source = lastSource;
        const skip = i === first ? hdrLen : this.gHdrLen[g]!;
        pieces[k * 3] = source; pieces[k * 3 + 1] = b.byteOffset + this.offs[i]! + skip; pieces[k * 3 + 2] = this.lens[i]! - skip; k++;
      }
      p.ends[g] = k;
    }
    p.count = groups;
    p.merged = this.merged;
    return p;
  }

  /** Header bytes emitPieces may write for `packets` packets. */
  static piecesHeaderBound(packets: number, headerSize = VIRTIO_NET_HDR_LEN): number {
    return packets * (headerSize + MAX_HEADERS);
  }

  /** The index in pieces.sources of a view over the whole memory of `b`, added if new; -1 past the limit. */
  private sourceIndex(b: Uint8Array): number {
    const sources = this.pieces.sources;
    for (let s = sources.length - 1; s >= 1; s--) if (sources[s]!.buffer === b.buffer) return s;
    if (sources.length >= MAX_PIECE_SOURCES) return -1;
    sources.push(new Uint8Array(b.buffer));
    return sources.length - 1;
  }

  /**
   * Rebuilds group g's first headers, at out[o + headerSize ..), for the merged packet: IP
   * length (and IPv4 header checksum), the last segment's PSH, the pseudo-header sum the kernel
   * completes, and the virtio_net_hdr at out[o ..).
   */
  private writeMergedHeaders(g: number, out: Uint8Array, o: number): void {
    const at = o + this.headerSize;
    const hdrLen = this.gHdrLen[g]!;
    const link = this.link, l4 = this.gL4[g]!, proto = this.gProto[g]!;
    const ip = at + link;
    const ipLen = this.gTotal[g]! - link;
    const v4 = l4 - link === 20;
    if (v4) {
      put16(out, ip + 2, ipLen);
      put16(out, ip + 10, 0);
      put16(out, ip + 10, internetChecksum(out, ip, ip + 20));
    } else {
      put16(out, ip + 4, ipLen - 40);
    }
    const t = at + l4;
    const l4Len = this.gTotal[g]! - l4;
    if (proto === IpProtocol.TCP) {
      // The merged segment carries the last segment's PSH.
      const last = this.gLast[g]!;
      out[t + 13] = out[t + 13]! | (this.bufs[last]![this.offs[last]! + l4 + 13]! & PSH);
    } else {
      put16(out, t + 4, l4Len);
    }
    const csumOffset = proto === IpProtocol.TCP ? 16 : 6;
    put16(out, t + csumOffset, fold(pseudoHeaderSum(out, ip, proto, l4Len)));
    encodeVnetHdr({
      flags: VIRTIO_NET_HDR_F.NEEDS_CSUM,
      gsoType: proto === IpProtocol.TCP ? (v4 ? GsoType.TCPV4 : GsoType.TCPV6) : GsoType.UDP_L4,
      hdrLen, gsoSize: this.gGsoSize[g]!, csumStart: l4, csumOffset,
    }, out, o, this.headerSize, this.littleEndian);
  }
}
