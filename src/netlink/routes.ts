// Routes, IPv4 and IPv6: add, replace, delete, list; via a gateway or a device only, in any table,
// with metric, scope, preferred source, and blackhole/unreachable/prohibit types.
import {
  AF_INET, AF_INET6, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE, RTA_DST, RTA_GATEWAY, RTA_METRICS,
  RTA_OIF, RTA_PREFSRC, RTA_PRIORITY, RTA_SRC, RTA_TABLE, RTAX_MTU, RTM_DELROUTE, RTM_GETROUTE,
  RTM_NEWROUTE, RTNH_F_ONLINK, RT_TABLE_MAIN, RT_TABLE_UNSPEC, numberNamed, protocolNames, routeTypeNames,
  scopeNames, type RouteType,
} from './constants.js';
import { attrNested, attrU32, bytesAttr, nestAttr, parseAttrs, u32Attr, type Attr, type Message } from './codec.js';
import { badAddress, bytesToIp, familyOf, networkOf, parseCidr, ipToBytes, type Family } from './ip.js';
import { linkIndex, namesFor, type LinkRef } from './links.js';
import { withNetlink, type Netlink, type Target } from './socket.js';

export interface Route {
  family: Family;
  type: RouteType;
  /** "198.18.1.0/24", "fd00:1::/64", or "default". */
  dst: string;
  dstLength: number;
  /** Source selector ("from" in ip route, IPv6 source routing). */
  src?: string;
  gateway?: string;
  /** Output device index and name. */
  oif?: number;
  dev?: string;
  /** Preferred source address (ip's "src"). */
  prefsrc?: string;
  table: number;
  protocol: string;
  scope: string;
  metric?: number;
  mtu?: number;
  /** rtm_flags (RTNH_F_*). */
  flags: number;
}

export interface RouteSpec {
  /** "198.18.1.0/24", "fd00:1::/64", a bare address, or "default" (then give family or gateway). */
  dst: string;
  family?: Family;
  gateway?: string;
  dev?: LinkRef;
  /** Preferred source address for traffic using the route. */
  prefsrc?: string;
  /** Source prefix selector (IPv6 "from"). */
  src?: string;
  /** Table id (default main = 254). */
  table?: number;
  metric?: number;
  scope?: 'global' | 'site' | 'link' | 'host' | 'nowhere' | number;
  type?: RouteType;
  /** Routing protocol number or name (default "boot", like ip). */
  protocol?: number | string;
  mtu?: number;
  /** Gateway is on-link even if no address covers it. */
  onlink?: boolean;
}

function rtmsg(family: number, dstLen: number, srcLen: number, table: number, protocol: number, scope: number, type: number, flags: number): Buffer {
  const b = Buffer.alloc(12);
  b[0] = family;
  b[1] = dstLen;
  b[2] = srcLen;
  b[4] = table < 256 ? table : RT_TABLE_UNSPEC;
  b[5] = protocol;
  b[6] = scope;
  b[7] = type;
  b.writeUInt32LE(flags, 8);
  return b;
}

export function parseRoute(m: Message): Route | undefined {
  const p = m.payload;
  if (p.length < 12) return undefined;
  if (p[0] !== AF_INET && p[0] !== AF_INET6) return undefined;
  const family: Family = p[0] === AF_INET ? 4 : 6;
  const a = parseAttrs(p, 12);
  const dstLength = p[1]!;
  const dstBytes = a.get(RTA_DST);
  const route: Route = {
    family,
    type: routeTypeNames[p[7]!] ?? 'unspec',
    dst: dstLength === 0 && !dstBytes ? 'default' : `${bytesToIp(dstBytes ?? Buffer.alloc(family === 4 ? 4 : 16))}/${dstLength}`,
    dstLength,
    table: attrU32(a, RTA_TABLE) ?? p[4]!,
    protocol: protocolNames[p[5]!] ?? String(p[5]),
    scope: scopeNames[p[6]!] ?? String(p[6]),
    flags: p.readUInt32LE(8),
  };
  const src = a.get(RTA_SRC);
  if (src) route.src = `${bytesToIp(src)}/${p[2]}`;
  const gw = a.get(RTA_GATEWAY);
  if (gw) route.gateway = bytesToIp(gw);
  const oif = attrU32(a, RTA_OIF);
  if (oif !== undefined) route.oif = oif;
  const prefsrc = a.get(RTA_PREFSRC);
  if (prefsrc) route.prefsrc = bytesToIp(prefsrc);
  const metric = attrU32(a, RTA_PRIORITY);
  if (metric !== undefined) route.metric = metric;
  const metrics = attrNested(a, RTA_METRICS);
  const mtu = metrics && attrU32(metrics, RTAX_MTU);
  if (mtu) route.mtu = mtu;
  return route;
}

