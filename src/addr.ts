// Address text ⇄ bytes for every layer: IPv4, IPv6, MAC (and other link-layer addresses) and
// CIDR prefixes. The single implementation below the layers (it imports only errors.ts), so
// netlink, packet, device, net, wireguard and l2 all print and accept the same forms.
//
// Parsers scan character codes instead of splitting strings, so a hot caller (e.g. interning
// endpoints) allocates nothing but the result. Text forms follow inet_pton/inet_ntop, which is
// what `ip`, tcpdump and tshark print: IPv6 per RFC 5952, lowercase, the first longest run of two
// or more zero groups as "::", and a dotted tail for IPv4-mapped (::ffff:a.b.c.d) and
// IPv4-compatible (::a.b.c.d) addresses.
import { constants } from 'node:os';
import { TuntapError } from './errors.js';

export type Family = 4 | 6;

export interface Cidr {
  family: Family;
  /** Canonical text of the address as given (host bits kept). */
  address: string;
  bytes: Buffer;
  prefixLength: number;
}

/** The error every parser here throws: `"x" is not a valid address: <why>`. */
export function badAddress(text: string, why: string): TuntapError {
  return new TuntapError('parse', constants.errno.EINVAL, `"${text}" is not a valid address: ${why}`);
}

const EXPECT_IP = 'expected an IPv4 or IPv6 address';
const EXPECT_V4 = 'expected an IPv4 address like 198.18.0.1';
const EXPECT_V6 = 'expected an IPv6 address like fd00::1';
const EXPECT_MAC = 'expected a MAC address like 02:00:00:00:00:01';

const hex2 = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));
const dec = Array.from({ length: 256 }, (_, i) => String(i));

/** Value of a hex digit's char code, or -1. */
function hexDigit(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;          // 0-9
  const l = c | 0x20;                              // fold A-F to a-f
  return l >= 97 && l <= 102 ? l - 87 : -1;
}

/**
 * Parses dotted-quad text s[from..to) into out[at..at+4). Strict like inet_pton: four decimal
 * parts 0..255 without leading zeros. Returns false (out partly written) when it is not one.
 */
function scanIPv4(s: string, from: number, to: number, out: Uint8Array, at: number): boolean {
  let part = 0;
  let value = 0;
  let digits = 0;
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i);
    if (c === 46) {                                // '.'
      if (digits === 0 || part === 3) return false;
      out[at + part++] = value;
      value = 0; digits = 0;
    } else if (c >= 48 && c <= 57) {
      if (digits > 0 && value === 0) return false; // leading zero
      value = value * 10 + (c - 48);
      if (value > 255) return false;
      digits++;
    } else {
      return false;
    }
  }
  if (digits === 0 || part !== 3) return false;
  out[at + 3] = value;
  return true;
}

/**
 * Parses IPv6 text s[from..to) into out[at..at+16): 1–4 hex digits per group, at most one "::",
 * an optional dotted IPv4 tail in the last 32 bits. Returns false when it is not one.
 */
function scanIPv6(s: string, from: number, to: number, out: Uint8Array, at: number): boolean {
  let groups = 0;       // 16-bit groups written so far
  let gapAt = -1;       // group index where "::" stands
  let i = from;
  if (i < to && s.charCodeAt(i) === 58) {          // leading ':' must be "::"
    if (i + 1 >= to || s.charCodeAt(i + 1) !== 58) return false;
    gapAt = 0; i += 2;
  }
  while (i < to) {
    if (groups === 8) return false;
    const start = i;
    let value = 0;
    let d: number;
    while (i < to && i - start < 5 && (d = hexDigit(s.charCodeAt(i))) >= 0) { value = (value << 4) | d; i++; }
    const digits = i - start;
    if (i < to && s.charCodeAt(i) === 46) {        // '.': this group starts a dotted IPv4 tail
      if (groups > 6 || !scanIPv4(s, start, to, out, at + groups * 2)) return false;
      groups += 2;
      i = to;
      break;
    }
    if (digits === 0 || digits > 4) return false;
    out[at + groups * 2] = value >>> 8;
    out[at + groups * 2 + 1] = value & 0xff;
    groups++;
    if (i === to) break;
    if (s.charCodeAt(i) !== 58) return false;
    i++;
    if (i < to && s.charCodeAt(i) === 58) {        // "::"
      if (gapAt >= 0) return false;
      gapAt = groups; i++;
    } else if (i === to) {
      return false;                                // trailing single ':'
    }
  }
  if (gapAt < 0) return groups === 8;
  if (groups === 8) return false;                  // "::" must stand for at least one group
  // Move the groups after "::" to the end and zero the gap.
  const tail = (groups - gapAt) * 2;
  out.copyWithin(at + 16 - tail, at + gapAt * 2, at + groups * 2);
  out.fill(0, at + gapAt * 2, at + 16 - tail);
  return true;
}

