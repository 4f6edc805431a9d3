// Netlink wire format: nlmsghdr framing, rtattr trees (nested too) and the ack/error message.
// Encoding builds from a plain attribute tree; decoding returns views into the receive buffer,
// so callers turn messages into plain objects before the next receive reuses that buffer.
import {
  NLA_F_NESTED, NLA_TYPE_MASK, NLM_F_ACK_TLVS, NLMSG_DONE, NLM_F_CAPPED, NLMSGERR_ATTR_MSG, NLMSGERR_ATTR_OFFS,
} from './constants.js';

export const NLMSG_HDRLEN = 16;

/** One attribute to encode: raw bytes, or a list of nested attributes. */
export interface Attr {
  type: number;
  value: Uint8Array | Attr[];
}

/** n rounded up to a multiple of 4, exact for any length a peer can claim (no 32-bit wrap). */
export const align4 = (n: number): number => Math.ceil(n / 4) * 4;

export function u8Attr(type: number, v: number): Attr {
  return { type, value: Uint8Array.of(v & 0xff) };
}
export function u32Attr(type: number, v: number): Attr {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return { type, value: b };
}
/** A NUL-terminated string attribute (IFLA_IFNAME, IFLA_INFO_KIND, ...). */
export function strAttr(type: number, s: string): Attr {
  return { type, value: Buffer.from(`${s}\0`, 'utf8') };
}
export function bytesAttr(type: number, b: Uint8Array): Attr {
  return { type, value: b };
}
export function nestAttr(type: number, attrs: Attr[]): Attr {
  return { type: type | NLA_F_NESTED, value: attrs };
}

function attrSize(a: Attr): number {
  if (a.value instanceof Uint8Array) return 4 + a.value.length;
  return 4 + attrsLength(a.value);
}

/** Bytes a run of attributes takes, each padded to 4. */
function attrsLength(attrs: Attr[]): number {
  return attrs.reduce((sum, a) => sum + align4(attrSize(a)), 0);
}

function writeAttr(buf: Buffer, off: number, a: Attr): number {
  const len = attrSize(a);
  buf.writeUInt16LE(len, off);
  buf.writeUInt16LE(a.type, off + 2);
  if (a.value instanceof Uint8Array) {
    buf.set(a.value, off + 4);
  } else {
    let p = off + 4;
    for (const child of a.value) p = writeAttr(buf, p, child);
  }
  return off + align4(len);
}

/** A bare run of attributes (for payloads such as VETH_INFO_PEER that embed a header + attributes). */
export function encodeAttrs(attrs: Attr[]): Buffer {
  const buf = Buffer.alloc(attrsLength(attrs));
  let p = 0;
  for (const a of attrs) p = writeAttr(buf, p, a);
  return buf;
}

export interface OutgoingMessage {
  type: number;
  flags: number;
  seq: number;
  portId?: number;
  /** The fixed family header (ifinfomsg, ifaddrmsg, rtmsg, fib_rule_hdr). */
  header: Uint8Array;
  attrs?: Attr[];
}

export function encodeMessage(m: OutgoingMessage): Buffer {
  const attrs = m.attrs ?? [];
  const len = NLMSG_HDRLEN + align4(m.header.length) + attrsLength(attrs);
  const buf = Buffer.alloc(len);
  buf.writeUInt32LE(len, 0);
  buf.writeUInt16LE(m.type, 4);
  buf.writeUInt16LE(m.flags, 6);
  buf.writeUInt32LE(m.seq >>> 0, 8);
  buf.writeUInt32LE(m.portId ?? 0, 12);
  buf.set(m.header, NLMSG_HDRLEN);
  let p = NLMSG_HDRLEN + align4(m.header.length);
  for (const a of attrs) p = writeAttr(buf, p, a);
  return buf;
}

/** One received message; `payload` is a view valid until the next receive. */
export interface Message {
  type: number;
  flags: number;
  seq: number;
  portId: number;
  payload: Buffer;
}

