// The whole tun2socks/tun2http service in one call: open and address a TUN, optionally install
// policy routing, and run the proxy. `stop()` undoes everything, and an exit hook removes the
// routing even when the process dies of an uncaught error or a signal. At start it warns when
// the open-files limit cannot hold the sessions allowed.
import net from 'node:net';
import { lookup } from 'node:dns/promises';
import { formatIP, parseIP } from '../addr.js';
import { openTun, type TunDevice } from '../device/index.js';
import { TunProxy, type TunProxyOptions } from './engine.js';
import { keepMallocHeapsTrimmed, keepYoungGenerationSmall } from './reclaim.js';
import { configureProxyTun, PolicyRouting, sourceAddressFor } from './routing.js';
import type { Upstream } from './upstream.js';
import { checkDescriptors, sessionsThatFit, DEFAULT_MAX_SESSIONS, MAX_UDP_SESSIONS } from './limits.js';

export interface ServiceOptions extends Omit<TunProxyOptions, 'device' | 'local4' | 'fake4' | 'local6' | 'fake6'> {
  upstream: Upstream;
  /** Device name or pattern (default 'tunproxy%d'). */
  name?: string;
  mtu?: number;
  /** The TUN's IPv4 address (the fake peer is the next address); a /30 is configured. */
  address4?: string;
  /** The TUN's IPv6 address, or false for IPv4 only; a /126 is configured. */
  address6?: string | false;
  /**
   * Install policy routing that sends the host's own traffic into the TUN (and, with `gateway`,
   * the traffic forwarded from those networks).
   */
  route?: boolean;
  routeTable?: number;
  routePriority?: number;
  /**
   * How the TUN hands over TCP's offloads: 'raw' (default) TSO super-packets translated once
   * each, 'split' ordinary packets (the device splits and coalesces), 'none' no vnet header and
   * full checksums on every packet.
   */
  offload?: 'raw' | 'split' | 'none';
}

// TCP's offloads only: a UDP super-packet would reach the UDP relay as one oversized datagram.
const RAW_OFFLOADS = { csum: true, tso4: true, tso6: true, tsoEcn: true };

export interface Service {
  readonly proxy: TunProxy;
  readonly device: TunDevice;
  readonly routing?: PolicyRouting;
  stop(): Promise<void>;
}

/** The address after `addr` (the NAT's fake peer sits next to the TUN's own address). */
function nextAddress(addr: string): string {
  const bytes = parseIP(addr);
  for (let i = bytes.length - 1; i >= 0 && ++bytes[i]! === 256; i--) bytes[i] = 0;
  return formatIP(bytes);
}

export async function startService(opts: ServiceOptions): Promise<Service> {
  const udpSessions = opts.udp ? MAX_UDP_SESSIONS : 0;
  if (opts.maxSessions === undefined) {
    // Unless the user chose, hold only as many sessions as the open-files limit has room for.
    opts = { ...opts, maxSessions: sessionsThatFit(udpSessions, DEFAULT_MAX_SESSIONS) };
  } else {
    const descriptors = checkDescriptors({ maxSessions: opts.maxSessions, udpSessions });
    if (descriptors) opts.log?.(`warning: ${descriptors}`);
  }
  const local4 = opts.address4 ?? '198.19.0.1';
  const local6 = opts.address6 === false ? undefined : (opts.address6 ?? 'fd00:7475::1');
  const offload = opts.offload ?? 'raw';
  const device = openTun({
    name: opts.name ?? 'tunproxy%d', batchSize: 128,
    ...(offload === 'raw' ? { vnetHdr: true, offload: RAW_OFFLOADS } : offload === 'split' ? { offload: 'split' } : {}),
  });
  let routing: PolicyRouting | undefined;
  const onExit = (): void => { routing?.remove(); };
  try {
    configureProxyTun({
      name: device.name, mtu: opts.mtu ?? 65000,
      addresses: [`${local4}/30`, ...(local6 ? [`${local6}/126`] : [])],
    });
    let bind4 = opts.bindAddress4;
    let bind6 = opts.bindAddress6;
    if (opts.route && opts.upstream.kind !== 'direct' && opts.upstream.kind !== 'reject' && !net.isIP(opts.upstream.host)) {
      // Resolve the proxy's name now: once the default route enters the TUN, our own lookup of it
      // would be carried through the proxy it names.
      const { address } = await lookup(opts.upstream.host);
      opts = { ...opts, upstream: { ...opts.upstream, host: address } };
    }
    if (opts.route) {
      // Upstream sockets bind to the source address they use today; a rule keeps that source on
      // the main table once the default route leads into the TUN.
      const up = opts.upstream;
      if (up.kind !== 'direct' && up.kind !== 'reject' && net.isIP(up.host)) {
        if (net.isIPv6(up.host)) bind6 ??= await sourceAddressFor(up.host);
        else bind4 ??= await sourceAddressFor(up.host);
      }
      // Direct connections (the direct upstream, or direct rules, now or after a reload) leave by the default route.
      if (up.kind === 'direct' || opts.rulesMayChange || (opts.rules ?? []).some((r) => r.action === 'direct')) {
        bind4 ??= await sourceAddressFor('192.0.2.1');
        if (local6) bind6 ??= await sourceAddressFor('2001:db8::1');
      }
      routing = new PolicyRouting({
        device: device.name, table: opts.routeTable, priority: opts.routePriority,
        families: local6 ? [4, 6] : [4], bypassSources: { 4: bind4, 6: bind6 }, gateway: opts.gateway,
      });
      process.on('exit', onExit);
      routing.install();
      if (routing.staleRemoved > 0) opts.log?.(`removed ${routing.staleRemoved} policy rules left by an earlier run`);
    }
    keepYoungGenerationSmall();
    keepMallocHeapsTrimmed();
    const proxy = await TunProxy.start({
      ...opts, device, local4, fake4: nextAddress(local4),
      ...(local6 ? { local6, fake6: nextAddress(local6) } : {}),
      ...(bind4 ? { bindAddress4: bind4 } : {}), ...(bind6 ? { bindAddress6: bind6 } : {}),
    });
    let stopped = false;
    return {
      proxy, device, routing,
      async stop(): Promise<void> {
        if (stopped) return;
        stopped = true;
        await proxy.close();
        routing?.remove();
        process.off('exit', onExit);
        await device.close();
      },
    };
  } catch (e) {
    routing?.remove();
    process.off('exit', onExit);
    await device.close();
    throw e;
  }
}
