// Transport checksums for builders, which know addresses as text rather than as header bytes.
import { parseIP } from './bytes.js';
import { finish, sum16 } from './checksum.js';

/** Source and destination of the enclosing IP packet, used for transport checksums. */
export interface IpContext { src: string; dst: string }

/** The checksum of the segment buf[off..off+length) (checksum field zeroed) under ip's pseudo-header. */
export function pseudoChecksum(ip: IpContext, protocol: number, buf: Uint8Array, off: number, length: number): number {
  const s = parseIP(ip.src);
  const d = parseIP(ip.dst);
  const pseudo = sum16(d, 0, d.length, sum16(s, 0, s.length, protocol + (length >>> 16) + (length & 0xffff)));
  return finish(sum16(buf, off, off + length, pseudo));
}
