// Device management for the CLI: `tuntap add | del | list | show`, iproute2-like words, --json.
// Everything goes through tuntap/netlink; nothing spawns `ip`.
import { parseArgs, intOption, optionName, UsageError, noExtraArguments, type ParsedArgs } from './args.js';
import {
  checkName, configureInterface, createTun, deleteTun, getLink, listAddresses, listLinks,
  parseCidr, Netlink, type Address, type Link,
} from '../netlink/index.js';
import { TuntapError, UserError } from '../errors.js';
import type { NetnsRef } from '../netns.js';
import { groupName, resolveId, tunNodeWarning, userName } from './users.js';

function netnsOption(o: ParsedArgs['options']): NetnsRef | undefined {
  const v = o.netns;
  if (typeof v !== 'string') return undefined;
  return /^\d+$/.test(v) ? Number(v) : v;
}

/** The kernel's rule for interface names, as a usage error (wg up and vm-tap use it too). */
export function validDeviceName(name: string): string {
  try {
    return checkName(name);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

function deviceName(args: ParsedArgs, command: string): string {
  const [name] = args.positional;
  if (!name) throw new UsageError(`usage: tuntap ${command} NAME (see tuntap ${command} --help)`);
  noExtraArguments(args, 1);
  return validDeviceName(name);
}

/** What list/show print for one device (also the --json shape). */
export interface DeviceView {
  name: string;
  index: number;
  mode: 'tun' | 'tap';
  state: string;
  up: boolean;
  mtu: number;
  mac?: string;
  owner?: number;
  ownerName?: string;
  group?: number;
  groupName?: string;
  pi: boolean;
  vnetHdr: boolean;
  multiQueue: boolean;
  persist: boolean;
  queues: number;
  disabledQueues: number;
  txqueuelen?: number;
  addresses: string[];
  stats?: Link['stats'];
}

function view(link: Link, addresses: Address[]): DeviceView {
  const tun = link.tun!;
  const v: DeviceView = {
    name: link.name, index: link.index, mode: tun.type, state: link.operState, up: link.up, mtu: link.mtu,
    pi: tun.pi, vnetHdr: tun.vnetHdr, multiQueue: tun.multiQueue, persist: tun.persist,
    queues: tun.numQueues, disabledQueues: tun.numDisabledQueues,
    addresses: addresses.filter((a) => a.index === link.index)
      .map((a) => `${a.address}${a.peer ? ` peer ${a.peer}` : ''}/${a.prefixLength}`),
  };
  if (link.address) v.mac = link.address;
  if (tun.owner !== undefined) { v.owner = tun.owner; const n = userName(tun.owner); if (n) v.ownerName = n; }
  if (tun.group !== undefined) { v.group = tun.group; const n = groupName(tun.group); if (n) v.groupName = n; }
  if (link.txqueuelen !== undefined) v.txqueuelen = link.txqueuelen;
  if (link.stats) v.stats = link.stats;
  return v;
}

function features(v: DeviceView): string {
  return [v.pi ? 'pi' : '', v.vnetHdr ? 'vnet_hdr' : '', v.multiQueue ? 'multi_queue' : '', v.persist ? 'persist' : '']
    .filter(Boolean).join(',') || '-';
}

const who = (id: number | undefined, name: string | undefined) => (id === undefined ? '-' : name ?? String(id));

function notTun(name: string, link: Link): UserError {
  return new UserError(`${name} is a ${link.kind ?? 'plain'} device, not a tun/tap device`);
}

const addHelp = `usage: tuntap add NAME [options]    create a persistent TUN/TAP device (like ip tuntap add)

  --mode tun|tap     layer 3 (tun) or layer 2 (tap) [tun]
  --owner USER       user (name or uid) allowed to open it without CAP_NET_ADMIN
  --group GROUP      group (name or gid) allowed to open it
  --multi-queue      IFF_MULTI_QUEUE: several queues may attach
  --vnet-hdr         IFF_VNET_HDR: packets carry a virtio_net_hdr
  --pi               keep the 4-byte packet information header
  --address CIDR     add an address, e.g. 198.18.0.1/24 or fd00::1/64 (repeatable)
  --mtu N            set the MTU
  --up               bring the device up
  --netns NS         inside network namespace NS (name, path or pid)
  --json             print the new device as JSON`;

export async function runAdd(argv: string[]): Promise<number> {
  const args = parseArgs(argv, {
    values: ['mode', 'owner', 'group', 'mtu', 'netns'],
    flags: ['multi-queue', 'vnet-hdr', 'pi', 'up', 'json'],
    repeat: ['address'],
    aliases: { m: 'mode' },
  });
  const o = args.options;
  if (o.help) { console.log(addHelp); return 0; }
  const name = deviceName(args, 'add');
  const mode = o.mode ?? 'tun';
  if (mode !== 'tun' && mode !== 'tap') throw new UsageError(`${optionName(o, 'mode')} must be tun or tap, not "${String(mode)}"`);
  const owner = typeof o.owner === 'string' ? resolveId(o.owner, 'user', '--owner') : undefined;
  const group = typeof o.group === 'string' ? resolveId(o.group, 'group', '--group') : undefined;
  const mtu = intOption(o, 'mtu');
  const addresses = (o.address as string[] | undefined) ?? [];
  for (const a of addresses) {
    try {
      parseCidr(a);  // refuse a bad address before anything is created
    } catch (e) {
      throw new UsageError(`${optionName(o, 'address')} ${(e as Error).message}`);
    }
  }
  const netns = netnsOption(o);
  using nl = Netlink.open({ netns });
  const link = createTun(name, {
    mode, owner, group, pi: o.pi === true, vnetHdr: o['vnet-hdr'] === true, multiQueue: o['multi-queue'] === true,
  }, { netlink: nl });
  try {
    configureInterface(link.name, { mtu, addresses, up: o.up === true ? true : undefined }, { netlink: nl });
  } catch (e) {
    deleteTun(link.name, { netlink: nl });  // leave nothing half-configured behind
    throw e;
  }
  const made = view(getLink(link.name, { netlink: nl }), listAddresses({ netlink: nl, dev: link.index }));
  if (o.json) console.log(JSON.stringify(made));
  else console.log(`created ${made.mode} device ${made.name}`);
  const warning = tunNodeWarning(owner, group);
  if (warning) console.error(`tuntap: ${warning}`);
  return 0;
}

const delHelp = `usage: tuntap del NAME [--netns NS] [--json]    delete a persistent TUN/TAP device`;

export async function runDel(argv: string[]): Promise<number> {
  const args = parseArgs(argv, { values: ['netns'], flags: ['json'] });
  if (args.options.help) { console.log(delHelp); return 0; }
  const name = deviceName(args, 'del');
  deleteTun(name, { netns: netnsOption(args.options) });  // refuses a device that is not tun/tap
  if (args.options.json) console.log(JSON.stringify({ deleted: name }));
  return 0;
}

const listHelp = `usage: tuntap list [--netns NS] [--json]    list TUN/TAP devices with their TUN details`;

export async function runList(argv: string[]): Promise<number> {
  const args = parseArgs(argv, { values: ['netns'], flags: ['json'] });
  if (args.options.help) { console.log(listHelp); return 0; }
  noExtraArguments(args);
  using nl = Netlink.open({ netns: netnsOption(args.options) });
  const addresses = listAddresses({ netlink: nl });
  const views = listLinks({ netlink: nl, kind: 'tun' }).map((l) => view(l, addresses));
  if (args.options.json) { console.log(JSON.stringify(views)); return 0; }
  // ADMIN is what `up` asked for; OPER is what the kernel makes of it (a TUN/TAP is DOWN while
  // no process has it open, even when it is up).
  const rows = [['NAME', 'MODE', 'ADMIN', 'OPER', 'MTU', 'OWNER', 'GROUP', 'FLAGS', 'QUEUES', 'ADDRESSES'],
    ...views.map((v) => [v.name, v.mode, v.up ? 'up' : 'down', v.state, String(v.mtu), who(v.owner, v.ownerName), who(v.group, v.groupName),
      features(v), String(v.queues), v.addresses.join(' ') || '-'])];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows) console.log(r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  '));
  return 0;
}

const showHelp = `usage: tuntap show NAME [--netns NS] [--json]    show one TUN/TAP device`;

export async function runShow(argv: string[]): Promise<number> {
  const args = parseArgs(argv, { values: ['netns'], flags: ['json'] });
  if (args.options.help) { console.log(showHelp); return 0; }
  const name = deviceName(args, 'show');
  using nl = Netlink.open({ netns: netnsOption(args.options) });
  const link = getLink(name, { netlink: nl });
  if (link.kind !== 'tun') throw notTun(name, link);
  const v = view(link, listAddresses({ netlink: nl, dev: link.index }));
  if (args.options.json) { console.log(JSON.stringify(v)); return 0; }
  const s = v.stats;
  console.log([
    `${v.index}: ${v.name}: ${v.mode} ${v.up ? 'up' : 'down'} (operstate ${v.state}) mtu ${v.mtu}${v.txqueuelen !== undefined ? ` qlen ${v.txqueuelen}` : ''}`,
    `    ${v.mac ? `mac ${v.mac} ` : ''}owner ${who(v.owner, v.ownerName)} group ${who(v.group, v.groupName)} flags ${features(v)} queues ${v.queues} disabled ${v.disabledQueues}`,
    ...v.addresses.map((a) => `    address ${a}`),
    ...(s ? [`    rx ${s.rxPackets} packets ${s.rxBytes} bytes ${s.rxErrors} errors ${s.rxDropped} dropped`,
      `    tx ${s.txPackets} packets ${s.txBytes} bytes ${s.txErrors} errors ${s.txDropped} dropped`] : []),
  ].join('\n'));
  return 0;
}
