// Links: list, show, change (up/down, MTU, name, MAC, txqueuelen), delete, move between
// namespaces, and create veth pairs and persistent TUN/TAP devices.
import { constants } from 'node:os';
import { TuntapError } from '../errors.js';
import { createPersistent } from '../device/device.js';
import { openNetns, closeNetns, type NetnsRef } from '../netns.js';
import {
  AF_UNSPEC, IFF_RUNNING, IFF_TAP, IFF_TUN, IFF_UP,
  IFLA_ADDRESS, IFLA_BROADCAST, IFLA_CARRIER, IFLA_GROUP, IFLA_IFNAME, IFLA_INFO_DATA, IFLA_INFO_KIND,
  IFLA_LINK, IFLA_LINKINFO, IFLA_LINK_NETNSID, IFLA_MASTER, IFLA_MAX_MTU, IFLA_MIN_MTU, IFLA_MTU,
  IFLA_NET_NS_FD, IFLA_NET_NS_PID, IFLA_NUM_RX_QUEUES, IFLA_NUM_TX_QUEUES, IFLA_OPERSTATE, IFLA_QDISC,
  IFLA_STATS64, IFLA_TUN_GROUP, IFLA_TUN_MULTI_QUEUE, IFLA_TUN_NUM_DISABLED_QUEUES, IFLA_TUN_NUM_QUEUES,
  IFLA_TUN_OWNER, IFLA_TUN_PERSIST, IFLA_TUN_PI, IFLA_TUN_TYPE, IFLA_TUN_VNET_HDR, IFLA_TXQLEN,
  NLM_F_CREATE, NLM_F_EXCL, RTM_DELLINK, RTM_GETLINK, RTM_NEWLINK, VETH_INFO_PEER, linkFlagNames,
  operStates,
} from './constants.js';
import {
  attrNested, attrS32, attrStr, attrU32, attrU8, bytesAttr, encodeAttrs, nestAttr, parseAttrs, strAttr, u32Attr, u8Attr,
  type Attr, type Message,
} from './codec.js';
import { formatHardwareAddress, parseHardwareAddress } from '../addr.js';
import { withNetlink, NetlinkError, type Netlink, type Target } from './socket.js';

export interface LinkStats {
  rxPackets: number; txPackets: number; rxBytes: number; txBytes: number;
  rxErrors: number; txErrors: number; rxDropped: number; txDropped: number;
  multicast: number; collisions: number;
}

/** The IFLA_TUN_* details of a tun/tap device. */
export interface TunInfo {
  type: 'tun' | 'tap';
  pi: boolean;
  vnetHdr: boolean;
  persist: boolean;
  multiQueue: boolean;
  numQueues: number;
  numDisabledQueues: number;
  /** uid allowed to attach, when one is set. */
  owner?: number;
  /** gid allowed to attach, when one is set. */
  group?: number;
}

export interface Link {
  index: number;
  name: string;
  /** Raw ifi_flags (IFF_*). */
  flags: number;
  /** Flag names as `ip link` prints them (UP, LOWER_UP, POINTOPOINT, ...). */
  flagNames: string[];
  up: boolean;
  /** IFF_RUNNING: the carrier is present and the device is up. */
  running: boolean;
  operState: string;
  mtu: number;
  minMtu?: number;
  maxMtu?: number;
  txqueuelen?: number;
  /** ARPHRD_* link type (1 ether, 65534 none for tun, 772 loopback). */
  linkType: number;
  address?: string;
  broadcast?: string;
  /** rtnl_link kind: veth, tun, bridge, ... (absent for plain devices like lo). */
  kind?: string;
  qdisc?: string;
  group?: number;
  master?: number;
  /** ifindex of the peer/lower device (for veth, in the namespace `linkNetnsId` names). */
  link?: number;
  linkNetnsId?: number;
  carrier?: boolean;
  numTxQueues?: number;
  numRxQueues?: number;
  stats?: LinkStats;
  tun?: TunInfo;
}

