// tuntap/proxy: tun2socks and tun2http. TCP is terminated by the host kernel through a NAT inside
// the TUN (no TCP stack here), relayed through SOCKS5, SOCKS4a, HTTP CONNECT or directly; UDP
// through SOCKS5 UDP ASSOCIATE; DNS over TCP or from a fake-IP pool; optional policy routing.
export { startService, type Service, type ServiceOptions } from './service.js';
export { TunProxy, type TunProxyOptions, type PacketDevice, type ProxyStats, type ConnectionInfo } from './engine.js';
export { TcpNat, type NatOptions, type NatEntry, type NatCounters } from './nat.js';
export {
  parseUpstream, describeUpstream, connectThrough, socks5UdpAssociate, UpstreamError, redactProxyUrl, checkCredentials,
  type Upstream, type UpstreamKind, type Destination, type ConnectOptions, type UdpAssociation,
} from './upstream.js';
// The SOCKS5 UDP framing is packet's; re-exported where it was found before.
export { socks5UdpWrap, socks5UdpUnwrap } from '../packet/socks.js';
export { UdpRelay, type UdpRelayOptions } from './udp.js';
export { FakeIpPool, type FakeIpPoolOptions } from './fake-ip.js';
// The DNS codec is packet's; re-exported where it was found before.
export { parseQuery, buildAnswer, RCODE_SERVFAIL, type DnsQuestion } from '../packet/dns.js';
export { parseRule, decide, type Rule, type RuleAction } from './rules.js';
export { SourcePolicy, type SourcePolicyOptions } from './sources.js';
export { isHostName, isDestinationHost } from './names.js';
export { FailureLog, type FailureKind } from './failures.js';
export { descriptorLimit, checkDescriptors, type DescriptorLimit } from './limits.js';
export { resolvePassword, redactor, PASSWORD_ENV } from './credentials.js';
export { SocketRelay, type SocketRelayOptions, type RelayEnd } from './socket-relay.js';
export { PolicyRouting, configureProxyTun, sourceAddressFor, type PolicyRoutingOptions } from './routing.js';
