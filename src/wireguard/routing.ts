// The network side of wg-quick: where a config's AllowedIPs are routed (a table, or a default
// route in its own table behind fwmark rules, so the tunnel's own UDP packets still leave by the
// main table), put in place at `up`, and brought from one config to the next on a reload by
// looking at what the kernel holds, never at what this process remembers: `tuntap wg syncconf`
// runs in another process than the interface.
import {
  addAddress, deleteAddress, listAddresses, replaceRoute, deleteRoute, listRoutes, addRule, deleteRule, listRules,
  withNetlink, type RuleSpec, type Rule, type Target,
} from '../netlink/index.js';
import { formatIP, networkOf, parseCidr } from '../addr.js';
import type { NetnsRef } from '../netns.js';
import type { WgConfig } from './config.js';

const MAIN_TABLE = 254;
const LOCAL_TABLE = 255;
/** wg-quick's table (and mark) for a default route when FwMark does not name one. */
const DEFAULT_POLICY_TABLE = 51820;

export interface RoutingPlan {
  /** The table AllowedIPs routes go into; undefined with Table = off. */
  table: number | undefined;
  /** The prefixes routed into the interface, most specific first, as wg-quick orders them. */
  routes: string[];
  /** A default route's own table and the families it covers (Table = auto with a /0 AllowedIPs). */
  policy: { table: number; families: Array<4 | 6> } | undefined;
  /** The mark on the tunnel's own packets: the policy table's, else the config's. */
  fwmark: number | undefined;
}

/** "198.18.0.0/15" for "198.18.7.1/15": the form routes and AllowedIPs are compared in. */
export function canonicalPrefix(text: string): string {
  const c = parseCidr(text);
  return `${formatIP(networkOf(c.bytes, c.prefixLength))}/${c.prefixLength}`;
}

/** Where `cfg` routes what; without IPv6 (`ipv6` false), IPv6 prefixes get no route or rule. */
export function routingPlan(cfg: WgConfig, ipv6: boolean): RoutingPlan {
  const i = cfg.interface;
  const allowed = [...new Set(cfg.peers.flatMap((p) => p.allowedIps).map(canonicalPrefix))];
  const choice = i.table ?? 'auto';
  const policyTable = i.fwmark || DEFAULT_POLICY_TABLE;
  const usesPolicy = choice === 'auto' && allowed.some((a) => parseCidr(a).prefixLength === 0);
  const routes = allowed.filter((a) => ipv6 || parseCidr(a).family === 4)
    .sort((a, b) => parseCidr(b).prefixLength - parseCidr(a).prefixLength);
  const families = ([4, 6] as const).filter((f) => routes.some((a) => parseCidr(a).prefixLength === 0 && parseCidr(a).family === f));
  return {
    table: choice === 'off' ? undefined : usesPolicy ? policyTable : choice === 'auto' || choice === 'main' ? MAIN_TABLE : Number(choice),
    routes: choice === 'off' ? [] : routes,
    policy: usesPolicy ? { table: policyTable, families } : undefined,
    fwmark: usesPolicy ? policyTable : i.fwmark,
  };
}

/** The two rules of a default route through the tunnel, per family (as wg-quick adds them). */
function policyRules(family: 4 | 6, table: number): RuleSpec[] {
  return [
    { family, table, fwmark: table, invert: true },             // unmarked packets: the tunnel's table
    { family, table: MAIN_TABLE, suppressPrefixLength: 0 },    // the main table, but not its default route
  ];
}

const isViaTunnel = (r: Rule, family: 4 | 6, table: number) =>
  r.family === family && r.action === 'lookup' && r.table === table && r.fwmark === table && r.invert;

/** Adds the routes and rules of `plan` (at `up`; what it added, removePolicy removes). */
export function installRouting(name: string, plan: RoutingPlan, netns: NetnsRef | undefined, log: (l: string) => void): void {
  withNetlink({ netns }, (netlink) => {
    const target = { netlink };
    for (const dst of plan.routes) {
      log(`[#] route ${dst} dev ${name}${plan.table !== MAIN_TABLE ? ` table ${plan.table}` : ''}`);
      replaceRoute({ dst, dev: name, table: plan.table }, target);
    }
    if (plan.policy) addPolicy(plan.policy.table, plan.policy.families, target, log);
  });
}

function addPolicy(table: number, families: Array<4 | 6>, target: Target, log: (l: string) => void): void {
  for (const family of families) {
    for (const r of policyRules(family, table)) addRule(r, target);
    log(`[#] rules: not fwmark ${table} table ${table}; table main suppress_prefixlength 0 (IPv${family})`);
  }
}

/**
 * Removes the policy rules of table `table` where the kernel has them (at `down`, and when a
 * reload drops the default route or moves it to another table). One of each per family: another
 * interface's default route may rely on a rule of the same form.
 */
