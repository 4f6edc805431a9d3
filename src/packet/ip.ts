// IP of either version, for code that treats both alike (a NAT, a proxy's UDP path, a tunnel's
// router, an echo responder): one reusable view that checks the header (IPv4's lengths, IPv6's
// extension-header chain) and says where the addresses, the upper-layer header and the end of
// the packet sit, as plain fields. tryWrap() answers false rather than throwing, for data paths
// that count and drop malformed packets.
import { parseError, problem, type ParseProblem } from './errors.js';
import { PacketView } from './view.js';
import { u16, put16 } from './bytes.js';
import { applyChecksumDelta, finish, sum16 } from './checksum.js';
import { checkIpv4 } from './ipv4.js';
import { walkIpv6, type Ipv6Chain } from './ipv6.js';

/** IPv4 flags/fragment-offset bits that make a packet a fragment (MF or a non-zero offset). */
const IPV4_FRAGMENT_BITS = 0x3fff;
const IPV4_DONT_FRAGMENT = 0x4000;
const IPV4_HEADER = 20;
const IPV6_HEADER = 40;
const DEFAULT_TTL = 64;

export class IpView extends PacketView implements Ipv6Chain {
  version: 4 | 6 = 4;
  /** The upper-layer protocol: IPv4's Protocol field, or IPv6's after the extension headers. */
  upperProtocol = 0;
  /** Offset of the upper-layer header: after IPv4 options or IPv6 extension headers. */
  upperOffset = 0;
  /** End of the packet as its header says (IPv4 total length, IPv6 40 + payload length). */
  payloadEnd = 0;
  srcOffset = 0;
  dstOffset = 0;
  /** 4 or 16. */
  addressLength = 4;
  /** Any fragment, first or not: its upper-layer header is missing or its payload incomplete. */
  isFragment = false;
  /** IPv6 only: the fragment header's offset (or -1) and the extension headers walked. */
  fragmentHeaderOffset = -1;
  extensionCount = 0;

  /** Made once and wrapped per packet (the base class would wrap before the fields above exist). */
  constructor() {
    super();
  }

  override wrap(buf: Uint8Array, off = 0, end = buf.length): this {
    const p = this.attach(buf, off, end);
    if (p) throw parseError(p);
    return this;
  }

  /** wrap() that answers false for a malformed packet (the fields are then meaningless). */
  tryWrap(buf: Uint8Array, off = 0, end = buf.length): boolean {
    return this.attach(buf, off, end) === undefined;
  }

  private attach(buf: Uint8Array, off: number, end: number): ParseProblem | undefined {
    const version = end > off ? buf[off]! >> 4 : 0;
    if (version === 4) {
      const p = checkIpv4(buf, off, end);
      if (p) return p;
      this.version = 4;
      this.upperProtocol = buf[off + 9]!;
      this.upperOffset = off + (buf[off]! & 15) * 4;
      this.payloadEnd = off + u16(buf, off + 2);
      this.srcOffset = off + 12;
      this.dstOffset = off + 16;
      this.addressLength = 4;
      this.isFragment = (u16(buf, off + 6) & IPV4_FRAGMENT_BITS) !== 0;
      this.fragmentHeaderOffset = -1;
      this.extensionCount = 0;
    } else if (version === 6) {
      const p = walkIpv6(buf, off, end, this);
      if (p) return p;
      this.version = 6;
      this.payloadEnd = off + IPV6_HEADER + u16(buf, off + 4);
      this.srcOffset = off + 8;
      this.dstOffset = off + 24;
      this.addressLength = 16;
      this.isFragment = this.fragmentHeaderOffset >= 0;
    } else {
      return problem('ip', end > off ? `version is ${version}, neither 4 nor 6` : 'empty packet', off);
    }
    this.buf = buf; this.off = off; this.end = end;
    return undefined;
  }

  /** The upper-layer bytes' length (to payloadEnd). */
  get upperLength(): number { return this.payloadEnd - this.upperOffset; }
  get totalLength(): number { return this.payloadEnd - this.off; }

  /** True when the source address equals a[0..addressLength). */
  srcEquals(a: Uint8Array): boolean { return this.addressEquals(this.srcOffset, a); }
  dstEquals(a: Uint8Array): boolean { return this.addressEquals(this.dstOffset, a); }

  private addressEquals(at: number, a: Uint8Array): boolean {
    const b = this.buf;
    for (let i = 0; i < this.addressLength; i++) if (b[at + i] !== a[i]) return false;
    return true;
  }

  /**
   * Stores new addresses as they are; the IPv4 header checksum and any transport checksum are the
   * caller's (see adjustHeaderChecksum), who usually has one precomputed delta for all of them.
   */
  storeAddresses(src: Uint8Array, dst: Uint8Array): void {
    this.buf.set(src, this.srcOffset);
    this.buf.set(dst, this.dstOffset);
  }

  /** Exchanges source and destination; every checksum stays valid (the sums do not change). */
  swapAddresses(): void {
    const b = this.buf, s = this.srcOffset, d = this.dstOffset;
    for (let i = 0; i < this.addressLength; i++) {
      const t = b[s + i]!;
      b[s + i] = b[d + i]!;
      b[d + i] = t;
    }
  }

  /** Adds an RFC 1624 delta (checksumDelta) to the IPv4 header checksum; IPv6 has none. */
  adjustHeaderChecksum(delta: number): void {
    if (this.version !== 4) return;
    const at = this.off + 10;
    put16(this.buf, at, applyChecksumDelta(u16(this.buf, at), delta));
  }
}

/** Bytes of the IP header writeIpHeader writes for addresses of `addressLength` (4 or 16). */
export function ipHeaderLength(addressLength: number): number {
  return addressLength === 4 ? IPV4_HEADER : IPV6_HEADER;
}

/**
 * Writes at out[0..] the header of a packet a program makes on its own (a reset, a UDP answer)
 * from `src` to `dst` (4 or 16 bytes each) carrying `payloadLength` bytes of `protocol`: IPv4
 * with DF and its header checksum, or IPv6; hop limit 64 either way. Returns the header length.
 */
export function writeIpHeader(out: Uint8Array, src: Uint8Array, dst: Uint8Array, protocol: number, payloadLength: number): number {
  if (src.length === 4) {
    out.fill(0, 0, IPV4_HEADER);
    out[0] = 0x45;
    put16(out, 2, IPV4_HEADER + payloadLength);
    put16(out, 6, IPV4_DONT_FRAGMENT);
    out[8] = DEFAULT_TTL;
    out[9] = protocol;
    out.set(src, 12);
    out.set(dst, 16);
    put16(out, 10, finish(sum16(out, 0, IPV4_HEADER)));
    return IPV4_HEADER;
  }
  out.fill(0, 0, IPV6_HEADER);
  out[0] = 0x60;
  put16(out, 4, payloadLength);
  out[6] = protocol;
  out[7] = DEFAULT_TTL;
  out.set(src, 8);
  out.set(dst, 24);
  return IPV6_HEADER;
}
