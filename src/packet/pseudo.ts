// Pseudo-header sums for builders, which know addresses as text rather than as header bytes.
import { parseIP } from './bytes.js';
import { sum16 } from './checksum.js';

/** Source and destination of the enclosing IP packet, used for transport checksums. */
export interface IpContext { src: string; dst: string }

export function pseudoSumFor(ip: IpContext, protocol: number, length: number): number {
  const s = parseIP(ip.src);
  const d = parseIP(ip.dst);
  return sum16(d, 0, d.length, sum16(s, 0, s.length, protocol + (length >>> 16) + (length & 0xffff)));
}
