// virtio_net_hdr: the 10-byte header (12 with num_buffers) the kernel puts before every packet
// on an IFF_VNET_HDR device, describing checksum offload and GSO super-packets. Fields are
// little-endian on every little-endian host and with TUNSETVNETLE (the modern virtio layout).
import { VIRTIO_NET_HDR_F, GsoType } from './constants.js';

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
  const view = new DataView(buf.buffer, buf.byteOffset + offset, size >= 12 && buf.length >= offset + 12 ? 12 : 10);
  const hdr: VirtioNetHdr = {
    flags: view.getUint8(0),
    gsoType: view.getUint8(1),
    hdrLen: view.getUint16(2, littleEndian),
    gsoSize: view.getUint16(4, littleEndian),
    csumStart: view.getUint16(6, littleEndian),
    csumOffset: view.getUint16(8, littleEndian),
  };
  if (size >= 12 && view.byteLength >= 12) hdr.numBuffers = view.getUint16(10, littleEndian);
  return hdr;
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

/** True when the checksum is still to be completed (CHECKSUM_PARTIAL). */
export function needsCsum(hdr: VirtioNetHdr): boolean {
  return (hdr.flags & VIRTIO_NET_HDR_F.NEEDS_CSUM) !== 0;
}
