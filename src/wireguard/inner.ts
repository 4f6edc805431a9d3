// The IP packets a tunnel carries, read through tuntap/packet's views: where a packet from the
// TUN goes (the peer whose AllowedIPs hold its destination), and what a decrypted payload holds
// (its IP packet without the padding, and the peer its source belongs to). One view per family
// is kept and re-wrapped, so reading a packet allocates nothing.
import { Ipv4View, Ipv6View, PacketParseError } from '../packet/index.js';
import type { AllowedIps } from './allowed-ips.js';

export class InnerPackets<T> {
  private readonly v4 = new Ipv4View();
  private readonly v6 = new Ipv6View();
  /** After received(): the peer whose AllowedIPs hold the packet's source. */
  source: T | undefined;

  constructor(private readonly allowed: AllowedIps<T>) {}

  /** The peer for the packet buf[off..off+len) from the TUN; undefined when none, or when it is no whole IP packet. */
  destination(buf: Uint8Array, off: number, len: number): T | undefined {
    try {
      switch (ipVersion(buf, off, len)) {
        case 4: return this.allowed.lookupV4(this.v4.wrap(buf, off, off + len).dst);
        case 6: return this.allowed.lookupV6(buf, this.v6.wrap(buf, off, off + len).dstOffset);
        default: return undefined;
      }
    } catch (e) {
      if (e instanceof PacketParseError) return undefined;
      throw e;
    }
  }

  /**
   * Reads the IP packet at the start of a decrypted payload buf[off..off+len): returns its
   * length (the padding after it stripped) and sets `source`; 0 when it is no whole IP packet.
   */
  received(buf: Uint8Array, off: number, len: number): number {
    try {
      switch (ipVersion(buf, off, len)) {
        case 4: {
          const ip = this.v4.wrap(buf, off, off + len);
          this.source = this.allowed.lookupV4(ip.src);
          return ip.totalLength;
        }
        case 6: {
          const ip = this.v6.wrap(buf, off, off + len);
          this.source = this.allowed.lookupV6(buf, ip.srcOffset);
          return ip.payloadEnd - off;
        }
        default: return 0;
      }
    } catch (e) {
      if (e instanceof PacketParseError) return 0;
      throw e;
    }
  }
}

/** The version field every IP header opens with (0 for an empty packet): which view reads it. */
function ipVersion(buf: Uint8Array, off: number, len: number): number {
  return len > 0 ? buf[off]! >> 4 : 0;
}
