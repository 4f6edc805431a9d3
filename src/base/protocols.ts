// Protocol numbers, in one place: what an IPv4 Protocol or IPv6 Next Header field names (IANA's
// "Assigned Internet Protocol Numbers") and what an EtherType names (IEEE 802). In the base layer,
// so the offload codecs and the device read them too; packet re-exports them.

export const IpProtocol = {
  HopByHop: 0, ICMP: 1, IGMP: 2, TCP: 6, UDP: 17, IPv6Route: 43, IPv6Frag: 44, GRE: 47,
  ESP: 50, AH: 51, ICMPv6: 58, NoNext: 59, IPv6Opts: 60, SCTP: 132,
} as const;

export const EtherType = {
  IPv4: 0x0800, ARP: 0x0806, RARP: 0x8035, VLAN: 0x8100, IPv6: 0x86dd, QinQ: 0x88a8,
  /** The pre-standard 802.1ad tag some switches still send. */
  QinQLegacy: 0x9100,
} as const;

/** The EtherType of an IP packet of `version` (4 or 6), or 0 for another version. */
export function etherTypeOfIpVersion(version: number): number {
  return version === 4 ? EtherType.IPv4 : version === 6 ? EtherType.IPv6 : 0;
}
