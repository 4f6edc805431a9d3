// HTTP CONNECT (RFC 9110 §9.3.6) as text: the request a client sends to open a tunnel through an
// HTTP proxy (Basic credentials optional), and readers for the proxy's response head.
import { PacketParseError } from './errors.js';

/** The most bytes of response head read before giving up on a proxy that never ends it. */
export const MAX_HTTP_HEAD = 16384;

const HEAD_END = '\r\n\r\n';
const STATUS_LINE = /^HTTP\/1\.[01] (\d{3})([^\r\n]*)/;

/**
 * The request for a tunnel to `target` (host:port, IPv6 in brackets). The request line is text:
 * a space, CR, LF or NUL in the target would end it or start a header of its own, so such a
 * target is a TypeError.
 */
export function encodeHttpConnect(target: string, credentials?: { username: string; password?: string }): string {
  if (/[\s\0]/.test(target)) throw new TypeError(`${JSON.stringify(target)} cannot be the target of an HTTP CONNECT request`);
  let req = `CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n`;
  if (credentials) {
    req += `Proxy-Authorization: Basic ${Buffer.from(`${credentials.username}:${credentials.password ?? ''}`).toString('base64')}\r\n`;
  }
  return `${req}\r\n`;
}

/**
 * The length of the response head (through its empty line) at the start of `buffered`, or
 * undefined while it is incomplete. `searched`: how many bytes an earlier call looked through,
 * so a head arriving in pieces is not searched from the start each time. Throws
 * PacketParseError once an incomplete head passes MAX_HTTP_HEAD bytes.
 */
export function httpHeadLength(buffered: Buffer, searched = 0): number | undefined {
  const end = buffered.indexOf(HEAD_END, Math.max(0, searched - (HEAD_END.length - 1)), 'latin1');
  if (end >= 0) return end + HEAD_END.length;
  if (buffered.length > MAX_HTTP_HEAD) throw new PacketParseError('http', `response head longer than ${MAX_HTTP_HEAD} bytes`);
  return undefined;
}

/** The status code and the rest of the status line (its reason, with the leading space); undefined when the head does not start with one. */
export function parseHttpStatus(head: string): { status: number; reason: string } | undefined {
  const m = STATUS_LINE.exec(head);
  return m ? { status: Number(m[1]), reason: m[2]! } : undefined;
}
