// TCP segments a program sends on its own, made from address bytes: a bare segment (no options,
// no payload) and the reset a closed port answers a segment with (RFC 9293 §3.10.7.1).
import { IpProtocol } from './protocols.js';
import { put16 } from './bytes.js';
import { transportChecksum } from './checksum.js';
import { ipHeaderLength, writeIpHeader, type IpView } from './ip.js';
import { emitTcp, TcpFlags, type TcpView } from './tcp.js';

const TCP_HEADER = 20;
const NO_PAYLOAD = new Uint8Array(0);

export interface BareTcpSegment {
  srcPort: number;
  dstPort: number;
  seq: number;
  ack: number;
  flags: number;
}

/** The IP packet of segment `s` from `src` to `dst` (4 or 16 bytes each), window 0, both checksums filled. */
export function buildBareTcpSegment(src: Uint8Array, dst: Uint8Array, s: BareTcpSegment): Buffer {
  const ipLen = ipHeaderLength(src.length);
  const out = Buffer.alloc(ipLen + TCP_HEADER);
  writeIpHeader(out, src, dst, IpProtocol.TCP, TCP_HEADER);
  emitTcp({ ...s, window: 0, payload: NO_PAYLOAD, checksum: 0 }, out, ipLen);
  put16(out, ipLen + 16, transportChecksum(out, 0, ipLen, out.length, IpProtocol.TCP));
  return out;
}

/**
 * The reset answering the segment `tcp` in the packet `ip`, back to its source: one that
 * acknowledged something gets a RST at that sequence number; one that did not gets a RST|ACK
 * acknowledging all it occupied (data, SYN and FIN each count).
 */
export function buildTcpReset(ip: IpView, tcp: TcpView): Buffer {
  const b = ip.buf;
  const src = b.subarray(ip.dstOffset, ip.dstOffset + ip.addressLength);
  const dst = b.subarray(ip.srcOffset, ip.srcOffset + ip.addressLength);
  const flags = tcp.flags;
  if (flags & TcpFlags.ACK) {
    return buildBareTcpSegment(src, dst, { srcPort: tcp.dstPort, dstPort: tcp.srcPort, seq: tcp.ack, ack: 0, flags: TcpFlags.RST });
  }
  const occupied = tcp.payloadLength + (flags & TcpFlags.SYN ? 1 : 0) + (flags & TcpFlags.FIN ? 1 : 0);
  return buildBareTcpSegment(src, dst, {
    srcPort: tcp.dstPort, dstPort: tcp.srcPort, seq: 0, ack: (tcp.seq + occupied) >>> 0, flags: TcpFlags.RST | TcpFlags.ACK,
  });
}
