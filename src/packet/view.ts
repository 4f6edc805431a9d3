// The part every protocol view shares: the borrowed bytes buf[off..end) and a constructor that
// wraps at once. Each view's own wrap() checks its header and assigns the three fields itself,
// so the hot path (wrap and the getters) stays monomorphic per view class.
import { u16, put16 } from './bytes.js';

const EMPTY = new Uint8Array(0);

export abstract class PacketView {
  buf: Uint8Array = EMPTY;
  off = 0;
  end = 0;

  /** Wraps buf[off..end) when given; otherwise call wrap() before reading. */
  constructor(buf?: Uint8Array, off = 0, end = buf?.length ?? 0) {
    if (buf) this.wrap(buf, off, end);
  }

  /** Points the view at a packet in buf[off..end), checking it; throws PacketParseError. Reusable, no allocation. */
  abstract wrap(buf: Uint8Array, off?: number, end?: number): this;
}

/** The header ICMPv4 (RFC 792) and ICMPv6 (RFC 4443) share; identifier/sequence are echo's. */
export abstract class IcmpHeaderView extends PacketView {
  get type(): number { return this.buf[this.off]!; }
  get code(): number { return this.buf[this.off + 1]!; }
  get checksum(): number { return u16(this.buf, this.off + 2); }
  set checksum(v: number) { put16(this.buf, this.off + 2, v); }
  get identifier(): number { return u16(this.buf, this.off + 4); }
  get sequence(): number { return u16(this.buf, this.off + 6); }
}

/**
 * TCP and UDP: both headers open with the two ports. Setting one patches the checksum through
 * setWord, where each protocol applies its own rule (UDP keeps an absent checksum absent).
 */
export abstract class PortsView extends PacketView {
  get srcPort(): number { return u16(this.buf, this.off); }
  set srcPort(v: number) { this.setWord(0, v); }
  get dstPort(): number { return u16(this.buf, this.off + 2); }
  set dstPort(v: number) { this.setWord(2, v); }

  /**
   * Stores both ports as they are, leaving the checksum to the caller: a NAT applies one
   * precomputed delta for addresses and ports together (RFC 1624).
   */
  storePorts(src: number, dst: number): void {
    put16(this.buf, this.off, src);
    put16(this.buf, this.off + 2, dst);
  }

  /** Stores the 16-bit word at header offset `at` and updates the checksum to match. */
  protected abstract setWord(at: number, v: number): void;
}