/**
 * Splits a received batch into messages. Malformed framing ends the walk: what came before is
 * returned and `malformed` counts what was dropped.
 */
export function splitMessages(buf: Buffer, length: number): { messages: Message[]; malformed: number } {
  const messages: Message[] = [];
  let off = 0;
  let malformed = 0;
  while (off + NLMSG_HDRLEN <= length) {
    const len = buf.readUInt32LE(off);
    if (len < NLMSG_HDRLEN || off + len > length) {
      // Zero padding between datagrams is legitimate; anything else is garbage.
      if (len !== 0) malformed++;
      off += len === 0 ? 4 : length;
      continue;
    }
    messages.push({
      type: buf.readUInt16LE(off + 4),
      flags: buf.readUInt16LE(off + 6),
      seq: buf.readUInt32LE(off + 8),
      portId: buf.readUInt32LE(off + 12),
      payload: buf.subarray(off + NLMSG_HDRLEN, off + len),
    });
    off += align4(len);
  }
  return { messages, malformed };
}

/** Attributes by type (flags stripped). A later duplicate replaces an earlier one. */
export type Attrs = Map<number, Buffer>;

export function parseAttrs(buf: Buffer, start = 0, end = buf.length): Attrs {
  const out: Attrs = new Map();
  let off = Math.max(0, start);
  end = Math.min(end, buf.length);
  while (off + 4 <= end) {
    const len = buf.readUInt16LE(off);
    if (len < 4 || off + len > end) break;  // truncated attribute: stop, keep what parsed
    out.set(buf.readUInt16LE(off + 2) & NLA_TYPE_MASK, buf.subarray(off + 4, off + len));
    off += align4(len);
  }
  return out;
}

export function attrU8(a: Attrs, type: number): number | undefined {
  const b = a.get(type);
  return b && b.length >= 1 ? b[0] : undefined;
}
export function attrU32(a: Attrs, type: number): number | undefined {
  const b = a.get(type);
  return b && b.length >= 4 ? b.readUInt32LE(0) : undefined;
}
export function attrS32(a: Attrs, type: number): number | undefined {
  const b = a.get(type);
  return b && b.length >= 4 ? b.readInt32LE(0) : undefined;
}
export function attrStr(a: Attrs, type: number): string | undefined {
  const b = a.get(type);
  if (!b) return undefined;
  const nul = b.indexOf(0);
  return b.toString('utf8', 0, nul >= 0 ? nul : b.length);
}
export function attrNested(a: Attrs, type: number): Attrs | undefined {
  const b = a.get(type);
  return b ? parseAttrs(b) : undefined;
}

/** A decoded NLMSG_ERROR: errno 0 is an ACK; `message` is the kernel's extended-ack text. */
export interface AckInfo {
  errno: number;
  message?: string;
  /** Byte offset into the request of the attribute the kernel objected to. */
  offset?: number;
}

export function parseAck(m: Message): AckInfo {
  const p = m.payload;
  if (p.length < 4) return { errno: 0 };
  const errno = Math.abs(p.readInt32LE(0));  // the kernel sends -errno (0 for an ACK)
  const info: AckInfo = { errno };
  const done = m.type === NLMSG_DONE;
  if (m.flags & NLM_F_ACK_TLVS && (done || p.length >= 4 + NLMSG_HDRLEN)) {
    // An error echoes the request (only its header when capped); NLMSG_DONE echoes nothing.
    const echoedLen = done ? 0 : m.flags & NLM_F_CAPPED ? NLMSG_HDRLEN : align4(p.readUInt32LE(4));
    // An echo shorter than a header or longer than the ack leaves no place the TLVs could start.
    if (!done && (echoedLen < NLMSG_HDRLEN || 4 + echoedLen > p.length)) return info;
    const tlvs = parseAttrs(p, 4 + echoedLen);
    const text = attrStr(tlvs, NLMSGERR_ATTR_MSG);
    if (text) info.message = text;
    const offs = attrU32(tlvs, NLMSGERR_ATTR_OFFS);
    if (offs !== undefined) info.offset = offs;
  }
  return info;
}
