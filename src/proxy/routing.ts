// Configuring the proxy's TUN and, optionally, policy routing that sends the host's traffic into
// it. Everything installed is recorded so `remove()` deletes exactly that, and nothing else.
//
// Policy (per family): rule `lookup main suppress_prefixlength 0` keeps every main-table route
// except the default ones (so connected networks and the proxy's own network stay direct), rule
// `from <upstream source> lookup main` lets the proxy's upstream sockets — bound to that source
// address — use the real default route, and rule `lookup <table>` sends the rest to a table whose
// default route is the TUN. No fwmark is needed: Node sockets cannot set SO_MARK, but they can
// bind a source address.
import { execFileSync } from 'node:child_process';
import net from 'node:net';

function ip(args: string[]): string {
  try {
    return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    const stderr = String((e as { stderr?: string }).stderr ?? '').trim();
    throw new Error(`ip ${args.join(' ')}: ${stderr || (e as Error).message}`);
  }
}

export interface InterfaceConfig {
  name: string;
  mtu: number;
  /** CIDRs for the TUN (its own address and prefix, e.g. 198.19.0.1/30). */
  addresses: string[];
}

/** Addresses the TUN (IPv6 without duplicate address detection, so listeners can bind at once), sets MTU, brings it up. */
export function configureInterface(cfg: InterfaceConfig): void {
  // A long transmit queue: a burst of connections must not overflow it before we read.
  ip(['link', 'set', 'dev', cfg.name, 'mtu', String(cfg.mtu), 'txqueuelen', '10000']);
  for (const a of cfg.addresses) {
    if (a.includes(':')) ip(['-6', 'addr', 'add', a, 'dev', cfg.name, 'nodad']);
    else ip(['addr', 'add', a, 'dev', cfg.name]);
  }
  ip(['link', 'set', 'dev', cfg.name, 'up']);
}

/** The source address the kernel would use to reach `host` right now (before any TUN routing). */
export function sourceAddressFor(host: string): string | undefined {
  try {
    const out = JSON.parse(ip(['-j', net.isIPv6(host) ? '-6' : '-4', 'route', 'get', host])) as { prefsrc?: string }[];
    return out[0]?.prefsrc;
  } catch {
    return undefined;
  }
}

export interface PolicyRoutingOptions {
  device: string;
  table?: number;
  /** First rule priority; three consecutive priorities are used per family. */
  priority?: number;
  families?: (4 | 6)[];
  /** Source addresses of upstream sockets, per family, that must keep using the main table. */
  bypassSources?: { 4?: string; 6?: string };
}

/** Policy routing that captures the host's traffic into the TUN; `remove()` undoes exactly it. */
export class PolicyRouting {
  private readonly undo: string[][] = [];

  constructor(private readonly opts: PolicyRoutingOptions) {}

  get table(): number {
    return this.opts.table ?? 7475;
  }

  install(): void {
    const table = String(this.table);
    let prio = this.opts.priority ?? 7470;
    try {
      for (const family of this.opts.families ?? [4]) {
        const f = `-${family}`;
        const route = [f, 'route', 'add', 'default', 'dev', this.opts.device, 'table', table];
        ip(route);
        this.undo.push([f, 'route', 'del', 'default', 'dev', this.opts.device, 'table', table]);
        const rules: string[][] = [];
        const source = this.opts.bypassSources?.[family];
        if (source) rules.push(['from', source, 'lookup', 'main', 'priority', String(prio)]);
        rules.push(['lookup', 'main', 'suppress_prefixlength', '0', 'priority', String(prio + 1)]);
        rules.push(['lookup', table, 'priority', String(prio + 2)]);
        for (const r of rules) {
          ip([f, 'rule', 'add', ...r]);
          this.undo.push([f, 'rule', 'del', ...r]);
        }
        prio += 3;
      }
    } catch (e) {
      this.remove();
      throw e;
    }
  }

  /** Deletes what install() added, newest first. Safe to call more than once. */
  remove(): string[] {
    const failures: string[] = [];
    for (const cmd of this.undo.splice(0).reverse()) {
      try { ip(cmd); } catch (e) {
        // A route goes away with its device; that is not a failure.
        if (!/No such process|Cannot find device|No such file/.test((e as Error).message)) failures.push((e as Error).message);
      }
    }
    return failures;
  }
}