function buildRoute(nl: Netlink, spec: RouteSpec, deleting: boolean): { header: Buffer; attrs: Attr[]; text: string } {
  const isDefault = spec.dst === 'default';
  const family: Family = spec.family
    ?? (isDefault ? (spec.gateway ? familyOf(spec.gateway) : 4) : familyOf(spec.dst.split('/')[0]!));
  const dst = isDefault ? undefined : parseCidr(spec.dst);
  if (dst && dst.family !== family) throw badAddress(spec.dst, `expected an IPv${family} prefix`);
  const type = spec.type ?? 'unicast';
  const typeNum = routeTypeNames.indexOf(type);
  if (typeNum < 0) throw badAddress(String(type), 'unknown route type');
  const table = spec.table ?? RT_TABLE_MAIN;
  const attrs: Attr[] = [u32Attr(RTA_TABLE, table)];
  if (dst) attrs.push(bytesAttr(RTA_DST, dst.bytes));
  let srcLen = 0;
  if (spec.src !== undefined) {
    const src = parseCidr(spec.src);
    if (src.family !== family) throw badAddress(spec.src, `expected an IPv${family} prefix`);
    srcLen = src.prefixLength;
    attrs.push(bytesAttr(RTA_SRC, networkOf(src.bytes, src.prefixLength)));
  }
  if (spec.gateway !== undefined) {
    if (familyOf(spec.gateway) !== family) throw badAddress(spec.gateway, `the gateway must be IPv${family}`);
    attrs.push(bytesAttr(RTA_GATEWAY, ipToBytes(spec.gateway)));
  }
  if (spec.dev !== undefined) attrs.push(u32Attr(RTA_OIF, linkIndex(nl, spec.dev)));
  if (spec.prefsrc !== undefined) {
    if (familyOf(spec.prefsrc) !== family) throw badAddress(spec.prefsrc, `the source must be IPv${family}`);
    attrs.push(bytesAttr(RTA_PREFSRC, ipToBytes(spec.prefsrc)));
  }
  if (spec.metric !== undefined) attrs.push(u32Attr(RTA_PRIORITY, spec.metric));
  if (spec.mtu !== undefined) attrs.push(nestAttr(RTA_METRICS, [u32Attr(RTAX_MTU, spec.mtu)]));
  // Scope as ip chooses it: host for local, link for direct unicast and broadcast-like types,
  // global otherwise; a delete matches any scope.
  let scope: number;
  if (spec.scope !== undefined) scope = numberNamed(scopeNames, spec.scope, 'scope');
  else if (deleting) scope = 255;
  else if (type === 'local' || type === 'nat') scope = 254;
  else if (type === 'broadcast' || type === 'multicast' || type === 'anycast') scope = 253;
  else if (type === 'unicast' && spec.gateway === undefined) scope = 253;
  else scope = 0;
  const protocol = spec.protocol === undefined ? (deleting ? 0 : 3) : numberNamed(protocolNames, spec.protocol, 'protocol');
  const header = rtmsg(family === 4 ? AF_INET : AF_INET6, dst?.prefixLength ?? 0, srcLen, table, protocol, scope,
    deleting && spec.type === undefined ? 0 : typeNum, spec.onlink ? RTNH_F_ONLINK : 0);
  const text = `route ${isDefault ? 'default' : `${dst!.address}/${dst!.prefixLength}`}${spec.gateway ? ` via ${spec.gateway}` : ''}${spec.dev !== undefined ? ` dev ${spec.dev}` : ''}`;
  return { header, attrs, text };
}

const explainRoute = (code: string) => ({
  EEXIST: 'the route already exists (use replace)',
  ESRCH: 'no such route',
  ENETUNREACH: 'the gateway is not reachable from any directly connected network',
})[code];

function change(type: number, flags: number, verb: string, spec: RouteSpec, target?: Target): void {
  withNetlink(target, (nl) => {
    const { header, attrs, text } = buildRoute(nl, spec, type === RTM_DELROUTE);
    nl.request(type, flags, header, attrs, `${verb} ${text}`, explainRoute);
  });
}

export function addRoute(spec: RouteSpec, target?: Target): void {
  change(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, 'adding', spec, target);
}

/** Adds the route or replaces the one with the same destination, table and metric. */
export function replaceRoute(spec: RouteSpec, target?: Target): void {
  change(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, 'replacing', spec, target);
}

export function deleteRoute(spec: RouteSpec, target?: Target): void {
  change(RTM_DELROUTE, 0, 'deleting', spec, target);
}

export interface RouteFilter {
  family?: Family;
  /** Table id, or "all" (default: main). */
  table?: number | 'all';
  /** Only routes through this device. */
  dev?: LinkRef;
}

/** Lists routes (cached/cloned entries excluded), with device names filled in. */
export function listRoutes(target?: Target & RouteFilter): Route[] {
  return withNetlink(target, (nl) => {
    const family = target?.family === 4 ? AF_INET : target?.family === 6 ? AF_INET6 : 0;
    const table = target?.table ?? RT_TABLE_MAIN;
    const { index: oif, names } = namesFor(nl, target?.dev);
    const routes = nl.dump(RTM_GETROUTE, rtmsg(family, 0, 0, 0, 0, 0, 0, 0), [], (m) => {
      const r = parseRoute(m);
      if (!r || (table !== 'all' && r.table !== table) || (oif !== undefined && r.oif !== oif)) return undefined;
      if (family && r.family !== target?.family) return undefined;
      if (r.oif !== undefined) r.dev = names.get(r.oif);
      return r;
    }, 'listing routes');
    return routes;
  });
}
