// Ethernet II frames with up to two 802.1Q / 802.1ad VLAN tags.
import { PacketParseError, need } from './errors.js';
import { PacketView } from './view.js';
import { u16, put16, formatMac, parseMac } from './bytes.js';
import { EtherType } from './protocols.js';

// Defined in protocols.ts; re-exported where importers found it before.
export { EtherType };

export const ETHERNET_HEADER_LENGTH = 14;
export const VLAN_TAG_LENGTH = 4;
/** Where the fields of an Ethernet header sit: `type` holds the EtherType, or the first tag's TPID with its TCI at `tci`. */
export const EthernetField = { dst: 0, src: 6, type: 12, tci: 14 } as const;

const isVlanTpid = (t: number) => t === EtherType.VLAN || t === EtherType.QinQ || t === EtherType.QinQLegacy;
const MAX_TAGS = 2;

/** Zero-copy view of an Ethernet frame in buf[off..end). */
export class EthernetView extends PacketView {
  /** Number of VLAN tags after the source address. */
  vlanCount = 0;

  constructor(buf?: Uint8Array, off = 0, end = buf?.length ?? 0) {
    // Wrap here, not in super(): the fields above are only initialised once super() returns.
    super();
    if (buf) this.wrap(buf, off, end);
  }

  /** Points the view at a frame, checking it; throws PacketParseError. Reusable, no allocation. */
  override wrap(buf: Uint8Array, off = 0, end = buf.length): this {
    need('ethernet', off, end, 14);
    let tags = 0;
    while (isVlanTpid(u16(buf, off + 12 + tags * 4))) {
      if (++tags > MAX_TAGS) throw new PacketParseError('ethernet', 'more than two VLAN tags', off);
      need('ethernet', off, end, 14 + tags * 4, 'VLAN tag');
    }
    this.buf = buf; this.off = off; this.end = end; this.vlanCount = tags;
    return this;
  }

  get dst(): string { return formatMac(this.buf, this.off); }
  get src(): string { return formatMac(this.buf, this.off + 6); }
  setDst(mac: Uint8Array): void { this.buf.set(mac.subarray(0, 6), this.off); }
  setSrc(mac: Uint8Array): void { this.buf.set(mac.subarray(0, 6), this.off + 6); }
  /** EtherType of the payload (after any VLAN tags). */
  get etherType(): number { return u16(this.buf, this.off + 12 + this.vlanCount * 4); }
  set etherType(v: number) { put16(this.buf, this.off + 12 + this.vlanCount * 4, v); }
  /** TPID of tag i (0x8100 for 802.1Q). */
  vlanTpid(i: number): number { return u16(this.buf, this.off + 12 + i * 4); }
  /** VLAN id (12 bits) of tag i. */
  vlanId(i = 0): number { return u16(this.buf, this.off + 14 + i * 4) & 0xfff; }
  vlanPcp(i = 0): number { return this.buf[this.off + 14 + i * 4]! >> 5; }
  vlanDei(i = 0): boolean { return (this.buf[this.off + 14 + i * 4]! & 0x10) !== 0; }
  get headerLength(): number { return 14 + this.vlanCount * 4; }
  get payloadOffset(): number { return this.off + 14 + this.vlanCount * 4; }
  get payload(): Uint8Array { return this.buf.subarray(this.payloadOffset, this.end); }
}

export interface VlanTag { tpid?: number; pcp?: number; dei?: boolean; vid: number }
export interface EthernetRepr {
  dst: string; src: string;
  vlans?: VlanTag[];
  etherType: number;
  payload: Uint8Array;
}

export function ethernetLength(r: EthernetRepr): number {
  return 14 + (r.vlans?.length ?? 0) * 4 + r.payload.length;
}

/** Writes the frame at buf[off..]; returns the bytes written. */
export function emitEthernet(r: EthernetRepr, buf: Uint8Array, off = 0): number {
  buf.set(parseMac(r.dst), off);
  buf.set(parseMac(r.src), off + 6);
  let o = off + 12;
  for (const t of r.vlans ?? []) {
    put16(buf, o, t.tpid ?? EtherType.VLAN);
    put16(buf, o + 2, ((t.pcp ?? 0) << 13) | (t.dei ? 0x1000 : 0) | (t.vid & 0xfff));
    o += 4;
  }
  put16(buf, o, r.etherType);
  buf.set(r.payload, o + 2);
  return o + 2 + r.payload.length - off;
}

export function buildEthernet(r: EthernetRepr): Buffer {
  const out = Buffer.alloc(ethernetLength(r));
  emitEthernet(r, out);
  return out;
}

export function parseEthernet(v: EthernetView): EthernetRepr {
  const vlans: VlanTag[] = [];
  for (let i = 0; i < v.vlanCount; i++) {
    vlans.push({ tpid: v.vlanTpid(i), pcp: v.vlanPcp(i), dei: v.vlanDei(i), vid: v.vlanId(i) });
  }
  return { dst: v.dst, src: v.src, ...(vlans.length ? { vlans } : {}), etherType: v.etherType, payload: v.payload };
}
