// ARP (RFC 826). The view accepts any hardware/protocol address lengths; the representation is
// the common Ethernet + IPv4 case.
import { PacketView } from './view.js';
import { need, PacketParseError } from './errors.js';
import { u16, put16, formatMac, formatIPv4, parseMac, parseIPv4 } from './bytes.js';
import { EtherType } from './protocols.js';

export const ArpOperation = { Request: 1, Reply: 2 } as const;

export class ArpView extends PacketView {
  override wrap(buf: Uint8Array, off = 0, end = buf.length): this {
    need('arp', off, end, 8);
    const hlen = buf[off + 4]!;
    const plen = buf[off + 5]!;
    need('arp', off, end, 8 + 2 * hlen + 2 * plen, 'addresses');
    this.buf = buf; this.off = off; this.end = end;
    return this;
  }

  get hardwareType(): number { return u16(this.buf, this.off); }
  get protocolType(): number { return u16(this.buf, this.off + 2); }
  get hardwareLength(): number { return this.buf[this.off + 4]!; }
  get protocolLength(): number { return this.buf[this.off + 5]!; }
  get operation(): number { return u16(this.buf, this.off + 6); }
  set operation(v: number) { put16(this.buf, this.off + 6, v); }
  get senderHardwareOffset(): number { return this.off + 8; }
  get senderProtocolOffset(): number { return this.off + 8 + this.hardwareLength; }
  get targetHardwareOffset(): number { return this.off + 8 + this.hardwareLength + this.protocolLength; }
  get targetProtocolOffset(): number { return this.off + 8 + 2 * this.hardwareLength + this.protocolLength; }
  /** True for Ethernet (1) hardware with IPv4 (0x0800) protocol addresses of the usual sizes. */
  get isEthernetIPv4(): boolean {
    return this.hardwareType === 1 && this.protocolType === EtherType.IPv4 && this.hardwareLength === 6 && this.protocolLength === 4;
  }
  get senderMac(): string { this.check(); return formatMac(this.buf, this.senderHardwareOffset); }
  get senderIp(): string { this.check(); return formatIPv4(this.buf, this.senderProtocolOffset); }
  get targetMac(): string { this.check(); return formatMac(this.buf, this.targetHardwareOffset); }
  get targetIp(): string { this.check(); return formatIPv4(this.buf, this.targetProtocolOffset); }
  /** The text accessors need 6-byte hardware and 4-byte protocol addresses. */
  private check(): void {
    if (this.hardwareLength !== 6 || this.protocolLength !== 4) {
      throw new PacketParseError('arp', `address lengths ${this.hardwareLength}/${this.protocolLength} are not Ethernet/IPv4`, this.off);
    }
  }
  get length(): number { return 8 + 2 * this.hardwareLength + 2 * this.protocolLength; }
}

export interface ArpRepr {
  operation: number;
  senderMac: string; senderIp: string;
  targetMac: string; targetIp: string;
}

export const ARP_LENGTH = 28;

export function emitArp(r: ArpRepr, buf: Uint8Array, off = 0): number {
  put16(buf, off, 1);
  put16(buf, off + 2, EtherType.IPv4);
  buf[off + 4] = 6; buf[off + 5] = 4;
  put16(buf, off + 6, r.operation);
  buf.set(parseMac(r.senderMac), off + 8);
  buf.set(parseIPv4(r.senderIp), off + 14);
  buf.set(parseMac(r.targetMac), off + 18);
  buf.set(parseIPv4(r.targetIp), off + 24);
  return ARP_LENGTH;
}

export function buildArp(r: ArpRepr): Buffer {
  const out = Buffer.alloc(ARP_LENGTH);
  emitArp(r, out);
  return out;
}

export function parseArp(v: ArpView): ArpRepr {
  if (!v.isEthernetIPv4) throw new PacketParseError('arp', 'not an Ethernet/IPv4 ARP packet', v.off);
  return { operation: v.operation, senderMac: v.senderMac, senderIp: v.senderIp, targetMac: v.targetMac, targetIp: v.targetIp };
}
