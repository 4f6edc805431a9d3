// The few Ethernet and 802.1Q operations a switch needs, on raw frames: read addresses and the
// VLAN tag, and insert or remove a tag (which copies, since the frame grows or shrinks).
import { formatMac, parseMac } from '../addr.js';
import { u16, put16 } from '../packet/bytes.js';
import { completePartialChecksum } from '../packet/checksum.js';
import { ETHERNET_HEADER_LENGTH, EthernetField, VLAN_TAG_LENGTH } from '../packet/ethernet.js';
import { EtherType } from '../packet/protocols.js';
import { gsoSplit, ipOffsetOfFrame } from '../packet/index.js';
import { needsCsum } from '../base/vnet.js';
import type { Frame, FrameOffload } from './port.js';

export const ETH_HEADER = ETHERNET_HEADER_LENGTH;
export const VLAN_TAG = VLAN_TAG_LENGTH;
const VID_MASK = 0x0fff;

/** The 48-bit MAC at `o` as an exact integer (a Map key without allocating a string). */
export function macKey(b: Uint8Array, o: number): number {
  return (b[o]! * 0x10000 + ((b[o + 1]! << 8) | b[o + 2]!)) * 0x1000000
    + ((b[o + 3]! << 16) | (b[o + 4]! << 8) | b[o + 5]!);
}

export function macKeyToString(key: number): string {
  const b = new Uint8Array(6);
  for (let i = 5; i >= 0; i--) {
    b[i] = key % 256;
    key = Math.floor(key / 256);
  }
  return formatMac(b);
}

export function parseMacKey(text: string): number {
  return macKey(parseMac(text), 0);
}

/** Group bit of the first octet: broadcast and multicast destinations. */
export const isGroupAddress = (b: Uint8Array, o: number): boolean => (b[o]! & 1) === 1;

/** VLAN id of a frame carrying an 802.1Q tag, or -1 for an untagged frame. */
export function frameVlan(b: Uint8Array): number {
  if (b.length < ETH_HEADER + VLAN_TAG || u16(b, EthernetField.type) !== EtherType.VLAN) return -1;
  return u16(b, EthernetField.tci) & VID_MASK;
}

function shiftOffload(offload: FrameOffload | undefined, by: number): FrameOffload | undefined {
  if (offload === undefined) return undefined;
  return {
    ...offload,
    hdrLen: offload.hdrLen === 0 ? 0 : offload.hdrLen + by,
    csumStart: needsCsum(offload) ? offload.csumStart + by : offload.csumStart,
  };
}

/** A copy of the frame with an 802.1Q tag (priority 0) for `vid` after the source MAC. */
export function pushVlan(frame: Frame, vid: number): Frame {
  const src = frame.data;
  const out = new Uint8Array(src.length + VLAN_TAG);
  out.set(src.subarray(0, EthernetField.type), 0);
  put16(out, EthernetField.type, EtherType.VLAN);
  put16(out, EthernetField.tci, vid & VID_MASK);
  out.set(src.subarray(EthernetField.type), EthernetField.type + VLAN_TAG);
  return { data: out, offload: shiftOffload(frame.offload, VLAN_TAG) };
}

/** A copy of the frame without its outer 802.1Q tag. */
export function popVlan(frame: Frame): Frame {
  const src = frame.data;
  const out = new Uint8Array(src.length - VLAN_TAG);
  out.set(src.subarray(0, EthernetField.type), 0);
  out.set(src.subarray(EthernetField.type + VLAN_TAG), EthernetField.type);
  return { data: out, offload: shiftOffload(frame.offload, -VLAN_TAG) };
}

/**
 * A copy of the frame with its partial checksum (VIRTIO_NET_HDR_F_NEEDS_CSUM) filled in, for
 * ports that cannot take one: the sender left the pseudo-header sum at csumStart+csumOffset, so
 * the checksum is the complement of the one's-complement sum of everything from csumStart on.
 * A copy, because the same bytes may also go, unfinished, to ports that do take offloads.
 * Returns undefined when the offsets do not fit the frame (malformed).
 */
export function completeChecksum(frame: Frame): Frame | undefined {
  const o = frame.offload;
  if (o === undefined || !needsCsum(o)) return { data: frame.data };
  const at = o.csumStart + o.csumOffset;
  if (o.csumStart >= frame.data.length || at + 2 > frame.data.length) return undefined;
  const b = new Uint8Array(frame.data);
  completePartialChecksum(b, o.csumStart, o.csumOffset);
  return { data: b };
}

/**
 * Cuts a GSO super-packet into wire-size frames with finished checksums (for ports that take no
 * offloads, such as a VXLAN tunnel), the way the kernel would have before a plain NIC. Returns
 * undefined when the frame and its header disagree (malformed: the caller counts and drops it).
 */
export function segmentFrame(frame: Frame): Frame[] | undefined {
  const o = frame.offload;
  if (o === undefined || o.gsoSize === 0) return undefined;
  const data = frame.data;
  const ipOffset = ipOffsetOfFrame(data);
  // Each segment: the headers (up to a 60-byte TCP header after csumStart) plus one MSS.
  const segMax = o.csumStart + 60 + o.gsoSize;
  const count = Math.ceil(Math.max(data.length - o.csumStart - 8, 1) / o.gsoSize) + 1;
  const area = new Uint8Array(segMax * count);
  const outs: Uint8Array[] = [];
  for (let i = 0; i < count; i++) outs.push(area.subarray(i * segMax, (i + 1) * segMax));
  const sizes = new Uint32Array(count);
  let n: number;
  try {
    n = gsoSplit(data, o, outs, sizes, 0, ipOffset);
  } catch {
    return undefined;
  }
  const frames: Frame[] = [];
  for (let i = 0; i < n; i++) frames.push({ data: outs[i]!.subarray(0, sizes[i]!) });
  return frames;
}
