// `tuntap bridge`: a learning switch between TAP devices and VXLAN tunnels, with a live
// statistics line (or JSON lines), plus `tuntap bridge vm-tap add|del` for QEMU's TAPs.
import { isIP } from 'node:net';
import { parseArgs, intOption, optionName, noExtraArguments, UsageError, type ParsedArgs } from './args.js';
import { validDeviceName } from './link.js';
import { resolveId, tunNodeWarning } from './users.js';
import { UserError } from '../errors.js';
import { parseMac } from '../addr.js';
import { findLink } from '../netlink/index.js';
import { LearningSwitch, type PortStats, type VlanMembership } from '../l2/switch.js';
import { TapPort } from '../l2/tap-port.js';
import { VxlanPort, type VxlanPortOptions } from '../l2/vxlan.js';
import { createVmTap, deleteVmTap } from '../l2/vm-tap.js';
import type { Port } from '../l2/port.js';
import { opsHelp, OPS_VALUES, opsOptions, serveMetrics, startControl, startMetrics } from './ops.js';
import { bridgeFamilies } from '../ops/bridge-metrics.js';
import { bridgeSnapshot } from '../ops/snapshot.js';

const VM_TAP_USAGE = `       tuntap bridge vm-tap add NAME --user USER [--group GROUP] [--queues N] [--no-vnet-hdr] [--netns NS] [--json]
       tuntap bridge vm-tap del NAME [--netns NS] [--json]`;

const VM_TAP_HELP_TEXT = `The vm-tap commands create (or remove) a persistent TAP that USER (name or uid; GROUP too)
may open without privileges, e.g. for
qemu -netdev tap,ifname=NAME,script=no,downscript=no,vhost=off,queues=N.
  --queues N          queues (1..256; more than 1 makes it multi-queue) [1]
  --no-vnet-hdr       no virtio_net_hdr (default: with one, as QEMU's vhost=off wants)
  --json              print {"name": NAME} instead of a sentence`;

const VM_TAP_HELP = `usage: ${VM_TAP_USAGE.trimStart()}

${VM_TAP_HELP_TEXT}`;

const HELP = `usage: tuntap bridge TAP [TAP...] [options]
${VM_TAP_USAGE}

Switches Ethernet frames between TAP devices (opened, or created when missing) and VXLAN
tunnels: MAC learning with ageing, flooding of unknown/broadcast/multicast, optional VLANs.

options:
  --vxlan SPEC        add a VXLAN port (repeatable). SPEC is comma-separated key=value:
                        vni=N (required), local=ADDR (required), remote=ADDR (repeatable: flood
                        list), static=MAC@ADDR (repeatable), port=4789, learning=off, name=NAME,
                        mtu=UNDERLAY_MTU (default 1500)
  --vlan PORT=SPEC    802.1Q membership (repeatable): access:PVID or trunk:VID[,VID...][/native:VID],
                      VLAN ids 1..4094 (trunk:all for every VLAN)
  --age SEC           seconds a learned MAC lives without traffic (default 300)
  --netns NS          open devices and sockets in this network namespace
  --no-offload        plain TAP frames (default: vnet header + TSO super-packets)
  --interval SEC      seconds between statistics lines (default 1)
  --json              print one JSON object per interval (stats and MAC table) instead
  --duration SEC      stop after SEC seconds (default: run until SIGINT/SIGTERM)
${opsHelp(22)}

${VM_TAP_HELP_TEXT}`;

/** A whole number in min..max, or a usage error naming `what` as the option spelled it. */
function wholeNumber(text: string, min: number, max: number, what: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < min || n > max) throw new UsageError(`${what} must be a number ${min}..${max}, got "${text}"`);
  return n;
}

function ipAddress(text: string, what: string): string {
  if (isIP(text) === 0) throw new UsageError(`${what} must be an IP address, got "${text}"`);
  return text;
}

