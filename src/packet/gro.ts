// Generic receive offload in user space: a batch of TCP (and UDP) packets becomes as few
// super-packets as possible, each preceded by the virtio_net_hdr the kernel expects on a write
// to a TUN with IFF_VNET_HDR: NEEDS_CSUM with the pseudo-header sum in the checksum field,
// gso_type TCPV4/TCPV6 (or UDP_L4), gso_size = the first segment's payload, hdr_len and
// csum_start/csum_offset. Packets that cannot be merged pass through with an all-zero header.
//
// Merge rules (those of the kernel's tcp_gro_receive, simplified): same addresses and ports,
// same IP TOS/TTL/DF, same ACK number, window and TCP options, flags ACK (PSH only on the last
// merged segment), contiguous sequence numbers, every segment the same size except a shorter
// last one, total at most 65535 bytes of IP, and a valid checksum on every input packet.
import { u16, u32, put16, bytesEqual } from './bytes.js';
import { fold, internetChecksum, pseudoHeaderSum, sum16 } from './checksum.js';
import { encodeVnetHdr, GsoType, VirtioNetHdrFlags, VIRTIO_NET_HDR_LEN } from './tunheaders.js';

const ACK = 0x10, PSH = 0x08;

export interface GroOptions {
  /** Verify each packet's transport checksum before merging (default true): a bad packet is passed on unmerged. */
  verifyChecksums?: boolean;
  /** Also merge UDP datagrams of one flow into UDP_L4 (USO) super-packets (default false). */
  udp?: boolean;
  /** Largest IP packet to build (default 65535). */
  maxSize?: number;
}

export interface GroResult {
  /** Number of output packets. */
  count: number;
  /** Output packet i (virtio_net_hdr + IP packet) is out[offsets[i] .. offsets[i] + lengths[i]). */
  offsets: Uint32Array;
  lengths: Uint32Array;
  /** Input packets merged into another (not counting each item's first). */
  merged: number;
}

interface Item {
  first: number; last: number;
  l4: number; hdrLen: number; proto: number; version: number;
  gsoSize: number; nextSeq: number; totalLen: number; segs: number; closed: boolean;
}

/** Reusable coalescer: keeps its scratch arrays between batches. */
export class GroCoalescer {
  private next = new Int32Array(256);
  private items: Item[] = [];
  private offsets = new Uint32Array(256);
  private lengths = new Uint32Array(256);
  private readonly verify: boolean;
  private readonly udp: boolean;
  private readonly maxSize: number;
  /** What classify() found in the packet it accepted last (fields, not an object per packet). */
  private l4 = 0;
  private proto = 0;
  private version = 0;

  constructor(opts: GroOptions = {}) {
    this.verify = opts.verifyChecksums ?? true;
    this.udp = opts.udp ?? false;
    this.maxSize = opts.maxSize ?? 65535;
  }

  /** Upper bound of output bytes for a batch (pass a buffer at least this large). */
  static outputBound(packets: readonly Uint8Array[]): number {
    let n = 0;
    for (const p of packets) n += p.length + VIRTIO_NET_HDR_LEN;
    return n;
  }

  /**
   * Coalesces `packets` (IP packets, as on a TUN without headers) into `out`. The result's
   * arrays are reused by the next call.
   */
  coalesce(packets: readonly Uint8Array[], out: Uint8Array): GroResult {
    const n = packets.length;
    if (this.next.length < n) { this.next = new Int32Array(n * 2); this.offsets = new Uint32Array(n * 2); this.lengths = new Uint32Array(n * 2); }
    const items = this.items;
    items.length = 0;
    const next = this.next;
    let merged = 0;
    for (let i = 0; i < n; i++) {
      next[i] = -1;
      const p = packets[i]!;
      if (!this.classify(p)) { items.push(single(i, p)); continue; }
      const l4 = this.l4, proto = this.proto, version = this.version;
      let joined = false;
      // Newest item of the same flow first: a packet may only extend the latest one.
      for (let k = items.length - 1; k >= 0; k--) {
        const it = items[k]!;
        if (it.proto !== proto || it.version !== version || it.l4 !== l4) continue;
        const f = packets[it.first]!;
        if (!sameFlow(f, p, version, l4)) continue;
        if (!it.closed && this.canAppend(it, f, p)) {
          next[it.last] = i;
          it.last = i;
          const pay = p.length - it.hdrLen;
          it.totalLen += pay;
          it.segs++;
          if (proto === 6) it.nextSeq = (it.nextSeq + pay) >>> 0;
          if (pay < it.gsoSize || (proto === 6 && (p[l4 + 13]! & PSH))) it.closed = true;
          merged++;
          joined = true;
        }
        break;
      }
      if (!joined) {
        const hdrLen = proto === 6 ? l4 + (p[l4 + 12]! >> 4) * 4 : l4 + 8;
        const pay = p.length - hdrLen;
        items.push({
          first: i, last: i, l4, hdrLen, proto, version, gsoSize: pay,
          nextSeq: proto === 6 ? (u32(p, l4 + 4) + pay) >>> 0 : 0, totalLen: p.length, segs: 1,
          closed: pay === 0 || (proto === 6 && (p[l4 + 13]! & PSH) !== 0),
        });
      }
    }
    let o = 0;
    for (let k = 0; k < items.length; k++) {
      const it = items[k]!;
      const need = it.totalLen + VIRTIO_NET_HDR_LEN;
      if (out.length - o < need) throw new RangeError('GRO output buffer too small (use GroCoalescer.outputBound)');
      this.offsets[k] = o;
      this.lengths[k] = need;
      this.emit(it, packets, out, o);
      o += need;
    }
    return { count: items.length, offsets: this.offsets, lengths: this.lengths, merged };
  }

