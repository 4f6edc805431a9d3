// IPv4 (RFC 791): header view with options and fragment fields, checksum-maintaining setters.
import { PacketParseError, missing, parseError, problem, type ParseProblem } from './errors.js';
import { PacketView } from './view.js';
import { u16, u32, put16, put32, formatIPv4, parseIPv4, copyBytes } from './bytes.js';
import { applyChecksumDelta, internetChecksum, updateChecksum16, updateChecksum32 } from './checksum.js';
import { IpProtocol } from './protocols.js';

// Defined in protocols.ts; re-exported where importers found it before.
export { IpProtocol };

/** Checks version, header length and total length of the IPv4 packet at buf[off..end). */
export function checkIpv4(buf: Uint8Array, off: number, end: number): ParseProblem | undefined {
  const short = missing('ipv4', off, end, 20);
  if (short) return short;
  const vihl = buf[off]!;
  if (vihl >> 4 !== 4) return problem('ipv4', `version is ${vihl >> 4}, not 4`, off);
  const hl = (vihl & 15) * 4;
  if (hl < 20) return problem('ipv4', `header length ${hl} is below 20`, off);
  const noOptions = missing('ipv4', off, end, hl, 'options');
  if (noOptions) return noOptions;
  const total = u16(buf, off + 2);
  if (total < hl) return problem('ipv4', `total length ${total} is shorter than the header`, off);
  if (total > end - off) return problem('ipv4', `total length ${total} exceeds the ${end - off} bytes present`, off);
  return undefined;
}

/** Zero-copy view of an IPv4 packet in buf[off..end); payload ends at off+totalLength. */
export class Ipv4View extends PacketView {
  /** Checks version, header length and total length against the buffer; throws PacketParseError. */
  override wrap(buf: Uint8Array, off = 0, end = buf.length): this {
    const p = checkIpv4(buf, off, end);
    if (p) throw parseError(p);
    this.buf = buf; this.off = off; this.end = end;
    return this;
  }

  /** wrap() that answers false for a malformed packet instead of throwing. */
  tryWrap(buf: Uint8Array, off = 0, end = buf.length): boolean {
    if (checkIpv4(buf, off, end)) return false;
    this.buf = buf; this.off = off; this.end = end;
    return true;
  }

  get version(): number { return 4; }
  get headerLength(): number { return (this.buf[this.off]! & 15) * 4; }
  get dscp(): number { return this.buf[this.off + 1]! >> 2; }
  get ecn(): number { return this.buf[this.off + 1]! & 3; }
  get totalLength(): number { return u16(this.buf, this.off + 2); }
  set totalLength(v: number) { this.setWord(2, v); }
  get identification(): number { return u16(this.buf, this.off + 4); }
  set identification(v: number) { this.setWord(4, v); }
  get dontFragment(): boolean { return (this.buf[this.off + 6]! & 0x40) !== 0; }
  get moreFragments(): boolean { return (this.buf[this.off + 6]! & 0x20) !== 0; }
  /** Fragment offset in bytes. */
  get fragmentOffset(): number { return (u16(this.buf, this.off + 6) & 0x1fff) * 8; }
  get isFragment(): boolean { return (u16(this.buf, this.off + 6) & 0x3fff) !== 0; }
  get ttl(): number { return this.buf[this.off + 8]!; }
  set ttl(v: number) { this.setWord(8, (v << 8) | this.buf[this.off + 9]!); }
  get protocol(): number { return this.buf[this.off + 9]!; }
  get checksum(): number { return u16(this.buf, this.off + 10); }
  set checksum(v: number) { put16(this.buf, this.off + 10, v); }
  /** Source address as a 32-bit unsigned number. */
  get src(): number { return u32(this.buf, this.off + 12); }
  get dst(): number { return u32(this.buf, this.off + 16); }
  get srcAddress(): string { return formatIPv4(this.buf, this.off + 12); }
  get dstAddress(): string { return formatIPv4(this.buf, this.off + 16); }
  get payloadOffset(): number { return this.off + this.headerLength; }
  get payloadEnd(): number { return this.off + this.totalLength; }
  get payload(): Uint8Array { return this.buf.subarray(this.payloadOffset, this.payloadEnd); }

  /** Rewrites the source address, keeping the header checksum valid (RFC 1624). Returns the old one. */
  setSrc(addr: number): number { return this.setAddr(12, addr); }
  setDst(addr: number): number { return this.setAddr(16, addr); }

  private setAddr(at: number, addr: number): number {
    const old = u32(this.buf, this.off + at);
    put32(this.buf, this.off + at, addr);
    this.checksum = updateChecksum32(this.checksum, old, addr >>> 0);
    return old;
  }

  private setWord(at: number, v: number): void {
    const old = u16(this.buf, this.off + at);
    put16(this.buf, this.off + at, v);
    this.checksum = updateChecksum16(this.checksum, old, v & 0xffff);
  }

  /** True when the header checksum verifies. */
  verifyChecksum(): boolean { return internetChecksum(this.buf, this.off, this.off + this.headerLength) === 0; }
  /** Recomputes the header checksum from scratch. */
  fillChecksum(): void {
    this.checksum = 0;
    this.checksum = internetChecksum(this.buf, this.off, this.off + this.headerLength);
  }