/** A device by name or ifindex. */
export type LinkRef = string | number;

const IFINFOMSG_LENGTH = 16;

function ifinfomsg(index = 0, flags = 0, change = 0, family = AF_UNSPEC): Buffer {
  const b = Buffer.alloc(IFINFOMSG_LENGTH);
  b[0] = family;
  b.writeInt32LE(index, 4);
  b.writeUInt32LE(flags >>> 0, 8);
  b.writeUInt32LE(change >>> 0, 12);
  return b;
}

function parseStats(b: Buffer | undefined): LinkStats | undefined {
  if (!b || b.length < 80) return undefined;
  const u = (i: number) => Number(b.readBigUInt64LE(i * 8));
  return {
    rxPackets: u(0), txPackets: u(1), rxBytes: u(2), txBytes: u(3), rxErrors: u(4), txErrors: u(5),
    rxDropped: u(6), txDropped: u(7), multicast: u(8), collisions: u(9),
  };
}

function parseTun(data: ReturnType<typeof parseAttrs>): TunInfo {
  const bool = (t: number) => attrU8(data, t) === 1;
  const owner = attrS32(data, IFLA_TUN_OWNER);
  const group = attrS32(data, IFLA_TUN_GROUP);
  const info: TunInfo = {
    type: attrU8(data, IFLA_TUN_TYPE) === IFF_TAP ? 'tap' : 'tun',
    pi: bool(IFLA_TUN_PI),
    vnetHdr: bool(IFLA_TUN_VNET_HDR),
    persist: bool(IFLA_TUN_PERSIST),
    multiQueue: bool(IFLA_TUN_MULTI_QUEUE),
    numQueues: attrU32(data, IFLA_TUN_NUM_QUEUES) ?? 0,
    numDisabledQueues: attrU32(data, IFLA_TUN_NUM_DISABLED_QUEUES) ?? 0,
  };
  if (owner !== undefined && owner !== -1) info.owner = owner;
  if (group !== undefined && group !== -1) info.group = group;
  return info;
}

/** Decodes an RTM_NEWLINK/RTM_DELLINK message. */
/** Decodes an RTM_NEWLINK/RTM_DELLINK; undefined when the payload is shorter than ifinfomsg. */
export function parseLink(m: Message): Link | undefined {
  const p = m.payload;
  if (p.length < IFINFOMSG_LENGTH) return undefined;
  const flags = p.readUInt32LE(8);
  const a = parseAttrs(p, IFINFOMSG_LENGTH);
  const link: Link = {
    index: p.readInt32LE(4),
    name: attrStr(a, IFLA_IFNAME) ?? '',
    flags,
    flagNames: linkFlagNames.filter(([bit]) => flags & bit).map(([, n]) => n),
    up: (flags & IFF_UP) !== 0,
    running: (flags & IFF_RUNNING) !== 0,
    operState: operStates[attrU8(a, IFLA_OPERSTATE) ?? 0] ?? 'UNKNOWN',
    mtu: attrU32(a, IFLA_MTU) ?? 0,
    linkType: p.readUInt16LE(2),
  };
  const set = <K extends keyof Link>(k: K, v: Link[K] | undefined) => { if (v !== undefined) link[k] = v; };
  set('minMtu', attrU32(a, IFLA_MIN_MTU));
  set('maxMtu', attrU32(a, IFLA_MAX_MTU));
  set('txqueuelen', attrU32(a, IFLA_TXQLEN));
  const mac = a.get(IFLA_ADDRESS);
  if (mac && mac.length > 0) link.address = formatHardwareAddress(mac);
  const brd = a.get(IFLA_BROADCAST);
  if (brd && brd.length > 0) link.broadcast = formatHardwareAddress(brd);
  set('qdisc', attrStr(a, IFLA_QDISC));
  set('group', attrU32(a, IFLA_GROUP));
  set('master', attrU32(a, IFLA_MASTER));
  set('linkNetnsId', attrS32(a, IFLA_LINK_NETNSID));
  const lower = attrU32(a, IFLA_LINK);
  if (lower !== undefined && (lower !== link.index || link.linkNetnsId !== undefined)) link.link = lower;
  const carrier = attrU8(a, IFLA_CARRIER);
  if (carrier !== undefined) link.carrier = carrier === 1;
  set('numTxQueues', attrU32(a, IFLA_NUM_TX_QUEUES));
  set('numRxQueues', attrU32(a, IFLA_NUM_RX_QUEUES));
  set('stats', parseStats(a.get(IFLA_STATS64)));
  const info = attrNested(a, IFLA_LINKINFO);
  if (info) {
    set('kind', attrStr(info, IFLA_INFO_KIND));
    const data = attrNested(info, IFLA_INFO_DATA);
    if (link.kind === 'tun' && data) link.tun = parseTun(data);
  }
  return link;
}