  /** Whether `p` is a mergeable TCP/UDP packet; if so its transport offset, protocol and IP version are left in l4/proto/version. */
  private classify(p: Uint8Array): boolean {
    if (p.length < 20) return false;
    const version = p[0]! >> 4;
    let l4: number; let proto: number;
    if (version === 4) {
      if (p[0] !== 0x45 || u16(p, 2) !== p.length || (u16(p, 6) & 0x3fff) !== 0) return false; // options or fragments
      if (internetChecksum(p, 0, 20) !== 0) return false;
      l4 = 20; proto = p[9]!;
    } else if (version === 6) {
      if (p.length < 40 || u16(p, 4) + 40 !== p.length) return false;
      l4 = 40; proto = p[6]!; // extension headers are not merged
    } else return false;
    if (proto === 6) {
      if (p.length < l4 + 20) return false;
      const thl = (p[l4 + 12]! >> 4) * 4;
      if (thl < 20 || p.length < l4 + thl) return false;
      const flags = u16(p, l4 + 12) & 0x1ff;
      if (flags !== ACK && flags !== (ACK | PSH)) return false;
    } else if (proto === 17 && this.udp) {
      if (p.length < l4 + 8 || u16(p, l4 + 4) !== p.length - l4) return false;
      if (version === 4 && u16(p, l4 + 6) === 0) return false; // no checksum: nothing to offload
    } else return false;
    if (this.verify && fold(sum16(p, l4, p.length, pseudoHeaderSum(p, 0, proto, p.length - l4))) !== 0xffff) return false;
    this.l4 = l4; this.proto = proto; this.version = version;
    return true;
  }

  private canAppend(it: Item, f: Uint8Array, p: Uint8Array): boolean {
    const l4 = it.l4;
    const pay = p.length - it.hdrLen;
    if (pay <= 0 || pay > it.gsoSize) return false;
    if (it.totalLen + pay > this.maxSize || it.segs >= 64) return false;
    // IP: TOS, TTL (and DF for v4) equal; v6: traffic class/flow label and hop limit.
    if (it.version === 4) {
      if (f[1] !== p[1] || f[8] !== p[8] || (f[6]! & 0x40) !== (p[6]! & 0x40)) return false;
    } else if (u32(f, 0) !== u32(p, 0) || f[7] !== p[7]) return false;
    if (it.proto === 6) {
      if (p.length < it.hdrLen || (p[l4 + 12]! >> 4) * 4 !== it.hdrLen - l4) return false;
      if (u32(p, l4 + 4) !== it.nextSeq) return false;
      if (u32(p, l4 + 8) !== u32(f, l4 + 8) || u16(p, l4 + 14) !== u16(f, l4 + 14)) return false;
      // Options equal byte for byte (timestamps included: the kernel would not merge either).
      if (!bytesEqual(f, l4 + 20, p, l4 + 20, it.hdrLen - l4 - 20)) return false;
      return true;
    }
    return true; // UDP: same flow, size rule checked above
  }

  private emit(it: Item, packets: readonly Uint8Array[], out: Uint8Array, o: number): void {
    const first = packets[it.first]!;
    const ip = o + VIRTIO_NET_HDR_LEN;
    if (it.segs === 1) {
      out.fill(0, o, ip);
      out.set(first, ip);
      return;
    }
    out.set(first, ip);
    let w = ip + first.length;
    for (let i = this.next[it.first]!; i >= 0; i = this.next[i]!) {
      const p = packets[i]!;
      out.set(p.subarray(it.hdrLen), w);
      w += p.length - it.hdrLen;
    }
    const total = it.totalLen;
    let flagsOr = 0;
    if (it.version === 4) {
      put16(out, ip + 2, total);
      put16(out, ip + 10, 0);
      put16(out, ip + 10, internetChecksum(out, ip, ip + 20));
    } else {
      put16(out, ip + 4, total - 40);
    }
    const t = ip + it.l4;
    if (it.proto === 6) {
      // The merged segment carries the last segment's PSH.
      const last = packets[it.last]!;
      flagsOr = last[it.l4 + 13]! & PSH;
      out[t + 13] = out[t + 13]! | flagsOr;
    } else {
      put16(out, t + 4, total - it.l4);
    }
    const csumOffset = it.proto === 6 ? 16 : 6;
    put16(out, t + csumOffset, fold(pseudoHeaderSum(out, ip, it.proto, total - it.l4)));
    encodeVnetHdr({
      flags: VirtioNetHdrFlags.NEEDS_CSUM,
      gsoType: it.proto === 6 ? (it.version === 4 ? GsoType.TCPV4 : GsoType.TCPV6) : GsoType.UDP_L4,
      hdrLen: it.hdrLen, gsoSize: it.gsoSize, csumStart: it.l4, csumOffset,
    }, out, o);
  }
}

function single(i: number, p: Uint8Array): Item {
  return { first: i, last: i, l4: 0, hdrLen: 0, proto: -1, version: 0, gsoSize: 0, nextSeq: 0, totalLen: p.length, segs: 1, closed: true };
}

function sameFlow(f: Uint8Array, p: Uint8Array, version: number, l4: number): boolean {
  if (f.length < l4 + 4 || p.length < l4 + 4) return false;
  if (version === 4) {
    if (f[9] !== p[9] || !bytesEqual(f, 12, p, 12, 8)) return false;
  } else if (f[6] !== p[6] || !bytesEqual(f, 8, p, 8, 32)) return false;
  return u32(f, l4) === u32(p, l4);
}