/** End of the address part of IPv6 text: before a "%zone" suffix (which must not be empty). */
function zoneStart(s: string): number {
  const z = s.indexOf('%');
  if (z < 0) return s.length;
  return z === s.length - 1 ? -1 : z;
}

/** Writes the IPv4 address `text` into out[at..at+4); false when it is not one. */
export function writeIPv4(text: string, out: Uint8Array, at = 0): boolean {
  return scanIPv4(text, 0, text.length, out, at);
}

/** Writes the IPv6 address `text` (a %zone suffix is ignored) into out[at..at+16); false when it is not one. */
export function writeIPv6(text: string, out: Uint8Array, at = 0): boolean {
  const end = zoneStart(text);
  return end >= 0 && scanIPv6(text, 0, end, out, at);
}

/** 4 (dotted quad), 6 (IPv6, optionally with a %zone) or undefined for anything else. */
const scratch = new Uint8Array(16);

export function ipFamily(text: string): Family | undefined {
  if (text.indexOf(':') < 0) return writeIPv4(text, scratch) ? 4 : undefined;
  return writeIPv6(text, scratch) ? 6 : undefined;
}

/** Like ipFamily, but throws for text that is not an IP address. */
export function familyOf(text: string): Family {
  const family = ipFamily(text);
  if (family === undefined) throw badAddress(text, EXPECT_IP);
  return family;
}

export function parseIPv4(text: string): Uint8Array {
  const out = new Uint8Array(4);
  if (!writeIPv4(text, out)) throw badAddress(text, EXPECT_V4);
  return out;
}

export function parseIPv6(text: string): Uint8Array {
  const out = new Uint8Array(16);
  if (!writeIPv6(text, out)) throw badAddress(text, EXPECT_V6);
  return out;
}

/** Either family: 4 or 16 bytes. */
export function parseIP(text: string): Uint8Array {
  if (text.indexOf(':') < 0) {
    const out = new Uint8Array(4);
    if (writeIPv4(text, out)) return out;
  } else {
    const out = new Uint8Array(16);
    if (writeIPv6(text, out)) return out;
  }
  throw badAddress(text, EXPECT_IP);
}

export function formatIPv4(b: Uint8Array, o = 0): string {
  return `${dec[b[o]!]}.${dec[b[o + 1]!]}.${dec[b[o + 2]!]}.${dec[b[o + 3]!]}`;
}

/** The 16 bytes at b[o..] as inet_ntop prints them (RFC 5952). */
export function formatIPv6(b: Uint8Array, o = 0): string {
  // First longest run of zero groups, if at least two long.
  let bestAt = -1; let bestLen = 1;
  let runAt = -1;
  for (let g = 0; g <= 8; g++) {
    const zero = g < 8 && b[o + 2 * g] === 0 && b[o + 2 * g + 1] === 0;
    if (zero) { if (runAt < 0) runAt = g; continue; }
    if (runAt >= 0 && g - runAt > bestLen) { bestAt = runAt; bestLen = g - runAt; }
    runAt = -1;
  }
  if (bestAt === 0 && (bestLen === 6 || (bestLen === 5 && b[o + 10] === 0xff && b[o + 11] === 0xff))) {
    return `${bestLen === 5 ? '::ffff:' : '::'}${formatIPv4(b, o + 12)}`;
  }
  let text = '';
  for (let g = 0; g < 8; g++) {
    if (g === bestAt) { text += '::'; g += bestLen - 1; continue; }
    if (text !== '' && !text.endsWith(':')) text += ':';
    text += ((b[o + 2 * g]! << 8) | b[o + 2 * g + 1]!).toString(16);
  }
  return text;
}