function refAttrs(ref: LinkRef): { index: number; attrs: Attr[] } {
  return typeof ref === 'number' ? { index: ref, attrs: [] } : { index: 0, attrs: [strAttr(IFLA_IFNAME, checkName(ref))] };
}

/** Validates a device name the way the kernel will (1..15 bytes, no '/', ':' or whitespace). */
export function checkName(name: string): string {
  const bytes = Buffer.byteLength(name);
  if (bytes === 0 || bytes > 15 || /[/:\s]/.test(name) || name === '.' || name === '..') {
    throw new TuntapError('dev_valid_name', constants.errno.EINVAL,
      `"${name}" is not a valid device name: use 1 to 15 characters without "/", ":" or spaces`);
  }
  return name;
}

const noDevice = (ref: LinkRef) => (code: string) => (code === 'ENODEV' ? `device "${ref}" does not exist` : undefined);

export function listLinks(target?: Target & { kind?: string }): Link[] {
  return withNetlink(target, (nl) => {
    const links = nl.dump(RTM_GETLINK, ifinfomsg(), [], parseLink, 'listing links');
    return target?.kind ? links.filter((l) => l.kind === target.kind) : links;
  });
}

/** One device by name or index; throws a NetlinkError (ENODEV) when it does not exist. */
export function getLink(ref: LinkRef, target?: Target): Link {
  return withNetlink(target, (nl) => fetchLink(nl, ref, `showing ${ref}`));
}

/** One device by name or index over `nl`; errors begin with `what` ("showing wg0", "deleting wg0"). */
function fetchLink(nl: Netlink, ref: LinkRef, what: string): Link {
  const { index, attrs } = refAttrs(ref);
  const link = nl.get(RTM_GETLINK, ifinfomsg(index), attrs, parseLink, what, noDevice(ref));
  if (!link) throw new NetlinkError('recvmsg', constants.errno.EBADMSG, `${what}: the kernel's answer was shorter than a link message`);
  return link;
}

/** Like getLink, but undefined when the device does not exist. */
export function findLink(ref: LinkRef, target?: Target): Link | undefined {
  try {
    return getLink(ref, target);
  } catch (e) {
    if (e instanceof NetlinkError && e.code === 'ENODEV') return undefined;
    throw e;
  }
}

/**
 * For a listing: the ifindex to keep (when `dev` is given) and device names by index — one GET
 * for a single device, one link dump otherwise.
 */
export function namesFor(nl: Netlink, dev: LinkRef | undefined): { index?: number; names: Map<number, string> } {
  if (dev === undefined) return { names: new Map(listLinks({ netlink: nl }).map((l) => [l.index, l.name])) };
  const link = getLink(dev, { netlink: nl });
  return { index: link.index, names: new Map([[link.index, link.name]]) };
}

/** ifindex of a device given by name (numbers pass through). */
export function linkIndex(nl: Netlink, ref: LinkRef): number {
  if (typeof ref === 'number') return ref;
  return getLink(ref, { netlink: nl }).index;
}