export function removePolicy(table: number, netns: NetnsRef | undefined, families: Array<4 | 6> = [4, 6], target?: Target): void {
  withNetlink(target ?? { netns }, (netlink) => {
    const rules = listRules({ netlink });
    for (const family of families) {
      if (!rules.some((r) => isViaTunnel(r, family, table))) continue;
      for (const r of policyRules(family, table)) {
        try { deleteRule(r, { netlink }); } catch { /* already gone */ }
      }
    }
  });
}

/** What a reload changed on the network side, for the log. */
export interface RoutingChanges {
  addressesAdded: string[];
  addressesRemoved: string[];
  routesAdded: string[];
  routesRemoved: string[];
}

/**
 * Brings the interface's addresses, routes and rules from what the kernel holds to what `cfg`
 * asks. Only what the config owns is touched: addresses other than link-local ones (a non-empty
 * Address list is the interface's whole set), routes through the interface whose destination was or is an
 * AllowedIPs prefix (`previousAllowed`: the peers' prefixes before the reload), and the policy
 * rules of the old and new tables. Routes someone else added to other destinations stay.
 */
export function reconcileRouting(name: string, cfg: WgConfig, plan: RoutingPlan,
  previous: { allowed: string[]; fwmark: number }, netns: NetnsRef | undefined, log: (l: string) => void): RoutingChanges {
  const changes: RoutingChanges = { addressesAdded: [], addressesRemoved: [], routesAdded: [], routesRemoved: [] };
  withNetlink({ netns }, (netlink) => {
    const target = { netlink };
    // Addresses: the new ones first, so the interface is never without one it keeps. A file
    // without Address (a `wg-quick strip`ped one) leaves them alone.
    const wanted = new Map(cfg.interface.addresses.map((a) => { const c = parseCidr(a); return [`${c.address}/${c.prefixLength}`, a]; }));
    const held = listAddresses({ netlink, dev: name }).filter((a) => a.scope !== 'link').map((a) => `${a.address}/${a.prefixLength}`);
    for (const [key, text] of wanted) {
      if (held.includes(key)) continue;
      addAddress(name, text, { ...target, replace: true });
      changes.addressesAdded.push(key);
    }
    for (const key of wanted.size > 0 ? held : []) {
      if (wanted.has(key)) continue;
      deleteAddress(name, key, target);
      changes.addressesRemoved.push(key);
    }

    // Routes: every wanted one (replace is harmless when it is there), then the ones to a
    // destination the config owned or owns that are not wanted where they are (a peer removed,
    // a prefix dropped, a Table changed).
    const routed = new Set(listRoutes({ netlink, dev: name, table: 'all' }).map((r) => routeKey(r.dst, r.family, r.table)));
    for (const dst of plan.routes) {
      if (routed.has(routeKey(dst, undefined, plan.table!))) continue;
      replaceRoute({ dst, dev: name, table: plan.table }, target);
      changes.routesAdded.push(dst);
    }
    const owned = new Set([...previous.allowed, ...cfg.peers.flatMap((p) => p.allowedIps)].map(canonicalPrefix));
    const keep = new Set(plan.routes.map((dst) => routeKey(dst, undefined, plan.table!)));
    for (const r of listRoutes({ netlink, dev: name, table: 'all' })) {
      // The kernel's own routes (an address's prefix, fe80::/64, the local table) are not ours.
      if (r.table === LOCAL_TABLE || r.protocol === 'kernel' || r.type !== 'unicast') continue;
      const dst = r.dst === 'default' ? (r.family === 4 ? '0.0.0.0/0' : '::/0') : r.dst;
      if (!owned.has(canonicalPrefix(dst)) || keep.has(routeKey(dst, r.family, r.table))) continue;
      deleteRoute({ dst, family: r.family, dev: name, table: r.table }, target);
      changes.routesRemoved.push(r.table === MAIN_TABLE ? dst : `${dst} table ${r.table}`);
    }

    // Policy rules: those of the old table go unless the new plan keeps them as they are.
    const oldTable = previous.fwmark;
    const rules = listRules({ netlink });
    const had = ([4, 6] as const).filter((f) => oldTable !== 0 && rules.some((r) => isViaTunnel(r, f, oldTable)));
    const want = plan.policy?.families ?? [];
    const newTable = plan.policy?.table;
    const drop = had.filter((f) => newTable !== oldTable || !want.includes(f));
    if (drop.length) removePolicy(oldTable, netns, drop, target);
    const add = want.filter((f) => !(newTable === oldTable && had.includes(f)));
    if (add.length) addPolicy(newTable!, add, target, log);
  });
  return changes;
}

function routeKey(dst: string, family: 4 | 6 | undefined, table: number): string {
  const text = dst === 'default' ? (family === 6 ? '::/0' : '0.0.0.0/0') : dst;
  return `${canonicalPrefix(text)} ${table}`;
}
