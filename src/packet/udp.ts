// UDP (RFC 768).
import { missing, parseError, problem, type ParseProblem } from './errors.js';
import { PortsView } from './view.js';
import { u16, put16 } from './bytes.js';
import { updateChecksum16 } from './checksum.js';
import { pseudoChecksum, type IpContext } from './pseudo.js';
import { IpProtocol } from './protocols.js';

/** Checks the UDP header at buf[off..end) (`end`: the end of the IP payload) and its length. */
export function checkUdp(buf: Uint8Array, off: number, end: number): ParseProblem | undefined {
  const short = missing('udp', off, end, 8);
  if (short) return short;
  const len = u16(buf, off + 4);
  if (len < 8) return problem('udp', `length ${len} is below 8`, off);
  if (len > end - off) return problem('udp', `length ${len} exceeds the ${end - off} bytes present`, off);
  return undefined;
}

export class UdpView extends PortsView {
  /** `end` is the end of the IP payload; the UDP length must fit inside it. */
  override wrap(buf: Uint8Array, off = 0, end = buf.length): this {
    const p = checkUdp(buf, off, end);
    if (p) throw parseError(p);
    this.buf = buf; this.off = off; this.end = end;
    return this;
  }

  /** wrap() that answers false for a malformed header instead of throwing. */
  tryWrap(buf: Uint8Array, off = 0, end = buf.length): boolean {
    if (checkUdp(buf, off, end)) return false;
    this.buf = buf; this.off = off; this.end = end;
    return true;
  }

  get length(): number { return u16(this.buf, this.off + 4); }
  get checksum(): number { return u16(this.buf, this.off + 6); }
  set checksum(v: number) { put16(this.buf, this.off + 6, v); }
  get payloadOffset(): number { return this.off + 8; }
  get payload(): Uint8Array { return this.buf.subarray(this.off + 8, this.off + this.length); }

  /** Updates a port and the checksum; a zero (absent, IPv4 only) checksum stays zero. */
  protected override setWord(at: number, v: number): void {
    const old = u16(this.buf, this.off + at);
    put16(this.buf, this.off + at, v);
    const c = this.checksum;
    if (c !== 0) this.checksum = updateChecksum16(c, old, v) || 0xffff;
  }

  /** Adjusts the checksum after a 32-bit pseudo-header field (an IPv4 address) changed. */
  adjustForAddress(oldWord32: number, newWord32: number): void {
    const c = this.checksum;
    if (c === 0) return;
    let r = updateChecksum16(c, oldWord32 >>> 16, newWord32 >>> 16);
    r = updateChecksum16(r, oldWord32 & 0xffff, newWord32 & 0xffff);
    this.checksum = r || 0xffff;
  }
}

export interface UdpRepr {
  srcPort: number; dstPort: number;
  payload: Uint8Array;
  /** Checksum; computed from `ip` when omitted (0 without `ip`). */
  checksum?: number;
}

export function emitUdp(r: UdpRepr, buf: Uint8Array, off = 0, ip?: IpContext): number {
  const len = 8 + r.payload.length;
  put16(buf, off, r.srcPort);
  put16(buf, off + 2, r.dstPort);
  put16(buf, off + 4, len);
  put16(buf, off + 6, 0);
  buf.set(r.payload, off + 8);
  let c = r.checksum;
  if (c === undefined) c = ip ? pseudoChecksum(ip, IpProtocol.UDP, buf, off, len) || 0xffff : 0;
  put16(buf, off + 6, c);
  return len;
}

export function buildUdp(r: UdpRepr, ip?: IpContext): Buffer {
  const out = Buffer.alloc(8 + r.payload.length);
  emitUdp(r, out, 0, ip);
  return out;
}

export function parseUdp(v: UdpView): UdpRepr {
  return { srcPort: v.srcPort, dstPort: v.dstPort, payload: v.payload, checksum: v.checksum };
}
