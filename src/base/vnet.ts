// virtio_net_hdr: the 10-byte header (12 with num_buffers) the kernel puts before every packet
// on an IFF_VNET_HDR device, describing checksum offload and GSO super-packets. Fields are
// little-endian on every little-endian host and with TUNSETVNETLE (the modern virtio layout).

/** Size of struct virtio_net_hdr without num_buffers. */
export const VIRTIO_NET_HDR_LEN = 10;

/** virtio_net_hdr.flags */
export const VIRTIO_NET_HDR_F = {
  NEEDS_CSUM: 1,
  DATA_VALID: 2,
  RSC_INFO: 4,
} as const;

/** virtio_net_hdr.gso_type */
export const GsoType = {
  NONE: 0,
  TCPV4: 1,
  UDP: 3,
  TCPV6: 4,
  UDP_L4: 5,
  ECN: 0x80,
} as const;
export type GsoType = (typeof GsoType)[keyof typeof GsoType];

export interface VirtioNetHdr {
  flags: number;
  gsoType: number;
  hdrLen: number;
  gsoSize: number;
  csumStart: number;
  csumOffset: number;
  /** Only in the 12-byte layout. */
  numBuffers?: number;
}

export const VNET_HDR_NONE: Readonly<VirtioNetHdr> = Object.freeze({
  flags: 0, gsoType: GsoType.NONE, hdrLen: 0, gsoSize: 0, csumStart: 0, csumOffset: 0,
});

/** Decodes the header at `offset`; `size` 10 or 12 (or larger: extra bytes are ignored). */
export function decodeVnetHdr(buf: Uint8Array, offset = 0, size = 10, littleEndian = true): VirtioNetHdr {
  if (buf.length < offset + 10) throw new RangeError('virtio_net_hdr needs 10 bytes');
  const hdr: VirtioNetHdr = { flags: 0, gsoType: 0, hdrLen: 0, gsoSize: 0, csumStart: 0, csumOffset: 0 };
  readVnetHdr(hdr, buf, offset, littleEndian);
  if (size >= 12 && buf.length >= offset + 12) hdr.numBuffers = field(buf, offset + 10, littleEndian);
  return hdr;
}

/**
 * Decodes the first 10 bytes at `offset` into `into` (no allocation: the device's read path
 * reuses one object). The caller has checked that the 10 bytes are there.
 */
export function readVnetHdr(into: VirtioNetHdr, buf: Uint8Array, offset: number, littleEndian = true): VirtioNetHdr {
  into.flags = buf[offset]!;
  into.gsoType = buf[offset + 1]!;
  into.hdrLen = field(buf, offset + 2, littleEndian);
  into.gsoSize = field(buf, offset + 4, littleEndian);
  into.csumStart = field(buf, offset + 6, littleEndian);
  into.csumOffset = field(buf, offset + 8, littleEndian);
  return into;
}

function field(b: Uint8Array, o: number, littleEndian: boolean): number {
  return littleEndian ? b[o]! | (b[o + 1]! << 8) : (b[o]! << 8) | b[o + 1]!;
}

/** Writes `hdr` into `buf` at `offset`, filling `size` bytes (bytes past 12 are zeroed). */
export function encodeVnetHdr(hdr: Partial<VirtioNetHdr>, buf: Uint8Array, offset = 0, size = 10, littleEndian = true): void {
  if (buf.length < offset + size) throw new RangeError(`virtio_net_hdr needs ${size} bytes`);
  buf.fill(0, offset, offset + size);
  const view = new DataView(buf.buffer, buf.byteOffset + offset, size);
  view.setUint8(0, hdr.flags ?? 0);
  view.setUint8(1, hdr.gsoType ?? GsoType.NONE);
  view.setUint16(2, hdr.hdrLen ?? 0, littleEndian);
  view.setUint16(4, hdr.gsoSize ?? 0, littleEndian);
  view.setUint16(6, hdr.csumStart ?? 0, littleEndian);
  view.setUint16(8, hdr.csumOffset ?? 0, littleEndian);
  if (size >= 12) view.setUint16(10, hdr.numBuffers ?? 0, littleEndian);
}

/** True when the header describes a GSO super-packet the receiver must segment. */
export function isGso(hdr: VirtioNetHdr): boolean {
  return (hdr.gsoType & ~GsoType.ECN) !== GsoType.NONE;
}

/**
 * True when the header says only "checksum already verified" (DATA_VALID, the kernel's
 * CHECKSUM_UNNECESSARY): an ordinary packet whose bytes were checked on the way here.
 */
export function isDataValidOnly(hdr: VirtioNetHdr): boolean {
  return hdr.flags === VIRTIO_NET_HDR_F.DATA_VALID && hdr.gsoType === GsoType.NONE;
}

/** True when the checksum is still to be completed (CHECKSUM_PARTIAL). */
export function needsCsum(hdr: VirtioNetHdr): boolean {
  return (hdr.flags & VIRTIO_NET_HDR_F.NEEDS_CSUM) !== 0;
}
