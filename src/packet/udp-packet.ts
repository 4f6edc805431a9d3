// UDP in IP, whole: a datagram taken out of an IP packet (addresses, ports, a copy of its
// payload) or put into one, for programs that carry UDP between a TUN and sockets (a proxy's UDP
// relay, DNS answers written back into the TUN).
import { IpProtocol } from './protocols.js';
import { put16 } from './bytes.js';
import { transportChecksum } from './checksum.js';
import { IpView, ipHeaderLength, writeIpHeader } from './ip.js';
import { UdpView, emitUdp } from './udp.js';

const UDP_HEADER = 8;

export interface UdpDatagram {
  family: 4 | 6;
  srcAddr: Buffer;
  srcPort: number;
  dstAddr: Buffer;
  dstPort: number;
  payload: Buffer;
}

const ip = new IpView();
const udp = new UdpView();

/**
 * The datagram in an IPv4/IPv6 packet, copied out of it; undefined when the packet is not UDP,
 * is a fragment, or is malformed (never throws).
 */
export function parseUdpPacket(packet: Uint8Array): UdpDatagram | undefined {
  if (!ip.tryWrap(packet) || ip.upperProtocol !== IpProtocol.UDP || ip.isFragment) return undefined;
  if (!udp.tryWrap(packet, ip.upperOffset, ip.payloadEnd)) return undefined;
  const n = ip.addressLength;
  return {
    family: ip.version,
    srcAddr: Buffer.from(packet.subarray(ip.srcOffset, ip.srcOffset + n)),
    dstAddr: Buffer.from(packet.subarray(ip.dstOffset, ip.dstOffset + n)),
    srcPort: udp.srcPort,
    dstPort: udp.dstPort,
    payload: Buffer.from(udp.payload),
  };
}

/**
 * The most payload a UDP datagram in one IP packet can carry with addresses of `addressLength`
 * bytes: IPv4's total length and IPv6's payload length are 16-bit fields.
 */
export function maxUdpPayload(addressLength: number): number {
  return addressLength === 4 ? 0xffff - ipHeaderLength(4) - UDP_HEADER : 0xffff - UDP_HEADER;
}

/**
 * The IP packet carrying `payload` from src:srcPort to dst:dstPort (addresses of 4 or 16 bytes),
 * both checksums filled. A payload past maxUdpPayload is a RangeError: its lengths would wrap.
 */
export function buildUdpPacket(src: Uint8Array, srcPort: number, dst: Uint8Array, dstPort: number, payload: Uint8Array): Buffer {
  const max = maxUdpPayload(src.length);
  if (payload.length > max) throw new RangeError(`a UDP payload of ${payload.length} bytes does not fit one IPv${src.length === 4 ? 4 : 6} packet (${max} at most)`);
  const ipLen = ipHeaderLength(src.length);
  const out = Buffer.alloc(ipLen + UDP_HEADER + payload.length);
  writeIpHeader(out, src, dst, IpProtocol.UDP, UDP_HEADER + payload.length);
  emitUdp({ srcPort, dstPort, payload, checksum: 0 }, out, ipLen);
  // A computed zero is sent as all ones: zero means "no checksum".
  put16(out, ipLen + 6, transportChecksum(out, 0, ipLen, out.length, IpProtocol.UDP) || 0xffff);
  return out;
}
