// TCP (RFC 9293) header view with option decoding (MSS, window scale, SACK, timestamps).
import { PacketParseError, missing, parseError, problem, type ParseProblem } from './errors.js';
import { PortsView } from './view.js';
import { u16, u32, put16, put32, copyBytes } from './bytes.js';
import { applyChecksumDelta, applyPartialChecksumDelta, updateChecksum16, updateChecksum32 } from './checksum.js';
import { pseudoChecksum, type IpContext } from './pseudo.js';
import { IpProtocol } from './protocols.js';

export const TcpFlags = {
  FIN: 0x01, SYN: 0x02, RST: 0x04, PSH: 0x08, ACK: 0x10, URG: 0x20, ECE: 0x40, CWR: 0x80, AE: 0x100,
} as const;

export const TcpOptionKind = { EOL: 0, NOP: 1, MSS: 2, WindowScale: 3, SackPermitted: 4, Sack: 5, Timestamps: 8 } as const;

/** Checks the TCP header at buf[off..end) (`end`: the end of the segment) and its data offset. */
export function checkTcp(buf: Uint8Array, off: number, end: number): ParseProblem | undefined {
  const short = missing('tcp', off, end, 20);
  if (short) return short;
  const hl = (buf[off + 12]! >> 4) * 4;
  if (hl < 20) return problem('tcp', `data offset ${hl} is below 20`, off);
  return missing('tcp', off, end, hl, 'options');
}

export class TcpView extends PortsView {
  /** `end` is the end of the segment (the IP payload end). */
  override wrap(buf: Uint8Array, off = 0, end = buf.length): this {
    const p = checkTcp(buf, off, end);
    if (p) throw parseError(p);
    this.buf = buf; this.off = off; this.end = end;
    return this;
  }

  /** wrap() that answers false for a malformed header instead of throwing. */
  tryWrap(buf: Uint8Array, off = 0, end = buf.length): boolean {
    if (checkTcp(buf, off, end)) return false;
    this.buf = buf; this.off = off; this.end = end;
    return true;
  }

  get seq(): number { return u32(this.buf, this.off + 4); }
  set seq(v: number) { this.setLong(4, v); }
  get ack(): number { return u32(this.buf, this.off + 8); }
  set ack(v: number) { this.setLong(8, v); }
  get headerLength(): number { return (this.buf[this.off + 12]! >> 4) * 4; }
  /** The 9 flag bits (FIN..CWR plus AE/NS). */
  get flags(): number { return u16(this.buf, this.off + 12) & 0x1ff; }
  set flags(v: number) { this.setWord(12, (u16(this.buf, this.off + 12) & 0xfe00) | (v & 0x1ff)); }
  get window(): number { return u16(this.buf, this.off + 14); }
  set window(v: number) { this.setWord(14, v); }
  get checksum(): number { return u16(this.buf, this.off + 16); }
  set checksum(v: number) { put16(this.buf, this.off + 16, v); }
  get urgent(): number { return u16(this.buf, this.off + 18); }
  get payloadOffset(): number { return this.off + this.headerLength; }
  get payloadLength(): number { return this.end - this.off - this.headerLength; }
  get payload(): Uint8Array { return this.buf.subarray(this.payloadOffset, this.end); }
  hasFlag(f: number): boolean { return (this.flags & f) !== 0; }

  protected override setWord(at: number, v: number): void {
    const old = u16(this.buf, this.off + at);
    put16(this.buf, this.off + at, v);
    this.checksum = updateChecksum16(this.checksum, old, v & 0xffff);
  }

  private setLong(at: number, v: number): void {
    const old = u32(this.buf, this.off + at);
    put32(this.buf, this.off + at, v);
    this.checksum = updateChecksum32(this.checksum, old, v >>> 0);
  }

  /** Adjusts the checksum after a 32-bit pseudo-header field (an IPv4 address) changed. */
  adjustForAddress(oldWord32: number, newWord32: number): void {
    this.checksum = updateChecksum32(this.checksum, oldWord32 >>> 0, newWord32 >>> 0);
  }

  /**
   * Adds a precomputed RFC 1624 delta (checksumDelta) to the checksum. `partial`: the field holds
   * the pseudo-header sum of a CHECKSUM_PARTIAL packet (virtio_net_hdr NEEDS_CSUM), not a checksum.
   */
  adjustChecksum(delta: number, partial = false): void {
    const c = this.checksum;
    this.checksum = partial ? applyPartialChecksumDelta(c, delta) : applyChecksumDelta(c, delta);
  }

  /** Decodes the options; throws PacketParseError on a malformed one. */
  options(): TcpOptions {
    const out: TcpOptions = {};
    const end = this.off + this.headerLength;
    const b = this.buf;
    for (let o = this.off + 20; o < end;) {
      const kind = b[o]!;
      if (kind === 0) break;
      if (kind === 1) { o++; continue; }
      if (o + 2 > end) throw new PacketParseError('tcp', 'option length missing', o);
      const len = b[o + 1]!;
      if (len < 2 || o + len > end) throw new PacketParseError('tcp', `option ${kind} has bad length ${len}`, o);
      const bad = () => new PacketParseError('tcp', `option ${kind} has bad length ${len}`, o);
      switch (kind) {
        case 2: if (len !== 4) throw bad(); out.mss = u16(b, o + 2); break;
        case 3: if (len !== 3) throw bad(); out.windowScale = b[o + 2]; break;
        case 4: if (len !== 2) throw bad(); out.sackPermitted = true; break;
        case 5: {
          if ((len - 2) % 8 !== 0) throw bad();
          out.sack = [];
          for (let i = o + 2; i < o + len; i += 8) out.sack.push([u32(b, i), u32(b, i + 4)]);
          break;
        }
        case 8: if (len !== 10) throw bad(); out.timestamp = [u32(b, o + 2), u32(b, o + 6)]; break;
        default: (out.unknown ??= []).push({ kind, data: b.subarray(o + 2, o + len) });
      }
      o += len;
    }
    return out;
  }