export interface LinkChanges {
  up?: boolean;
  mtu?: number;
  /** New name. */
  name?: string;
  /** New MAC address ("02:00:00:00:00:01"). */
  address?: string;
  txqueuelen?: number;
  /** Move the device into this namespace (name, path, pid or { fd }). */
  netns?: NetnsRef;
}

/** Runs `fn` with the IFLA_NET_NS_* attribute naming `ns`; fds we opened are closed after. */
function withNetnsAttr<T>(ns: NetnsRef, fn: (a: Attr) => T): T {
  if (typeof ns === 'number') return fn(u32Attr(IFLA_NET_NS_PID, ns));
  if (typeof ns === 'object') return fn(u32Attr(IFLA_NET_NS_FD, ns.fd));
  const fd = openNetns(ns);
  try {
    return fn(u32Attr(IFLA_NET_NS_FD, fd));
  } finally {
    closeNetns(fd);
  }
}

export function setLink(ref: LinkRef, changes: LinkChanges, target?: Target): void {
  withNetlink(target, (nl) => {
    const attrs: Attr[] = [];
    let index: number;
    if (changes.name !== undefined) {
      index = linkIndex(nl, ref);
      attrs.push(strAttr(IFLA_IFNAME, checkName(changes.name)));
    } else {
      const r = refAttrs(ref);
      index = r.index;
      attrs.push(...r.attrs);
    }
    if (changes.mtu !== undefined) attrs.push(u32Attr(IFLA_MTU, changes.mtu));
    if (changes.txqueuelen !== undefined) attrs.push(u32Attr(IFLA_TXQLEN, changes.txqueuelen));
    if (changes.address !== undefined) attrs.push(bytesAttr(IFLA_ADDRESS, parseHardwareAddress(changes.address)));
    const flags = changes.up ? IFF_UP : 0;
    const change = changes.up === undefined ? 0 : IFF_UP;
    const send = (extra: Attr[]) => nl.request(RTM_NEWLINK, 0, ifinfomsg(index, flags, change), [...attrs, ...extra],
      `changing ${ref}`, noDevice(ref));
    if (changes.netns !== undefined) withNetnsAttr(changes.netns, (a) => send([a]));
    else send([]);
  });
}

export function deleteLink(ref: LinkRef, target?: Target): void {
  const { index, attrs } = refAttrs(ref);
  withNetlink(target, (nl) => nl.request(RTM_DELLINK, 0, ifinfomsg(index), attrs, `deleting ${ref}`, noDevice(ref)));
}

/** Moves a device into another namespace (name, path, pid or { fd }). */
export function moveLink(ref: LinkRef, netns: NetnsRef, target?: Target): void {
  setLink(ref, { netns }, target);
}

const exists = (name: string) => (code: string) => (code === 'EEXIST' ? `a device named "${name}" already exists` : undefined);

export interface VethOptions {
  /** Namespace for the peer end (the first end is created where the target points). */
  peerNetns?: NetnsRef;
  mtu?: number;
  /** Bring both ends up (default false). */
  up?: boolean;
}

/** Creates a veth pair `name` ⇄ `peer` (the peer possibly in another namespace). */
export function createVeth(name: string, peer: string, opts: VethOptions = {}, target?: Target): void {
  checkName(name);
  checkName(peer);
  withNetlink(target, (nl) => {
    const common: Attr[] = opts.mtu !== undefined ? [u32Attr(IFLA_MTU, opts.mtu)] : [];
    // Both ends are created down: the kernel cannot open the peer before the pair is joined
    // (veth_open answers ENOTCONN), so "up" is a second step.
    const build = (peerNs: Attr[]) => {
      const peerMsg = Buffer.concat([ifinfomsg(), encodeAttrs([strAttr(IFLA_IFNAME, peer), ...common, ...peerNs])]);
      nl.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, ifinfomsg(), [
        strAttr(IFLA_IFNAME, name), ...common,
        nestAttr(IFLA_LINKINFO, [strAttr(IFLA_INFO_KIND, 'veth'), nestAttr(IFLA_INFO_DATA, [bytesAttr(VETH_INFO_PEER, peerMsg)])]),
      ], `creating veth ${name}`, exists(name));
    };
    if (opts.peerNetns !== undefined) withNetnsAttr(opts.peerNetns, (a) => build([a]));
    else build([]);
    if (opts.up) {
      setLink(name, { up: true }, { netlink: nl });
      if (opts.peerNetns === undefined) setLink(peer, { up: true }, { netlink: nl });
      else setLink(peer, { up: true }, { netns: opts.peerNetns });
    }
  });
}

