// tuntap/net: batched UDP datagram I/O (recvmmsg/sendmmsg, UDP GSO/GRO) over the native core.
export {
  UdpSocket, DatagramBatch, openUdp, MAX_GSO_SEGMENTS,
  type UdpSocketOptions, type Destination, type SendOptions, type UdpStats,
} from './udp.js';
export {
  EndpointTable, ENDPOINT_SIZE, encodeEndpoint, decodeEndpoint, endpointKey, addressFamily,
  type Endpoint, type ResolvedEndpoint,
} from './endpoint.js';
export { packetAt, batchViews, type Batch } from '../base/batch.js';
