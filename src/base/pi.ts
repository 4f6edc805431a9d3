// The 4-byte packet information header (struct tun_pi) a device without IFF_NO_PI puts before
// each packet: 16-bit flags (TUN_PKT_STRIP when the read buffer was too small) in host order,
// then the ethertype in network order.

export const PI_LENGTH = 4;

/** PI header flag: the packet did not fit the read buffer and was cut. */
export const TUN_PKT_STRIP = 0x0001;

import { EtherType } from './protocols.js';

/** Ethertypes seen in the PI header, under the kernel's names (<linux/if_ether.h>). */
export const ETH_P = {
  IP: EtherType.IPv4,
  ARP: EtherType.ARP,
  IPV6: EtherType.IPv6,
} as const;

export interface PacketInfo {
  flags: number;
  /** Ethertype: 0x0800 IPv4, 0x86dd IPv6, ... */
  protocol: number;
  /** The kernel cut the packet because the read buffer was too small (TUN_PKT_STRIP). */
  stripped: boolean;
}

const littleHost = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

export function decodePacketInfo(buf: Uint8Array, offset = 0): PacketInfo {
  const flags = littleHost ? buf[offset]! | (buf[offset + 1]! << 8) : (buf[offset]! << 8) | buf[offset + 1]!;
  const protocol = (buf[offset + 2]! << 8) | buf[offset + 3]!;
  return { flags, protocol, stripped: (flags & TUN_PKT_STRIP) !== 0 };
}

export function encodePacketInfo(buf: Uint8Array, offset: number, protocol: number, flags = 0): void {
  if (littleHost) { buf[offset] = flags & 0xff; buf[offset + 1] = flags >> 8; } else { buf[offset] = flags >> 8; buf[offset + 1] = flags & 0xff; }
  buf[offset + 2] = (protocol >> 8) & 0xff;
  buf[offset + 3] = protocol & 0xff;
}

/** The ethertype of an IP packet from its version nibble (what the kernel infers without PI). */
export function protocolOfIpPacket(packet: Uint8Array, offset = 0): number {
  return packet.length > offset && packet[offset]! >> 4 === 6 ? ETH_P.IPV6 : ETH_P.IP;
}
