// The two headers a TUN/TAP fd may put in front of each packet: the 4-byte packet-information
// header (without IFF_NO_PI) and struct virtio_net_hdr (with IFF_VNET_HDR). virtio fields are
// little-endian (the tun driver's default on little-endian hosts).
import { need } from './errors.js';

export const VirtioNetHdrFlags = { NEEDS_CSUM: 1, DATA_VALID: 2 } as const;
export const GsoType = { NONE: 0, TCPV4: 1, UDP: 3, TCPV6: 4, UDP_L4: 5, ECN: 0x80 } as const;

export interface VirtioNetHdr {
  flags: number; gsoType: number; hdrLen: number; gsoSize: number; csumStart: number; csumOffset: number;
  numBuffers?: number;
}

export const VIRTIO_NET_HDR_LEN = 10;

export function decodeVirtioNetHdr(b: Uint8Array, off = 0, size: 10 | 12 = 10): VirtioNetHdr {
  need('virtio_net_hdr', off, b.length, size);
  const le16 = (o: number) => b[off + o]! | (b[off + o + 1]! << 8);
  const h: VirtioNetHdr = { flags: b[off]!, gsoType: b[off + 1]!, hdrLen: le16(2), gsoSize: le16(4), csumStart: le16(6), csumOffset: le16(8) };
  if (size === 12) h.numBuffers = le16(10);
  return h;
}

export function encodeVirtioNetHdr(h: VirtioNetHdr, b: Uint8Array, off = 0, size: 10 | 12 = 10): number {
  const p16 = (o: number, v: number) => { b[off + o] = v & 0xff; b[off + o + 1] = (v >>> 8) & 0xff; };
  b[off] = h.flags; b[off + 1] = h.gsoType;
  p16(2, h.hdrLen); p16(4, h.gsoSize); p16(6, h.csumStart); p16(8, h.csumOffset);
  if (size === 12) p16(10, h.numBuffers ?? 0);
  return size;
}

/** struct tun_pi: flags (TUN_PKT_STRIP = 1 means the packet was truncated) and EtherType. */
export interface PacketInfo { flags: number; protocol: number }
export const PI_LEN = 4;

export function decodePacketInfo(b: Uint8Array, off = 0): PacketInfo {
  need('tun_pi', off, b.length, 4);
  return { flags: (b[off]! << 8) | b[off + 1]!, protocol: (b[off + 2]! << 8) | b[off + 3]! };
}

export function encodePacketInfo(pi: PacketInfo, b: Uint8Array, off = 0): number {
  b[off] = pi.flags >> 8; b[off + 1] = pi.flags; b[off + 2] = pi.protocol >> 8; b[off + 3] = pi.protocol;
  return 4;
}