function parseVxlan(spec: string, option: string, netns: string | undefined): VxlanPortOptions {
  const opts: Partial<VxlanPortOptions> & { remotes: string[]; staticMacs: { mac: string; remote: string }[] } = { remotes: [], staticMacs: [] };
  for (const part of spec.split(',').filter(Boolean)) {
    const eq = part.indexOf('=');
    if (eq < 0) throw new UsageError(`${option}: "${part}" is not key=value`);
    const key = part.slice(0, eq); const value = part.slice(eq + 1);
    const what = `${option} ${key}`;
    switch (key) {
      case 'vni': opts.vni = wholeNumber(value, 0, 0xffffff, what); break;
      case 'local': opts.local = ipAddress(value, what); break;
      case 'remote': opts.remotes.push(ipAddress(value, what)); break;
      case 'port': opts.port = wholeNumber(value, 1, 65535, what); break;
      case 'mtu': opts.underlayMtu = wholeNumber(value, 576, 65535, what); break;
      case 'name': opts.name = value; break;
      case 'learning': opts.learning = !/^(off|no|0|false)$/.test(value); break;
      case 'static': {
        const at = value.lastIndexOf('@');
        if (at < 0) throw new UsageError(`${option}: static=${value} needs MAC@ADDRESS`);
        const mac = value.slice(0, at);
        try { parseMac(mac); } catch { throw new UsageError(`${option}: static=${value}: "${mac}" is not a MAC address`); }
        opts.staticMacs.push({ mac, remote: ipAddress(value.slice(at + 1), `${option} static`) });
        break;
      }
      default: throw new UsageError(`${option}: unknown key "${key}"`);
    }
  }
  if (opts.vni === undefined) throw new UsageError(`${option} needs vni=N`);
  if (!opts.local) throw new UsageError(`${option} needs local=ADDRESS`);
  return { ...opts, netns } as VxlanPortOptions;
}

function parseVlan(spec: string, option: string): [string, VlanMembership] {
  const m = /^([^=]+)=(access|trunk):(.+)$/.exec(spec);
  if (!m) throw new UsageError(`${option} ${spec}: expected PORT=access:PVID or PORT=trunk:VIDS[/native:VID]`);
  const [, port, mode, rest] = m as unknown as [string, string, string, string];
  const num = (s: string) => wholeNumber(s, 1, 4094, `${option} ${spec}: a VLAN id`);
  if (mode === 'access') return [port, { mode: 'access', pvid: num(rest) }];
  const [vids, native] = rest.split('/native:') as [string, string | undefined];
  const allowed = vids === 'all' ? 'all' as const : vids.split(',').filter(Boolean).map(num);
  return [port, { mode: 'trunk', allowed, native: native === undefined ? undefined : num(native) }];
}

function human(bytes: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (bytes >= 1000 && i < units.length - 1) { bytes /= 1000; i++; }
  return `${bytes.toFixed(i === 0 ? 0 : 1)}${units[i]}`;
}

function statsLine(stats: Record<string, PortStats>, macs: number): string {
  const parts = Object.entries(stats).map(([name, s]) =>
    `${name} rx ${s.rxFrames}/${human(s.rxBytes)} tx ${s.txFrames}/${human(s.txBytes)} fl ${s.floods} dr ${s.drops + s.txDrops}`);
  return `${parts.join(' | ')} | macs ${macs}`;
}

async function vmTap(argv: string[]): Promise<number> {
  const args = parseArgs(argv, { values: ['user', 'group', 'queues', 'netns'], flags: ['no-vnet-hdr', 'json'] });
  const o = args.options;
  if (o.help) { console.log(VM_TAP_HELP); return 0; }
  const [action, given] = args.positional;
  if (action !== 'add' && action !== 'del') {
    throw new UsageError(action === undefined ? 'vm-tap needs add or del (tuntap bridge vm-tap --help)' : `vm-tap: unknown action "${action}" (add or del)`);
  }
  if (given === undefined) throw new UsageError(`vm-tap ${action} needs a device NAME`);
  noExtraArguments(args, 2);
  const name = validDeviceName(given);
  const netns = o.netns as string | undefined;
  if (action === 'add') {
    if (typeof o.user !== 'string') throw new UsageError('vm-tap add needs --user (who may open the TAP)');
    const user = resolveId(o.user, 'user', optionName(o, 'user'));
    const group = typeof o.group === 'string' ? resolveId(o.group, 'group', optionName(o, 'group')) : undefined;
    const queues = intOption(o, 'queues', 1)!;
    if (queues < 1 || queues > 256) throw new UsageError(`${optionName(o, 'queues')} must be 1..256, got ${queues}`);
    const made = createVmTap({ name, user, group, queues, vnetHdr: !o['no-vnet-hdr'], netns });
    if (o.json) console.log(JSON.stringify({ name: made }));
    else console.log(`created persistent TAP ${made} for user ${o.user}`);
    const warning = tunNodeWarning(user, group);
    if (warning) console.error(`tuntap: ${warning}`);
    return 0;
  }
  const link = findLink(name, { netns });
  if (!link) throw new UserError(`deleting ${name}: device "${name}" does not exist`);
  if (link.tun?.type !== 'tap') throw new UserError(`deleting ${name}: it is not a TAP device, and vm-tap del removes only those`);
  deleteVmTap(name, { netns });
  if (o.json) console.log(JSON.stringify({ deleted: name }));
  else console.log(`removed ${name}`);
  return 0;
}

function seconds(opts: ParsedArgs['options'], key: string, fallback?: number): number | undefined {
  const v = opts[key];
  if (v === undefined) return fallback;
  const n = Number(v);
  if (typeof v !== 'string' || !(n > 0) || !Number.isFinite(n)) throw new UsageError(`${optionName(opts, key)} needs a positive number of seconds, got "${String(v)}"`);
  return n;
}

