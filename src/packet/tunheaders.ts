// The TUN packet-information header and virtio_net_hdr: the device layer owns these codecs;
// the packet layer re-exports them (and a flag table under its own name) for GSO/GRO users.
export { decodeVnetHdr, encodeVnetHdr, isGso, needsCsum, VNET_HDR_NONE, type VirtioNetHdr } from '../device/vnet.js';
export { decodePacketInfo, encodePacketInfo, protocolOfIpPacket, PI_LENGTH, type PacketInfo } from '../device/pi.js';
export { GsoType, VIRTIO_NET_HDR_F as VirtioNetHdrFlags } from '../device/constants.js';

/** Size of struct virtio_net_hdr without num_buffers. */
export const VIRTIO_NET_HDR_LEN = 10;
