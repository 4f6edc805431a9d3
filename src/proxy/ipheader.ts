// The IP header of a packet the proxy builds itself (a reset from the NAT, a UDP answer): IPv4
// with DF and its header checksum, or IPv6, hop limit 64 either way.
import { finish, sum16 } from '../packet/checksum.js';

/** Writes at out[0..] the header from `src` to `dst` (4 or 16 bytes each) for `payloadLength` bytes of `protocol`. */
export function writeIpHeader(out: Buffer, src: Uint8Array, dst: Uint8Array, protocol: number, payloadLength: number): void {
  if (src.length === 4) {
    out[0] = 0x45;
    out.writeUInt16BE(20 + payloadLength, 2);
    out.writeUInt16BE(0x4000, 6);
    out[8] = 64;
    out[9] = protocol;
    out.set(src, 12);
    out.set(dst, 16);
    out.writeUInt16BE(finish(sum16(out, 0, 20)), 10);
  } else {
    out[0] = 0x60;
    out.writeUInt16BE(payloadLength, 4);
    out[6] = protocol;
    out[7] = 64;
    out.set(src, 8);
    out.set(dst, 24);
  }
}
