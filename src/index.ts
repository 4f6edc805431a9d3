// The public entry: the most used parts of each layer. Subpath exports give the whole layers.
export { TuntapError } from './errors.js';
export { inNetns, openNetns, closeNetns, Netns } from './netns.js';
export type { NetnsRef } from './netns.js';
export { openTun, openTap, createPersistent, TunDevice, Queue } from './device/index.js';
export type { DeviceOptions, PacketBatch, OffloadMode, VirtioNetHdr, PacketInfo, Batch } from './device/index.js';
export { startService as startProxy } from './proxy/index.js';
export type { ServiceOptions as ProxyOptions, Service as ProxyService } from './proxy/index.js';
export {
  configureInterface, createTun, deleteTun, createVeth, listLinks, getLink, setLink, deleteLink, addAddress,
  deleteAddress, listAddresses, addRoute, replaceRoute, deleteRoute, listRoutes, addRule, deleteRule, listRules,
  watchEvents, Netlink, NetlinkError,
} from './netlink/index.js';
export type { InterfaceConfig, Link, Address, AddressSpec, Route, RouteSpec, Rule, RuleSpec, NetlinkEvent } from './netlink/index.js';
export { UdpSocket, openUdp, EndpointTable } from './net/index.js';
export type { UdpSocketOptions, DatagramBatch, Endpoint } from './net/index.js';
export { LearningSwitch, TapPort, VxlanPort, createVmTap, deleteVmTap } from './l2/index.js';
export type { Port, Frame, PortStats, VlanMembership, VxlanPortOptions, VmTapOptions } from './l2/index.js';
export {
  PacketParseError, EthernetView, ArpView, Ipv4View, Ipv6View, TcpView, UdpView, IcmpView, Icmpv6View, summarize, describe,
  internetChecksum, updateChecksum16, rewriteIpv4Flow, gsoSplit, GroCoalescer, compileFilter, openCaptureFile, readPcapFile,
} from './packet/index.js';
export type { CompiledFilter, FrameSummary, CaptureWriter } from './packet/index.js';
export { WireGuardInterface, quickUp, readConfig, parseConfig, ConfigError, generatePrivateKey, publicKey as wireguardPublicKey } from './wireguard/index.js';
export type { InterfaceOptions as WireGuardOptions, WgConfig, PeerConfig as WireGuardPeerConfig } from './wireguard/index.js';