  /** Walks the options; throws PacketParseError on a malformed one. */
  options(): Ipv4Option[] {
    const out: Ipv4Option[] = [];
    const end = this.off + this.headerLength;
    for (let o = this.off + 20; o < end;) {
      const type = this.buf[o]!;
      if (type === 0) break;
      if (type === 1) { out.push({ type, data: new Uint8Array(0) }); o++; continue; }
      if (o + 2 > end) throw new PacketParseError('ipv4', 'option length missing', o);
      const len = this.buf[o + 1]!;
      if (len < 2 || o + len > end) throw new PacketParseError('ipv4', `option ${type} has bad length ${len}`, o);
      out.push({ type, data: this.buf.subarray(o + 2, o + len) });
      o += len;
    }
    return out;
  }
}

export interface Ipv4Option { type: number; data: Uint8Array }

export interface Ipv4Repr {
  dscp?: number; ecn?: number;
  identification?: number;
  dontFragment?: boolean; moreFragments?: boolean;
  /** Fragment offset in bytes (multiple of 8). */
  fragmentOffset?: number;
  ttl?: number;
  protocol: number;
  src: string; dst: string;
  /** Raw option bytes, padded by the builder to a multiple of 4 with end-of-list zeros. */
  options?: Uint8Array;
  payload: Uint8Array;
  /** Header checksum; computed when omitted. */
  checksum?: number;
}

export function ipv4HeaderLength(r: Ipv4Repr): number {
  return 20 + (((r.options?.length ?? 0) + 3) & ~3);
}

export function emitIpv4(r: Ipv4Repr, buf: Uint8Array, off = 0): number {
  const hl = ipv4HeaderLength(r);
  const total = hl + r.payload.length;
  if (total > 0xffff) throw new RangeError(`IPv4 packet of ${total} bytes exceeds 65535`);
  buf.fill(0, off, off + hl);
  buf[off] = 0x40 | (hl >> 2);
  buf[off + 1] = ((r.dscp ?? 0) << 2) | (r.ecn ?? 0);
  put16(buf, off + 2, total);
  put16(buf, off + 4, r.identification ?? 0);
  put16(buf, off + 6, (r.dontFragment ? 0x4000 : 0) | (r.moreFragments ? 0x2000 : 0) | ((r.fragmentOffset ?? 0) >> 3));
  buf[off + 8] = r.ttl ?? 64;
  buf[off + 9] = r.protocol;
  buf.set(parseIPv4(r.src), off + 12);
  buf.set(parseIPv4(r.dst), off + 16);
  if (r.options) buf.set(r.options, off + 20);
  put16(buf, off + 10, r.checksum ?? internetChecksum(buf, off, off + hl));
  buf.set(r.payload, off + hl);
  return total;
}

export function buildIpv4(r: Ipv4Repr): Buffer {
  const out = Buffer.alloc(ipv4HeaderLength(r) + r.payload.length);
  emitIpv4(r, out);
  return out;
}

export function parseIpv4(v: Ipv4View): Ipv4Repr {
  const hl = v.headerLength;
  return {
    dscp: v.dscp, ecn: v.ecn, identification: v.identification,
    dontFragment: v.dontFragment, moreFragments: v.moreFragments, fragmentOffset: v.fragmentOffset,
    ttl: v.ttl, protocol: v.protocol, src: v.srcAddress, dst: v.dstAddress,
    ...(hl > 20 ? { options: copyBytes(v.buf, v.off + 20, v.off + hl) } : {}),
    payload: v.payload, checksum: v.checksum,
  };
}

/**
 * NAT-style in-place rewrite of an IPv4 packet's addresses and (for TCP/UDP first fragments)
 * ports, updating the header checksum and the transport checksum incrementally (RFC 1624) from
 * one shared delta. Addresses are 32-bit numbers. Returns false when the ports could not be
 * rewritten (not TCP/UDP, a non-first fragment, or a truncated transport header); the addresses
 * and checksums are valid either way.
 */
export function rewriteIpv4Flow(v: Ipv4View, src: number, dst: number, srcPort: number, dstPort: number): boolean {
  const b = v.buf; const o = v.off;
  const os = u32(b, o + 12); const od = u32(b, o + 16);
  // Address delta: ~old + new for each 16-bit half.
  const addrDelta = (~os >>> 16 & 0xffff) + (~os & 0xffff) + (~od >>> 16 & 0xffff) + (~od & 0xffff)
    + (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff);
  put32(b, o + 12, src); put32(b, o + 16, dst);
  put16(b, o + 10, applyChecksumDelta(u16(b, o + 10), addrDelta));
  const proto = b[o + 9]!;
  const l4 = o + (b[o]! & 15) * 4;
  const end = o + u16(b, o + 2);
  if ((proto !== IpProtocol.TCP && proto !== IpProtocol.UDP) || (u16(b, o + 6) & 0x1fff) !== 0) {
    return false;
  }
  const csumAt = proto === IpProtocol.TCP ? l4 + 16 : l4 + 6;
  if (csumAt + 2 > end) return false;
  const osp = u16(b, l4); const odp = u16(b, l4 + 2);
  put16(b, l4, srcPort); put16(b, l4 + 2, dstPort);
  const c = u16(b, csumAt);
  if (proto === IpProtocol.UDP && c === 0) return true; // no UDP checksum to maintain
  const delta = addrDelta + (~osp & 0xffff) + (~odp & 0xffff) + srcPort + dstPort;
  const n = applyChecksumDelta(c, delta);
  put16(b, csumAt, proto === IpProtocol.UDP && n === 0 ? 0xffff : n);
  return true;
}