export async function run(argv: string[]): Promise<number> {
  if (argv[0] === 'vm-tap') return vmTap(argv.slice(1));
  const args = parseArgs(argv, {
    values: ['age', 'netns', 'interval', 'duration', ...OPS_VALUES], repeat: ['vxlan', 'vlan'], flags: ['no-offload', 'json'],
  });
  const o = args.options;
  if (o.help) { console.log(HELP); return 0; }
  const taps = args.positional.map(validDeviceName);
  const vxlans = (o.vxlan as string[] | undefined) ?? [];
  if (taps.length + vxlans.length < 2) throw new UsageError('a bridge needs at least two ports, TAPs or --vxlan (tuntap bridge --help)');
  const netns = o.netns as string | undefined;
  const vxlanOpts = vxlans.map((s) => parseVxlan(s, optionName(o, 'vxlan'), netns));
  const vlans = new Map(((o.vlan as string[] | undefined) ?? []).map((s) => parseVlan(s, optionName(o, 'vlan'))));
  const names = [...taps, ...vxlanOpts.map((v) => v.name ?? `vxlan${v.vni}`)];
  const twice = names.find((n, i) => names.indexOf(n) !== i);
  if (twice !== undefined) throw new UsageError(`the port name ${twice} is given twice`);
  for (const name of vlans.keys()) {
    if (!names.includes(name)) throw new UsageError(`${optionName(o, 'vlan')} names ${name}, which is not a port of this bridge`);
  }
  for (const name of taps) {
    const link = findLink(name, { netns });
    if (link?.tun?.type === 'tun') throw new UserError(`${name} is a TUN device; a bridge port needs a TAP`);
  }
  const age = seconds(args.options, 'age', 300)!;
  const interval = seconds(args.options, 'interval', 1)!;
  const duration = seconds(args.options, 'duration');
  const json = args.options.json === true;
  // With offload, TAPs trade 64 KiB super-packets; the switch segments them for VXLAN ports.
  const offload = !args.options['no-offload'];
  const ops = opsOptions(o);
  const logger = ops.logger;
  const metrics = await startMetrics(ops);

  const errors: string[] = [];
  const sw = new LearningSwitch({
    ageSeconds: age,
    onPortError: (port, e) => {
      errors.push(`${port.name}: ${(e as Error).message}`);
      logger.error(`port ${port.name} removed: ${(e as Error).message}`);
    },
  });
  const ports: Port[] = [];
  try {
    for (const name of taps) ports.push(TapPort.open({ name, netns, offload }));
    for (const v of vxlanOpts) ports.push(await VxlanPort.open(v));
    for (const p of ports) sw.addPort(p, { vlan: vlans.get(p.name) });
  } catch (e) {
    await Promise.allSettled(ports.map((p) => p.close()));
    await sw.close();
    await metrics?.close();
    throw e;
  }
  // The bridge is known by its first port (top shows it so, and names its socket after it).
  const bridgeName = ports[0]!.name;
  const vxlanStats = new Map(ports.filter((p): p is VxlanPort => p instanceof VxlanPort).map((p) => [p.name, () => p.stats()]));
  serveMetrics(metrics, () => bridgeFamilies(sw, vxlanStats));
  const control = await startControl('bridge', bridgeName, () => bridgeSnapshot(bridgeName, sw), logger);

  const report = (final: boolean) => {
    const stats = sw.stats();
    const table = sw.macTable();
    if (json) {
      const vxlan = Object.fromEntries(ports.filter((p): p is VxlanPort => p instanceof VxlanPort)
        .map((p) => [p.name, { ...p.stats(), remotes: p.remoteTable() }]));
      console.log(JSON.stringify({ time: new Date().toISOString(), ports: stats, macs: table, vxlan, errors, final }));
    } else if (process.stdout.isTTY && !final) {
      process.stdout.write(`\r\x1b[K${statsLine(stats, table.length)}`);
    } else {
      console.log(statsLine(stats, table.length));
    }
  };
  // The handlers before the first line: a signal sent as soon as it is read must find them.
  const stopped = new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    if (duration !== undefined) setTimeout(stop, duration * 1000);
  });
  if (!json) logger.info(`bridging ${ports.map((p) => p.name).join(', ')} (age ${age} s${offload ? ', TSO offload' : ''}); Ctrl-C stops`);
  report(false);
  const timer = setInterval(() => report(false), interval * 1000);
  await stopped;
  clearInterval(timer);
  if (!json && process.stdout.isTTY) process.stdout.write('\n');
  report(true);
  await Promise.all([metrics?.close(), control?.close()]);
  await sw.close();
  return errors.length > 0 ? 1 : 0;
}