  /** Offset of the timestamp option's value, or -1 (fast path for GRO; no allocation). */
  timestampOffset(): number {
    const end = this.off + this.headerLength;
    for (let o = this.off + 20; o < end;) {
      const kind = this.buf[o]!;
      if (kind === 0) return -1;
      if (kind === 1) { o++; continue; }
      const len = this.buf[o + 1]!;
      if (len < 2) return -1;
      if (kind === 8 && len === 10 && o + 10 <= end) return o + 2;
      o += len;
    }
    return -1;
  }
}

export interface TcpOptions {
  mss?: number;
  windowScale?: number;
  sackPermitted?: boolean;
  sack?: [number, number][];
  /** [TSval, TSecr] */
  timestamp?: [number, number];
  unknown?: { kind: number; data: Uint8Array }[];
}

/** Encodes options the way Linux lays them out (NOP-padded to 4-byte alignment). */
export function encodeTcpOptions(o: TcpOptions): Uint8Array {
  const parts: number[] = [];
  if (o.mss !== undefined) parts.push(2, 4, o.mss >> 8, o.mss & 0xff);
  if (o.sackPermitted && o.timestamp) {
    parts.push(4, 2, 8, 10, ...be32(o.timestamp[0]), ...be32(o.timestamp[1]));
  } else {
    if (o.timestamp) parts.push(1, 1, 8, 10, ...be32(o.timestamp[0]), ...be32(o.timestamp[1]));
    if (o.sackPermitted) parts.push(1, 1, 4, 2);
  }
  if (o.windowScale !== undefined) parts.push(1, 3, 3, o.windowScale);
  if (o.sack?.length) {
    parts.push(1, 1, 5, 2 + 8 * o.sack.length);
    for (const [l, r] of o.sack) parts.push(...be32(l), ...be32(r));
  }
  for (const u of o.unknown ?? []) parts.push(u.kind, u.data.length + 2, ...u.data);
  while (parts.length % 4 !== 0) parts.push(0);
  if (parts.length > 40) throw new RangeError(`TCP options take ${parts.length} bytes; at most 40 fit`);
  return Uint8Array.from(parts);
}

function be32(v: number): number[] { return [(v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff]; }

export interface TcpRepr {
  srcPort: number; dstPort: number;
  seq: number; ack: number;
  flags: number;
  window: number;
  urgent?: number;
  /** Raw option bytes (padded by the builder to 4 with EOL) or decoded options. */
  options?: Uint8Array | TcpOptions;
  payload: Uint8Array;
  /** Computed from `ip` when omitted (0 without `ip`). */
  checksum?: number;
}

function optionBytes(r: TcpRepr): Uint8Array {
  if (!r.options) return new Uint8Array(0);
  return r.options instanceof Uint8Array ? r.options : encodeTcpOptions(r.options);
}

export function tcpHeaderLength(r: TcpRepr): number {
  return 20 + ((optionBytes(r).length + 3) & ~3);
}

export function emitTcp(r: TcpRepr, buf: Uint8Array, off = 0, ip?: IpContext): number {
  const opts = optionBytes(r);
  const hl = 20 + ((opts.length + 3) & ~3);
  if (hl > 60) throw new RangeError('TCP options exceed 40 bytes');
  const len = hl + r.payload.length;
  buf.fill(0, off, off + hl);
  put16(buf, off, r.srcPort); put16(buf, off + 2, r.dstPort);
  put32(buf, off + 4, r.seq); put32(buf, off + 8, r.ack);
  put16(buf, off + 12, ((hl / 4) << 12) | (r.flags & 0x1ff));
  put16(buf, off + 14, r.window);
  put16(buf, off + 18, r.urgent ?? 0);
  buf.set(opts, off + 20);
  buf.set(r.payload, off + hl);
  put16(buf, off + 16, r.checksum ?? (ip ? pseudoChecksum(ip, IpProtocol.TCP, buf, off, len) : 0));
  return len;
}

export function buildTcp(r: TcpRepr, ip?: IpContext): Buffer {
  const out = Buffer.alloc(tcpHeaderLength(r) + r.payload.length);
  emitTcp(r, out, 0, ip);
  return out;
}

export function parseTcp(v: TcpView): TcpRepr {
  const hl = v.headerLength;
  return {
    srcPort: v.srcPort, dstPort: v.dstPort, seq: v.seq, ack: v.ack, flags: v.flags, window: v.window,
    urgent: v.urgent, ...(hl > 20 ? { options: copyBytes(v.buf, v.off + 20, v.off + hl) } : {}),
    payload: v.payload, checksum: v.checksum,
  };
}

/** Human-readable flag letters as tcpdump prints them ("S.", "P.", "F.", "R", ...). */
export function tcpFlagString(flags: number): string {
  let s = '';
  if (flags & TcpFlags.FIN) s += 'F';
  if (flags & TcpFlags.SYN) s += 'S';
  if (flags & TcpFlags.RST) s += 'R';
  if (flags & TcpFlags.PSH) s += 'P';
  if (flags & TcpFlags.URG) s += 'U';
  if (flags & TcpFlags.ECE) s += 'E';
  if (flags & TcpFlags.CWR) s += 'W';
  if (flags & TcpFlags.ACK) s += '.';
  return s || 'none';
}