/** 4 bytes as IPv4, 16 as IPv6, any other length as plain hex (e.g. a malformed attribute). */
export function formatIP(b: Uint8Array, o = 0, length = b.length - o): string {
  if (length === 4) return formatIPv4(b, o);
  if (length === 16) return formatIPv6(b, o);
  let text = '';
  for (let i = 0; i < length; i++) text += hex2[b[o + i]!];
  return text;
}

/** A 6-byte MAC: six groups of one or two hex digits, separated by ':' or '-'. */
export function parseMac(text: string): Uint8Array {
  const out = parseLinkAddress(text, true);
  if (out === undefined || out.length !== 6) throw badAddress(text, EXPECT_MAC);
  return out;
}

/**
 * A link-layer address of any length (MAC, or e.g. a tunnel's), groups of one or two hex digits
 * separated by ':' (or also '-' when `dashes`); undefined when it is not one.
 */
function parseLinkAddress(text: string, dashes: boolean): Uint8Array | undefined {
  const bytes: number[] = [];
  let value = 0;
  let digits = 0;
  for (let i = 0; i <= text.length; i++) {
    const c = i < text.length ? text.charCodeAt(i) : 58;
    if (c === 58 || (dashes && c === 45)) {
      if (digits === 0) return undefined;
      bytes.push(value);
      value = 0; digits = 0;
      continue;
    }
    const d = hexDigit(c);
    if (d < 0 || digits === 2) return undefined;
    value = (value << 4) | d; digits++;
  }
  return Uint8Array.from(bytes);
}

/** Any link-layer address in colon form ("02:00:00:00:00:01", "c0:a8:00:01", ...). */
export function parseHardwareAddress(text: string): Uint8Array {
  const out = parseLinkAddress(text, false);
  if (out === undefined) throw badAddress(text, EXPECT_MAC);
  return out;
}

/** The 6-byte MAC at b[o..] as lowercase colon-separated hex. */
export function formatMac(b: Uint8Array, o = 0): string {
  return `${hex2[b[o]!]}:${hex2[b[o + 1]!]}:${hex2[b[o + 2]!]}:${hex2[b[o + 3]!]}:${hex2[b[o + 4]!]}:${hex2[b[o + 5]!]}`;
}

/** A link-layer address of any length as lowercase colon-separated hex. */
export function formatHardwareAddress(b: Uint8Array, o = 0, length = b.length - o): string {
  if (length === 6) return formatMac(b, o);
  let text = '';
  for (let i = 0; i < length; i++) text += (i === 0 ? '' : ':') + hex2[b[o + i]!];
  return text;
}

/** Parses "198.18.0.1/24", "fd00::1/64", or a bare address (prefix `defaultPrefix`, else full length). */
export function parseCidr(text: string, defaultPrefix?: number): Cidr {
  const slash = text.indexOf('/');
  const address = slash >= 0 ? text.slice(0, slash) : text;
  const parsed = parseIP(address);
  const family: Family = parsed.length === 4 ? 4 : 6;
  const bytes = Buffer.from(parsed.buffer, parsed.byteOffset, parsed.length);
  const max = family === 4 ? 32 : 128;
  let prefixLength = defaultPrefix ?? max;
  if (slash >= 0) {
    const p = text.slice(slash + 1);
    prefixLength = Number(p);
    if (!/^\d+$/.test(p) || prefixLength > max) throw badAddress(text, `prefix length must be 0..${max}`);
  }
  return { family, address: formatIP(bytes), bytes, prefixLength };
}

/** Zeroes the host bits: the network of a prefix, as routes are keyed. */
export function networkOf(bytes: Uint8Array, prefixLength: number): Buffer {
  const out = Buffer.from(bytes);
  for (let bit = prefixLength; bit < out.length * 8; bit++) out[bit >> 3]! &= ~(0x80 >> (bit & 7));
  return out;
}
