// Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//
// `sum16` returns an unfolded sum that callers may keep accumulating into (pass it as `initial`);
// `fold` reduces it to 16 bits and `finish` complements it. The sum is byte-order agnostic in
// the one's-complement sense, which lets the bulk loop add 32-bit words: a 32-bit word equals
// the sum of its two 16-bit halves modulo 0xffff, so folding at the end gives the same result.
import { u16, put16 } from './bytes.js';

/** One's-complement running sum of b[start..end) as big-endian 16-bit words (odd tail padded). */
export function sum16(b: Uint8Array, start: number, end: number, initial = 0): number {
  if (end > b.length || start < 0) throw new RangeError(`checksum range ${start}..${end} lies outside ${b.length} bytes`);
  if (end - start < 64) return sumBytes(b, start, end, initial, 0);
  // Bulk: 32-bit loads through an Int32Array over the 4-aligned middle. Its words are read
  // little-endian, i.e. each 16-bit half byte-swapped: swapping the folded sum back is exact in
  // one's complement (RFC 1071 §2(B)). If the aligned middle starts at an odd distance from
  // `start`, the pairing is shifted by one byte, which cancels the swap.
  const head = (4 - ((b.byteOffset + start) & 3)) & 3;
  const mid = start + head;
  const words = (end - mid) >> 2;
  let s = sumBytes(b, start, mid, initial, 0);
  const w = new Int32Array(b.buffer, b.byteOffset + mid, words);
  let acc = 0;
  for (let from = 0; from < words; from += 8192) {
    const to = Math.min(words, from + 8192);
    let lo = 0; let hi = 0;
    let i = from;
    for (; i + 4 <= to; i += 4) {
      const a = w[i]!; const c = w[i + 1]!; const d = w[i + 2]!; const e = w[i + 3]!;
      lo = (lo + (a & 0xffff) + (c & 0xffff) + (d & 0xffff) + (e & 0xffff)) | 0;
      hi = (hi + (a >>> 16) + (c >>> 16) + (d >>> 16) + (e >>> 16)) | 0;
    }
    for (; i < to; i++) { const a = w[i]!; lo += a & 0xffff; hi += a >>> 16; }
    acc += lo + hi;
  }
  const folded = fold(acc);
  s += (head & 1) ? folded : ((folded & 0xff) << 8) | (folded >>> 8);
  return sumBytes(b, mid + words * 4, end, s, head & 1);
}

/** Byte-at-a-time sum; `parity` 1 means b[start] is the low byte of its 16-bit word. */
function sumBytes(b: Uint8Array, start: number, end: number, initial: number, parity: number): number {
  let s = initial;
  let i = start;
  if (parity && i < end) s += b[i++]!;
  for (; i + 1 < end; i += 2) s += (b[i]! << 8) | b[i + 1]!;
  if (i < end) s += b[i]! << 8;
  return s;
}

/** Folds a running sum to 16 bits (end-around carry). */
export function fold(sum: number): number {
  let s = sum;
  while (s > 0xffff) s = (s % 0x10000) + Math.floor(s / 0x10000);
  return s;
}

/** The checksum field value for a running sum: complement of the folded sum. */
export function finish(sum: number): number {
  return ~fold(sum) & 0xffff;
}

/** Internet checksum of b[start..end) (e.g. an IPv4 header with its checksum field zeroed). */
export function internetChecksum(b: Uint8Array, start = 0, end = b.length, initial = 0): number {
  return finish(sum16(b, start, end, initial));
}

/**
 * Sum of the transport pseudo-header for the IP header at `ipOff` (version read from its first
 * byte): addresses, protocol and transport length (RFC 793 / RFC 8200 §8.1).
 */
export function pseudoHeaderSum(b: Uint8Array, ipOff: number, protocol: number, length: number): number {
  if ((b[ipOff]! >> 4) === 6) return sum16(b, ipOff + 8, ipOff + 40, protocol + (length >>> 16) + (length & 0xffff));
  return sum16(b, ipOff + 12, ipOff + 20, protocol + length);
}

