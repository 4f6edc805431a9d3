// IP address text ⇄ bytes, and CIDR prefixes, for building and reading netlink messages.
import { isIPv4, isIPv6 } from 'node:net';
import { TuntapError } from '../errors.js';
import { constants } from 'node:os';

export type Family = 4 | 6;

export function badAddress(text: string, why: string): TuntapError {
  return new TuntapError('parse', constants.errno.EINVAL, `"${text}" is not a valid address: ${why}`);
}

/** Parses an IPv4 or IPv6 address into 4 or 16 bytes. */
export function ipToBytes(text: string): Buffer {
  if (isIPv4(text)) return Buffer.from(text.split('.').map(Number));
  if (!isIPv6(text)) throw badAddress(text, 'expected an IPv4 or IPv6 address');
  let s = text.toLowerCase();
  const zone = s.indexOf('%');
  if (zone >= 0) s = s.slice(0, zone);
  const lastColon = s.lastIndexOf(':');
  if (s.slice(lastColon + 1).includes('.')) {
    // embedded IPv4 in the last 32 bits becomes two hex groups
    const v4 = s.slice(lastColon + 1).split('.').map(Number);
    s = `${s.slice(0, lastColon + 1)}${((v4[0]! << 8) | v4[1]!).toString(16)}:${((v4[2]! << 8) | v4[3]!).toString(16)}`;
  }
  const groups = (g: string) => (g === '' ? [] : g.split(':').map((x) => parseInt(x, 16)));
  const gap = s.indexOf('::');
  const words = gap < 0 ? groups(s) : (() => {
    const left = groups(s.slice(0, gap));
    const right = groups(s.slice(gap + 2));
    return [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
  })();
  const out = Buffer.alloc(16);
  words.slice(0, 8).forEach((w, i) => out.writeUInt16BE(w, i * 2));
  return out;
}

/** Formats 4 or 16 bytes like inet_ntop (RFC 5952 compression for IPv6). */
export function bytesToIp(b: Uint8Array): string {
  if (b.length === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  if (b.length !== 16) return Buffer.from(b).toString('hex');
  const words: number[] = [];
  for (let i = 0; i < 16; i += 2) words.push((b[i]! << 8) | b[i + 1]!);
  if (words.slice(0, 5).every((w) => w === 0) && words[5] === 0xffff) {
    return `::ffff:${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  }
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (words[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen) { bestStart = i; bestLen = j - i; }
    i = j;
  }
  const hex = words.map((w) => w.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

export function familyOf(text: string): Family {
  if (isIPv4(text)) return 4;
  if (isIPv6(text)) return 6;
  throw badAddress(text, 'expected an IPv4 or IPv6 address');
}

export interface Cidr {
  family: Family;
  address: string;
  bytes: Buffer;
  prefixLength: number;
}

/** Parses "198.18.0.1/24", "fd00::1/64", or a bare address (full-length prefix). */
export function parseCidr(text: string, defaultPrefix?: number): Cidr {
  const slash = text.indexOf('/');
  const address = slash >= 0 ? text.slice(0, slash) : text;
  const family = familyOf(address);
  const max = family === 4 ? 32 : 128;
  let prefixLength = defaultPrefix ?? max;
  if (slash >= 0) {
    const p = text.slice(slash + 1);
    prefixLength = Number(p);
    if (!/^\d+$/.test(p) || prefixLength > max) throw badAddress(text, `prefix length must be 0..${max}`);
  }
  return { family, address: bytesToIp(ipToBytes(address)), bytes: ipToBytes(address), prefixLength };
}

/** Zeroes the host bits: the network of a prefix, as routes are keyed. */
export function networkOf(bytes: Buffer, prefixLength: number): Buffer {
  const out = Buffer.from(bytes);
  for (let bit = prefixLength; bit < out.length * 8; bit++) out[bit >> 3]! &= ~(0x80 >> (bit & 7));
  return out;
}

export function familyNumber(f: Family): number {
  return f === 4 ? 2 : 10;
}

export function macToBytes(text: string): Buffer {
  if (!/^[0-9a-f]{2}(:[0-9a-f]{2})*$/i.test(text)) throw badAddress(text, 'expected a MAC address like 02:00:00:00:00:01');
  return Buffer.from(text.split(':').map((x) => parseInt(x, 16)));
}

export function bytesToMac(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(':');
}
