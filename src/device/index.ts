// tuntap/device: TUN/TAP devices with batched, backpressured async I/O.
export { TunDevice, openTun, openTap, createPersistent, parseMac, formatMac } from './device.js';
export type { DeviceOptions, PersistentOptions, OffloadOptions, TxFilterOptions } from './device.js';
export { Queue } from './queue.js';
export type { PacketBatch, QueueHandle, QueueCounters, WriteOptions, WriteBatchOptions, OffloadMode } from './queue.js';
export { packetAt, batchViews, type Batch } from '../base/batch.js';
export { IFF, TUN_F, TUN_PKT_STRIP, TUN_FLT_ALLMULTI, VIRTIO_NET_HDR_F, GsoType, ARPHRD, ETH_P, MAX_PACKET } from './constants.js';
export { decodeVnetHdr, encodeVnetHdr, isGso, needsCsum, VNET_HDR_NONE } from '../base/vnet.js';
export type { VirtioNetHdr } from '../base/vnet.js';
export { decodePacketInfo, encodePacketInfo, protocolOfIpPacket, PI_LENGTH } from '../base/pi.js';
export type { PacketInfo } from '../base/pi.js';
export { encodeBpf, decodeBpf, bpf, BPF } from './bpf.js';
export type { BpfInstruction } from './bpf.js';
export { parseNetDev } from './stats.js';
export type { InterfaceStats } from './stats.js';