export interface TunCreateOptions {
  mode?: 'tun' | 'tap';
  /** uid allowed to attach without CAP_NET_ADMIN. */
  owner?: number;
  /** gid allowed to attach without CAP_NET_ADMIN. */
  group?: number;
  /** Keep the 4-byte packet information header (default false, like `ip tuntap`). */
  pi?: boolean;
  vnetHdr?: boolean;
  multiQueue?: boolean;
}

/**
 * Creates a persistent TUN/TAP device, like `ip tuntap add`. Asks rtnetlink first (RTM_NEWLINK
 * kind "tun"); today's kernels refuse that, so it then attaches once with TUNSETIFF, sets
 * owner/group and TUNSETPERSIST, and lets go. Returns the new device.
 */
export function createTun(name: string, opts: TunCreateOptions = {}, target?: Target): Link {
  checkName(name);
  const mode = opts.mode ?? 'tun';
  return withNetlink(target, (nl) => {
    if (findLink(name, { netlink: nl })) {
      throw new NetlinkError('netlink(RTM_NEWLINK)', constants.errno.EEXIST,
        `creating ${name}: a device named "${name}" already exists (netlink(RTM_NEWLINK): EEXIST)`);
    }
    const data: Attr[] = [
      u8Attr(IFLA_TUN_TYPE, mode === 'tap' ? IFF_TAP : IFF_TUN), u8Attr(IFLA_TUN_PI, opts.pi ? 1 : 0),
      u8Attr(IFLA_TUN_VNET_HDR, opts.vnetHdr ? 1 : 0), u8Attr(IFLA_TUN_MULTI_QUEUE, opts.multiQueue ? 1 : 0),
      u8Attr(IFLA_TUN_PERSIST, 1),
    ];
    if (opts.owner !== undefined) data.push(u32Attr(IFLA_TUN_OWNER, opts.owner));
    if (opts.group !== undefined) data.push(u32Attr(IFLA_TUN_GROUP, opts.group));
    try {
      nl.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, ifinfomsg(), [
        strAttr(IFLA_IFNAME, name),
        nestAttr(IFLA_LINKINFO, [strAttr(IFLA_INFO_KIND, 'tun'), nestAttr(IFLA_INFO_DATA, data)]),
      ], `creating ${name}`, exists(name));
    } catch (e) {
      if (!(e instanceof NetlinkError) || e.errno !== constants.errno.EOPNOTSUPP) throw e;
      createPersistent(mode, {
        name, packetInfo: !!opts.pi, vnetHdr: !!opts.vnetHdr, multiQueue: !!opts.multiQueue,
        owner: opts.owner, group: opts.group, netns: nl.netns,
      });
    }
    return getLink(name, { netlink: nl });
  });
}

/** Deletes a persistent TUN/TAP device (refuses other kinds). */
export function deleteTun(name: string, target?: Target): void {
  withNetlink(target, (nl) => {
    const link = fetchLink(nl, name, `deleting ${name}`);
    if (link.kind !== 'tun') {
      throw new TuntapError('netlink(RTM_DELLINK)', constants.errno.EINVAL,
        `deleting ${name}: it is a ${link.kind ?? 'plain'} device, not a tun/tap device`);
    }
    deleteLink(link.index, { netlink: nl });
  });
}
