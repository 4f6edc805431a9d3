// Byte helpers shared by the protocol views: big-endian loads/stores on a Uint8Array and
// formatting/parsing of MAC, IPv4 and IPv6 addresses. Loads are plain byte math so they work on
// any Uint8Array at any offset without allocating a DataView.
import { isIPv4, isIPv6 } from 'node:net';

export const u16 = (b: Uint8Array, o: number): number => (b[o]! << 8) | b[o + 1]!;
export const u32 = (b: Uint8Array, o: number): number =>
  ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
export function put16(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 8; b[o + 1] = v;
}
export function put32(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 24; b[o + 1] = v >>> 16; b[o + 2] = v >>> 8; b[o + 3] = v;
}

const hex = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

export function formatMac(b: Uint8Array, o = 0): string {
  return `${hex[b[o]!]}:${hex[b[o + 1]!]}:${hex[b[o + 2]!]}:${hex[b[o + 3]!]}:${hex[b[o + 4]!]}:${hex[b[o + 5]!]}`;
}

export function parseMac(s: string): Uint8Array {
  const parts = s.split(/[:-]/);
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{1,2}$/.test(p))) throw new TypeError(`invalid MAC address "${s}"`);
  return Uint8Array.from(parts.map((p) => parseInt(p, 16)));
}

export function formatIPv4(b: Uint8Array, o = 0): string {
  return `${b[o]}.${b[o + 1]}.${b[o + 2]}.${b[o + 3]}`;
}

export function parseIPv4(s: string): Uint8Array {
  if (!isIPv4(s)) throw new TypeError(`invalid IPv4 address "${s}"`);
  return Uint8Array.from(s.split('.').map(Number));
}

/** RFC 5952 text form: lowercase, longest run of two or more zero groups as "::". */
export function formatIPv6(b: Uint8Array, o = 0): string {
  const g: number[] = [];
  for (let i = 0; i < 16; i += 2) g.push((b[o + i]! << 8) | b[o + i + 1]!);
  let bestAt = -1; let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) { bestAt = i; bestLen = j - i; }
    i = j;
  }
  // IPv4-mapped addresses keep the dotted tail, as tcpdump and tshark print them.
  if (bestAt === 0 && bestLen === 5 && g[5] === 0xffff) return `::ffff:${formatIPv4(b, o + 12)}`;
  const text = (from: number, to: number) => g.slice(from, to).map((x) => x.toString(16)).join(':');
  if (bestAt < 0) return text(0, 8);
  return `${text(0, bestAt)}::${text(bestAt + bestLen, 8)}`;
}

export function parseIPv6(s: string): Uint8Array {
  if (!isIPv6(s)) throw new TypeError(`invalid IPv6 address "${s}"`);
  const out = new Uint8Array(16);
  let text = s;
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  const tail: number[] = [];
  if (dotted) {
    const v4 = parseIPv4(dotted[1]!);
    tail.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
    text = text.slice(0, -dotted[1]!.length);
    if (text.endsWith(':') && !text.endsWith('::')) text = text.slice(0, -1);
  }
  const [head, rest] = text.includes('::') ? text.split('::') as [string, string] : [text, undefined];
  const hs = head ? head.split(':').map((x) => parseInt(x, 16)) : [];
  const rs = rest !== undefined && rest !== '' ? rest.split(':').map((x) => parseInt(x, 16)) : [];
  const groups = rest === undefined ? [...hs, ...tail]
    : [...hs, ...new Array(8 - hs.length - rs.length - tail.length).fill(0), ...rs, ...tail];
  for (let i = 0; i < 8; i++) put16(out, i * 2, groups[i]!);
  return out;
}

/** Parses either family; 4 or 16 bytes. */
export function parseIP(s: string): Uint8Array {
  return s.includes(':') ? parseIPv6(s) : parseIPv4(s);
}

export function formatIP(b: Uint8Array, o = 0, length = b.length - o): string {
  return length === 4 ? formatIPv4(b, o) : formatIPv6(b, o);
}

/** Equal bytes a[ao..ao+n) and b[bo..bo+n). */
export function bytesEqual(a: Uint8Array, ao: number, b: Uint8Array, bo: number, n: number): boolean {
  for (let i = 0; i < n; i++) if (a[ao + i] !== b[bo + i]) return false;
  return true;
}

/** A copy of b[start..end) (Buffer#slice would share memory). */
export function copyBytes(b: Uint8Array, start = 0, end = b.length): Uint8Array {
  return new Uint8Array(b.subarray(start, end));
}
