// VXLAN framing (RFC 7348): an 8-byte header in front of the inner Ethernet frame, carried in
// UDP to port 4789.
//   byte 0: flags, only I (0x08: "the VNI is valid") defined; bytes 1..3 reserved
//   bytes 4..6: the 24-bit VXLAN Network Identifier; byte 7 reserved
// Reserved bits are zero on transmission and ignored on receipt, as the RFC says.

export const VXLAN_UDP_PORT = 4789;
export const VXLAN_HEADER_SIZE = 8;
export const VXLAN_FLAG_VNI = 0x08;
/** Outer IPv4 (20) + UDP (8) + VXLAN (8) + inner Ethernet (14): what a frame grows by on IPv4. */
export const VXLAN_OVERHEAD_IPV4 = 50;
/** The same with an outer IPv6 header (40). */
export const VXLAN_OVERHEAD_IPV6 = 70;

const MIN_INNER_FRAME = 14;

export function checkVni(vni: number): number {
  if (!Number.isInteger(vni) || vni < 0 || vni > 0xffffff) throw new RangeError(`VXLAN VNI must be 0..16777215, got ${vni}`);
  return vni;
}

/** Writes a VXLAN header for `vni` at `offset` of `out` (a new 8-byte header when omitted). */
export function encodeVxlanHeader(vni: number, out = new Uint8Array(VXLAN_HEADER_SIZE), offset = 0): Uint8Array {
  checkVni(vni);
  out[offset] = VXLAN_FLAG_VNI;
  out[offset + 1] = 0; out[offset + 2] = 0; out[offset + 3] = 0;
  out[offset + 4] = vni >>> 16; out[offset + 5] = (vni >>> 8) & 0xff; out[offset + 6] = vni & 0xff;
  out[offset + 7] = 0;
  return out;
}

/** A whole VXLAN datagram payload: header plus a copy of the inner frame. */
export function encapsulate(vni: number, frame: Uint8Array): Uint8Array {
  const out = new Uint8Array(VXLAN_HEADER_SIZE + frame.length);
  encodeVxlanHeader(vni, out, 0);
  out.set(frame, VXLAN_HEADER_SIZE);
  return out;
}

export type VxlanDecodeError = 'short' | 'no-vni-flag';

export interface VxlanDecoded {
  vni: number;
  /** The inner Ethernet frame, a view into the datagram (no copy). */
  frame: Uint8Array;
}

/** vniAt's answers for a datagram that is not a usable VXLAN packet. */
export const VXLAN_SHORT = -1;
export const VXLAN_NO_VNI_FLAG = -2;

/**
 * The VNI of the VXLAN datagram payload at buf[at .. at + len), or VXLAN_SHORT / VXLAN_NO_VNI_FLAG;
 * allocates nothing (a port reads hundreds of datagrams per batch with it).
 */
export function vniAt(buf: Uint8Array, at: number, len: number): number {
  if (len < VXLAN_HEADER_SIZE + MIN_INNER_FRAME) return VXLAN_SHORT;
  if ((buf[at]! & VXLAN_FLAG_VNI) === 0) return VXLAN_NO_VNI_FLAG;
  return (buf[at + 4]! << 16) | (buf[at + 5]! << 8) | buf[at + 6]!;
}

/** Parses a UDP payload; returns why it is not a usable VXLAN packet instead of throwing. */
export function decapsulate(datagram: Uint8Array): VxlanDecoded | VxlanDecodeError {
  const vni = vniAt(datagram, 0, datagram.length);
  if (vni === VXLAN_SHORT) return 'short';
  if (vni === VXLAN_NO_VNI_FLAG) return 'no-vni-flag';
  return { vni, frame: datagram.subarray(VXLAN_HEADER_SIZE) };
}