/**
 * TCP/UDP/ICMPv6 checksum of the transport segment b[l4Off..end) under the IP header at ipOff.
 * The checksum field must be zero (or the result is the verification sum: 0 means valid).
 */
export function transportChecksum(b: Uint8Array, ipOff: number, l4Off: number, end: number, protocol: number): number {
  return finish(sum16(b, l4Off, end, pseudoHeaderSum(b, ipOff, protocol, end - l4Off)));
}

/** True when the transport checksum stored in the segment verifies. */
export function verifyTransportChecksum(b: Uint8Array, ipOff: number, l4Off: number, end: number, protocol: number): boolean {
  return fold(sum16(b, l4Off, end, pseudoHeaderSum(b, ipOff, protocol, end - l4Off))) === 0xffff;
}

/** RFC 1624 eq. 3: new checksum after one 16-bit word of the covered data changed old → new. */
export function updateChecksum16(checksum: number, oldWord: number, newWord: number): number {
  let s = (~checksum & 0xffff) + (~oldWord & 0xffff) + (newWord & 0xffff);
  s = (s & 0xffff) + (s >>> 16);
  s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

/** RFC 1624 for a 32-bit field (an IPv4 address, a sequence number). */
export function updateChecksum32(checksum: number, oldValue: number, newValue: number): number {
  let s = (~checksum & 0xffff) + (~(oldValue >>> 16) & 0xffff) + (~oldValue & 0xffff)
    + (newValue >>> 16) + (newValue & 0xffff);
  s = (s & 0xffff) + (s >>> 16);
  s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

/**
 * The RFC 1624 delta for replacing `oldB` by `newB` (same even length): the sum of the old words'
 * complements and the new words. Precompute it once per flow, then apply it to every packet.
 */
export function checksumDelta(oldB: Uint8Array, newB: Uint8Array): number {
  let s = 0;
  for (let i = 0; i < oldB.length; i += 2) s += (~u16(oldB, i) & 0xffff) + u16(newB, i);
  return s;
}

/** RFC 1624 eq. 3: the checksum after data covered by it changed by `delta` (from checksumDelta). */
export function applyChecksumDelta(checksum: number, delta: number): number {
  let s = (~checksum & 0xffff) + delta;
  s = (s & 0xffff) + (s >>> 16);
  s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

/**
 * The same for a CHECKSUM_PARTIAL field (virtio_net_hdr NEEDS_CSUM), which holds the
 * uncomplemented pseudo-header sum: only address changes apply, added without complementing.
 */
export function applyPartialChecksumDelta(partialSum: number, delta: number): number {
  let s = partialSum + delta;
  s = (s & 0xffff) + (s >>> 16);
  return (s & 0xffff) + (s >>> 16);
}

/**
 * RFC 1624 for a run of bytes (even length) replaced in place: old bytes at oldB[oldOff..+n),
 * new bytes at newB[newOff..+n) (e.g. an IPv6 address).
 */
export function updateChecksumBytes(checksum: number, oldB: Uint8Array, oldOff: number,
  newB: Uint8Array, newOff: number, n: number): number {
  let s = ~checksum & 0xffff;
  for (let i = 0; i < n; i += 2) s += (~u16(oldB, oldOff + i) & 0xffff) + u16(newB, newOff + i);
  return finish(s);
}

/**
 * Completes a CHECKSUM_PARTIAL packet (virtio_net_hdr flag NEEDS_CSUM): the field at
 * csumStart+csumOffset holds the pseudo-header sum; the checksum over b[start+csumStart..end)
 * is written there, as the kernel's skb_checksum_help does (0 becomes 0xffff).
 */
export function completePartialChecksum(b: Uint8Array, csumStart: number, csumOffset: number,
  start = 0, end = b.length): void {
  const from = start + csumStart;
  const at = from + csumOffset;
  if (from > end || at + 2 > end) throw new RangeError('checksum start/offset lie outside the packet');
  put16(b, at, finish(sum16(b, from, end)) || 0xffff);
}
