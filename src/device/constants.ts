// Kernel constants of the TUN/TAP user API (linux/if_tun.h). The USO offload bits are newer
// than some installed headers, so they are spelled out here. The header codecs' own constants
// (virtio_net_hdr flags and GSO types, the PI flag, ethertypes) live with the codecs in src/base.
export { VIRTIO_NET_HDR_F, GsoType } from '../base/vnet.js';
export { TUN_PKT_STRIP, ETH_P } from '../base/pi.js';

/** TUNSETIFF / TUNGETIFF flags. */
export const IFF = {
  TUN: 0x0001,
  TAP: 0x0002,
  NAPI: 0x0010,
  NAPI_FRAGS: 0x0020,
  NO_CARRIER: 0x0040,
  MULTI_QUEUE: 0x0100,
  ATTACH_QUEUE: 0x0200,
  DETACH_QUEUE: 0x0400,
  PERSIST: 0x0800,
  NOFILTER: 0x1000,
  NO_PI: 0x1000,
  ONE_QUEUE: 0x2000,
  VNET_HDR: 0x4000,
  TUN_EXCL: 0x8000,
} as const;

/** TUNSETOFFLOAD bits. */
export const TUN_F = {
  CSUM: 0x01,
  TSO4: 0x02,
  TSO6: 0x04,
  TSO_ECN: 0x08,
  UFO: 0x10,
  USO4: 0x20,
  USO6: 0x40,
} as const;

/** TUNSETTXFILTER flag: accept every multicast frame. */
export const TUN_FLT_ALLMULTI = 0x0001;

/** ARPHRD_* link types for setLinkType (TUNSETLINK). */
export const ARPHRD = {
  ETHER: 1,
  NONE: 0xfffe,
  IPGRE: 778,
  VOID: 0xffff,
} as const;

/** Largest packet the kernel hands us: 64 KiB GSO super-packets plus headers and a VLAN tag. */
export const MAX_PACKET = 65536 + 64;
