// tuntap/packet: zero-copy protocol views and builders, checksums, GSO/GRO, capture files, the
// pcap filter subset (JS predicate and classic BPF), protocol numbers, and the codecs of the
// protocols the applications speak (DNS, SOCKS, HTTP CONNECT, VXLAN).
export { PacketParseError } from './errors.js';
export * from './bytes.js';
export * from './protocols.js';
export * from './checksum.js';
export * from './ethernet.js';
export * from './arp.js';
export * from './ipv4.js';
export * from './ipv6.js';
export * from './icmp.js';
export * from './icmpv6.js';
export * from './tcp.js';
export * from './udp.js';
export * from './ip.js';
export * from './tcp-reset.js';
export * from './udp-packet.js';
export * from './echo.js';
export * from './hostname.js';
export * from './dns.js';
export * from './socks.js';
export * from './http-connect.js';
export * from './vxlan.js';
export type { IpContext } from './pseudo.js';
export * from './tunheaders.js';
export { gsoSplit, ipOffsetOfFrame, partialPseudoChecksum } from '../base/gso.js';
export { GroCoalescer, type GroOptions, type GroResult } from '../base/gro.js';
export { packetAt, batchViews, type Batch } from '../base/batch.js';
export * from './pcap.js';
export * from './bpf.js';
export * from './filter.js';
export * from './decode.js';
