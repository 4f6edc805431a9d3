// The IP packets a tunnel carries: where a packet from the TUN goes (the peer whose AllowedIPs
// hold its destination), and what a decrypted payload holds (its IP packet without the padding,
// and the peer its source belongs to).
import type { AllowedIps } from './allowed-ips.js';

export class InnerPackets<T> {
  /** After received(): the peer whose AllowedIPs hold the packet's source. */
  source: T | undefined;

  constructor(private readonly allowed: AllowedIps<T>) {}

  /** The peer for the packet buf[off..off+len) from the TUN; undefined when none, or when it is no IP packet. */
  destination(buf: Uint8Array, off: number, len: number): T | undefined {
    const version = len > 0 ? buf[off]! >> 4 : 0;
    if (version === 4 && len >= 20) return this.allowed.lookup(4, buf, off + 16);
    if (version === 6 && len >= 40) return this.allowed.lookup(6, buf, off + 24);
    return undefined;
  }

  /**
   * Reads the IP packet at the start of a decrypted payload buf[off..off+len): returns its
   * length (the padding after it stripped) and sets `source`; 0 when it is no IP packet.
   */
  received(buf: Uint8Array, off: number, len: number): number {
    const version = buf[off]! >> 4;
    let ipLen: number;
    if (version === 4 && len >= 20) {
      ipLen = (buf[off + 2]! << 8) | buf[off + 3]!;
      this.source = this.allowed.lookup(4, buf, off + 12);
    } else if (version === 6 && len >= 40) {
      ipLen = 40 + ((buf[off + 4]! << 8) | buf[off + 5]!);
      this.source = this.allowed.lookup(6, buf, off + 8);
    } else {
      return 0;
    }
    return ipLen > len || ipLen < (version === 4 ? 20 : 40) ? 0 : ipLen;
  }
}
