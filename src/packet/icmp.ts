// ICMPv4 (RFC 792): type, code, checksum and the 4-byte rest-of-header (id/sequence for echo).
import { IcmpHeaderView } from './view.js';
import { need } from './errors.js';
import { u32, put16, put32 } from './bytes.js';
import { internetChecksum } from './checksum.js';

export const IcmpType = {
  EchoReply: 0, DestinationUnreachable: 3, Redirect: 5, EchoRequest: 8, TimeExceeded: 11, ParameterProblem: 12,
} as const;

export class IcmpView extends IcmpHeaderView {
  override wrap(buf: Uint8Array, off = 0, end = buf.length): this {
    need('icmp', off, end, 8);
    this.buf = buf; this.off = off; this.end = end;
    return this;
  }

  /** Bytes 4..8 as one number (id << 16 | sequence for echo). */
  get rest(): number { return u32(this.buf, this.off + 4); }
  get payload(): Uint8Array { return this.buf.subarray(this.off + 8, this.end); }
  verifyChecksum(): boolean { return internetChecksum(this.buf, this.off, this.end) === 0; }
}

export interface IcmpRepr {
  type: number; code: number;
  /** Rest of header (bytes 4..8); for echo use identifier/sequence instead. */
  rest?: number;
  identifier?: number; sequence?: number;
  payload: Uint8Array;
  checksum?: number;
}

export function emitIcmp(r: IcmpRepr, buf: Uint8Array, off = 0): number {
  const len = 8 + r.payload.length;
  buf[off] = r.type; buf[off + 1] = r.code;
  put16(buf, off + 2, 0);
  put32(buf, off + 4, r.rest ?? (((r.identifier ?? 0) << 16) | (r.sequence ?? 0)));
  buf.set(r.payload, off + 8);
  put16(buf, off + 2, r.checksum ?? internetChecksum(buf, off, off + len));
  return len;
}

export function buildIcmp(r: IcmpRepr): Buffer {
  const out = Buffer.alloc(8 + r.payload.length);
  emitIcmp(r, out);
  return out;
}

export function parseIcmp(v: IcmpView): IcmpRepr {
  return { type: v.type, code: v.code, rest: v.rest, payload: v.payload, checksum: v.checksum };
}
