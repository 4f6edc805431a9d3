// IP address text ⇄ bytes for building and reading netlink messages: the netlink-flavoured
// names (Buffers, as attributes want them) over the one implementation in src/addr.ts.
import { parseIP, formatIP } from '../addr.js';

export { badAddress, familyOf, parseCidr, networkOf, type Family, type Cidr } from '../addr.js';

/** Parses an IPv4 or IPv6 address into 4 or 16 bytes. */
export function ipToBytes(text: string): Buffer {
  const b = parseIP(text);
  return Buffer.from(b.buffer, b.byteOffset, b.length);
}

/** Formats 4 or 16 bytes like inet_ntop (RFC 5952 for IPv6); any other length as hex. */
export function bytesToIp(b: Uint8Array): string {
  return formatIP(b);
}
