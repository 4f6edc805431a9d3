// The IP packets a tunnel carries, read through tuntap/packet's IpView: where a packet from the
// TUN goes (the peer whose AllowedIPs hold its destination), and what a decrypted payload holds
// (its IP packet without the padding, and the peer its source belongs to). One view is kept and
// re-wrapped with tryWrap, so reading a packet allocates nothing and a malformed one throws nothing.
import { IpView } from '../packet/index.js';
import type { AllowedIps } from './allowed-ips.js';

export class InnerPackets<T> {
  private readonly ip = new IpView();
  /** After received(): the peer whose AllowedIPs hold the packet's source. */
  source: T | undefined;

  constructor(private readonly allowed: AllowedIps<T>) {}

  /** The peer for the packet buf[off..off+len) from the TUN; undefined when none, or when it is no whole IP packet. */
  destination(buf: Uint8Array, off: number, len: number): T | undefined {
    const ip = this.ip;
    if (!ip.tryWrap(buf, off, off + len)) return undefined;
    return this.allowed.lookup(ip.version, buf, ip.dstOffset);
  }

  /**
   * Reads the IP packet at the start of a decrypted payload buf[off..off+len): returns its
   * length (the padding after it stripped) and sets `source`; 0 when it is no whole IP packet.
   */
  received(buf: Uint8Array, off: number, len: number): number {
    const ip = this.ip;
    if (!ip.tryWrap(buf, off, off + len)) return 0;
    this.source = this.allowed.lookup(ip.version, buf, ip.srcOffset);
    return ip.payloadEnd - off;
  }
}
