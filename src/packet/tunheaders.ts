// The TUN packet-information header and virtio_net_hdr: their codecs live in the base layer
// (src/base), below the device that reads and writes them; GSO/GRO users find them here too.
export {
  decodeVnetHdr, encodeVnetHdr, isGso, needsCsum, VNET_HDR_NONE, VIRTIO_NET_HDR_LEN, VIRTIO_NET_HDR_F, GsoType,
  type VirtioNetHdr,
} from '../base/vnet.js';
export { decodePacketInfo, encodePacketInfo, protocolOfIpPacket, PI_LENGTH, type PacketInfo } from '../base/pi.js';
