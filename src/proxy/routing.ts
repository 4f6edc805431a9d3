// Configuring the proxy's TUN and, optionally, policy routing that sends the host's traffic into
// it. Everything installed is recorded so `remove()` deletes exactly that, and nothing else.
//
// Policy (per family): rule `lookup main suppress_prefixlength 0` keeps every main-table route
// except the default ones (so connected networks and the proxy's own network stay direct), rule
// `from <upstream source> lookup main` lets the proxy's upstream sockets — bound to that source
// address — use the real default route, and rule `iif lo lookup <table>` sends the rest of this
// host's own traffic to a table whose default route is the TUN. `iif lo` matches only locally
// originated packets: traffic this host forwards (containers, VMs, neighbours when ip_forward=1)
// is not captured unless gateway mode names its source networks, each with a rule
// `from <cidr> lookup <table>`. No fwmark is needed: Node sockets cannot set SO_MARK, but they
// can bind a source address. All of it over rtnetlink (src/netlink), without spawning `ip`.
import dgram from 'node:dgram';
import net from 'node:net';
import { formatIP, networkOf, parseCidr } from '../addr.js';
import {
  configureInterface, addRoute, deleteRoute, addRule, deleteRule, type RouteSpec, type RuleSpec,
} from '../netlink/index.js';

const MAIN_TABLE = 254;

export interface ProxyTunConfig {
  name: string;
  mtu: number;
  /** CIDRs for the TUN (its own address and prefix, e.g. 198.19.0.1/30). */
  addresses: string[];
}

/** Addresses the TUN (IPv6 without duplicate address detection, so listeners can bind at once), sets MTU, brings it up. */
export function configureProxyTun(cfg: ProxyTunConfig): void {
  configureInterface(cfg.name, {
    mtu: cfg.mtu,
    // A long transmit queue: a burst of connections must not overflow it before we read.
    txqueuelen: 10000,
    addresses: cfg.addresses.map((address) => ({ address, nodad: address.includes(':') })),
    up: true,
  });
}

/** The source address the kernel would use to reach `host` right now (before any TUN routing). */
export function sourceAddressFor(host: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    // A connected UDP socket makes the kernel choose a route and source without sending anything.
    const sock = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
    sock.on('error', () => { sock.close(); resolve(undefined); });
    sock.connect(9, host, () => {
      const { address } = sock.address();
      sock.close();
      resolve(address);
    });
  });
}

export interface PolicyRoutingOptions {
  device: string;
  table?: number;
  /** First rule priority; three consecutive priorities are used per family. */
  priority?: number;
  families?: (4 | 6)[];
  /** Source addresses of upstream sockets, per family, that must keep using the main table. */
  bypassSources?: { 4?: string; 6?: string };
  /** Gateway mode: networks whose forwarded traffic is captured too (CIDRs, either family). */
  gateway?: readonly string[];
}

/**
 * Deletes copies of exactly this rule (same priority, table, selectors) left by an earlier run
 * that was killed before it could remove them; the kernel keeps duplicate rules.
 */
function removeStale(rule: RuleSpec): number {
  let n = 0;
  for (; n < 16; n++) {
    try { deleteRule(rule); } catch { break; }
  }
  return n;
}

/** Policy routing that captures the host's traffic into the TUN; `remove()` undoes exactly it. */
export class PolicyRouting {
  private readonly undo: (() => void)[] = [];
  /** Identical rules left by an earlier run that could not clean up (SIGKILL), removed by install(). */
  staleRemoved = 0;

  constructor(private readonly opts: PolicyRoutingOptions) {}

  get table(): number {
    return this.opts.table ?? 7475;
  }

  install(): void {
    let priority = this.opts.priority ?? 7470;
    try {
      for (const family of this.opts.families ?? [4]) {
        const route: RouteSpec = { dst: 'default', family, dev: this.opts.device, table: this.table };
        addRoute(route);
        this.undo.push(() => deleteRoute(route));
        const rules: RuleSpec[] = [];
        const from = this.opts.bypassSources?.[family];
        if (from) rules.push({ family, from, table: MAIN_TABLE, priority });
        rules.push({ family, table: MAIN_TABLE, suppressPrefixLength: 0, priority: priority + 1 });
        rules.push({ family, iif: 'lo', table: this.table, priority: priority + 2 });
        for (const cidr of this.opts.gateway ?? []) {
          const c = parseCidr(cidr);
          if (c.family !== family) continue;
          rules.push({ family, from: `${formatIP(networkOf(c.bytes, c.prefixLength))}/${c.prefixLength}`, table: this.table, priority: priority + 2 });
        }
        for (const rule of rules) {
          this.staleRemoved += removeStale(rule);
          addRule(rule);
          this.undo.push(() => deleteRule(rule));
        }
        priority += 3;
      }
    } catch (e) {
      this.remove();
      throw e;
    }
  }

  /** Deletes what install() added, newest first. Safe to call more than once. */
  remove(): string[] {
    const failures: string[] = [];
    for (const step of this.undo.splice(0).reverse()) {
      try { step(); } catch (e) {
        // A route goes away with its device; that is not a failure.
        const code = (e as { code?: string }).code;
        if (code !== 'ESRCH' && code !== 'ENODEV' && code !== 'ENOENT') failures.push((e as Error).message);
      }
    }
    return failures;
  }
}
