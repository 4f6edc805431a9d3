// TCP/IP segments as bytes, for the NAT's unit tests and the SYN flood.
import { parseIP } from '../../src/addr.js';
import { verifyTransportChecksum, internetChecksum, sum16, finish, pseudoHeaderSum } from '../../src/packet/checksum.js';

export const SYN = 0x02, ACK = 0x10, RST = 0x04, PSH = 0x08;

export const addressBytes = (text: string): Buffer => Buffer.from(parseIP(text));

/** An IPv4 or IPv6 TCP segment with valid checksums. */
export function tcpPacket(src: string, sport: number, dst: string, dport: number, flags: number, payload = Buffer.alloc(0), seq = 1000, ack = 0): Buffer {
  const s = addressBytes(src), d = addressBytes(dst);
  const v4 = s.length === 4;
  const ipLen = v4 ? 20 : 40;
  const b = Buffer.alloc(ipLen + 20 + payload.length);
  if (v4) {
    b[0] = 0x45; b.writeUInt16BE(b.length, 2); b.writeUInt16BE(0x4000, 6); b[8] = 64; b[9] = 6;
    s.copy(b, 12); d.copy(b, 16);
    b.writeUInt16BE(internetChecksum(b, 0, 20), 10);
  } else {
    b[0] = 0x60; b.writeUInt16BE(20 + payload.length, 4); b[6] = 6; b[7] = 64; s.copy(b, 8); d.copy(b, 24);
  }
  b.writeUInt16BE(sport, ipLen); b.writeUInt16BE(dport, ipLen + 2);
  b.writeUInt32BE(seq, ipLen + 4); b.writeUInt32BE(ack, ipLen + 8);
  b[ipLen + 12] = 5 << 4; b[ipLen + 13] = flags; b.writeUInt16BE(65535, ipLen + 14);
  payload.copy(b, ipLen + 20);
  b.writeUInt16BE(finish(sum16(b, ipLen, b.length, pseudoHeaderSum(b, 0, 6, b.length - ipLen))), ipLen + 16);
  return b;
}

/** True when the segment's IPv4 header checksum and TCP checksum verify. */
export function validTcp(b: Buffer): boolean {
  const v4 = b[0]! >> 4 === 4;
  const l4 = v4 ? 20 : 40;
  if (v4 && internetChecksum(b, 0, 20) !== 0) return false;
  return verifyTransportChecksum(b, 0, l4, b.length, 6);
}
