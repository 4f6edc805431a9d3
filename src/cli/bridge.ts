// `tuntap bridge`: a learning switch between TAP devices and VXLAN tunnels, with a live
// statistics line (or JSON lines), plus `tuntap bridge vm-tap add|del` for QEMU's TAPs.
import { parseArgs, intOption, UsageError, type ParsedArgs } from './args.js';
import { LearningSwitch, type PortStats, type VlanMembership } from '../l2/switch.js';
import { TapPort } from '../l2/tap-port.js';
import { VxlanPort, type VxlanPortOptions } from '../l2/vxlan.js';
import { createVmTap, deleteVmTap } from '../l2/vm-tap.js';
import type { Port } from '../l2/port.js';

const HELP = `usage: tuntap bridge TAP [TAP...] [options]
       tuntap bridge vm-tap add NAME --user USER [--group GROUP] [--queues N] [--no-vnet-hdr] [--netns NS]
       tuntap bridge vm-tap del NAME [--netns NS]

Switches Ethernet frames between TAP devices (opened, or created when missing) and VXLAN
tunnels: MAC learning with ageing, flooding of unknown/broadcast/multicast, optional VLANs.

options:
  --vxlan SPEC        add a VXLAN port (repeatable). SPEC is comma-separated key=value:
                        vni=N (required), local=ADDR (required), remote=ADDR (repeatable: flood
                        list), static=MAC@ADDR (repeatable), port=4789, learning=off, name=NAME,
                        mtu=UNDERLAY_MTU (default 1500)
  --vlan PORT=SPEC    802.1Q membership (repeatable): access:PVID or trunk:VID[,VID...][/native:VID]
  --age S             seconds a learned MAC lives without traffic (default 300)
  --netns NS          open devices and sockets in this network namespace
  --no-offload        plain TAP frames (default: vnet header + TSO super-packets)
  --interval S        seconds between statistics lines (default 1)
  --json              print one JSON object per interval (stats and MAC table) instead
  --duration S        stop after S seconds (default: run until SIGINT/SIGTERM)

The vm-tap commands create (or remove) a persistent TAP that USER may open without
privileges, e.g. for qemu -netdev tap,ifname=NAME,script=no,downscript=no,vhost=off,queues=N.`;

function parseVxlan(spec: string, netns: string | undefined): VxlanPortOptions {
  const opts: Partial<VxlanPortOptions> & { remotes: string[]; staticMacs: { mac: string; remote: string }[] } = { remotes: [], staticMacs: [] };
  for (const part of spec.split(',').filter(Boolean)) {
    const eq = part.indexOf('=');
    if (eq < 0) throw new UsageError(`--vxlan: "${part}" is not key=value`);
    const key = part.slice(0, eq); const value = part.slice(eq + 1);
    switch (key) {
      case 'vni': opts.vni = Number(value); break;
      case 'local': opts.local = value; break;
      case 'remote': opts.remotes.push(value); break;
      case 'port': opts.port = Number(value); break;
      case 'mtu': opts.underlayMtu = Number(value); break;
      case 'name': opts.name = value; break;
      case 'learning': opts.learning = !/^(off|no|0|false)$/.test(value); break;
      case 'static': {
        const at = value.lastIndexOf('@');
        if (at < 0) throw new UsageError(`--vxlan: static=${value} needs MAC@ADDRESS`);
        opts.staticMacs.push({ mac: value.slice(0, at), remote: value.slice(at + 1) });
        break;
      }
      default: throw new UsageError(`--vxlan: unknown key "${key}"`);
    }
  }
  if (opts.vni === undefined || !Number.isInteger(opts.vni)) throw new UsageError('--vxlan needs vni=N');
  if (!opts.local) throw new UsageError('--vxlan needs local=ADDRESS');
  if (opts.port !== undefined && !Number.isInteger(opts.port)) throw new UsageError('--vxlan: port must be a number');
  if (opts.underlayMtu !== undefined && !(opts.underlayMtu >= 576)) throw new UsageError('--vxlan: mtu must be a number >= 576');
  return { ...opts, netns } as VxlanPortOptions;
}

function parseVlan(spec: string): [string, VlanMembership] {
  const m = /^([^=]+)=(access|trunk):(.+)$/.exec(spec);
  if (!m) throw new UsageError(`--vlan ${spec}: expected PORT=access:PVID or PORT=trunk:VIDS[/native:VID]`);
  const [, port, mode, rest] = m as unknown as [string, string, string, string];
  const num = (s: string) => {
    const n = Number(s);
    if (!Number.isInteger(n)) throw new UsageError(`--vlan ${spec}: "${s}" is not a VLAN id`);
    return n;
  };
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
  const args = parseArgs(argv, { values: ['user', 'group', 'queues', 'netns'], flags: ['no-vnet-hdr'] });
  const [action, name, ...extra] = args.positional;
  if (args.options.help || !action) { console.log(HELP); return action ? 0 : 2; }
  if (!name || extra.length > 0) throw new UsageError('vm-tap needs exactly one device NAME');
  const netns = args.options.netns as string | undefined;
  if (action === 'add') {
    const user = args.options.user as string | undefined;
    if (user === undefined) throw new UsageError('vm-tap add needs --user (who may open the TAP)');
    const made = createVmTap({ name, user, group: args.options.group as string | undefined,
      queues: intOption(args.options, 'queues', 1), vnetHdr: !args.options['no-vnet-hdr'], netns });
    if (args.options.json) console.log(JSON.stringify({ name: made }));
    else console.log(`created persistent TAP ${made} for user ${user}`);
    return 0;
  }
  if (action === 'del') {
    deleteVmTap(name, { netns });
    if (!args.options.json) console.log(`removed ${name}`);
    return 0;
  }
  throw new UsageError(`vm-tap: unknown action "${action}" (add or del)`);
}

function seconds(opts: ParsedArgs['options'], key: string, fallback?: number): number | undefined {
  const v = opts[key];
  if (v === undefined) return fallback;
  const n = Number(v);
  if (typeof v !== 'string' || !(n > 0)) throw new UsageError(`--${key} needs a positive number of seconds, got "${String(v)}"`);
  return n;
}

export async function run(argv: string[]): Promise<number> {
  if (argv[0] === 'vm-tap') return vmTap(argv.slice(1));
  const args = parseArgs(argv, {
    values: ['age', 'netns', 'interval', 'duration'], repeat: ['vxlan', 'vlan'], flags: ['no-offload'],
  });
  if (args.options.help) { console.log(HELP); return 0; }
  const taps = args.positional;
  const vxlans = (args.options.vxlan as string[] | undefined) ?? [];
  if (taps.length + vxlans.length < 2) throw new UsageError(`a bridge needs at least two ports\n\n${HELP}`);
  const netns = args.options.netns as string | undefined;
  const vxlanOpts = vxlans.map((s) => parseVxlan(s, netns));
  const vlans = new Map(((args.options.vlan as string[] | undefined) ?? []).map(parseVlan));
  const age = seconds(args.options, 'age', 300)!;
  const interval = seconds(args.options, 'interval', 1)!;
  const duration = seconds(args.options, 'duration');
  const json = args.options.json === true;
  // With offload, TAPs trade 64 KiB super-packets; the switch segments them for VXLAN ports.
  const offload = !args.options['no-offload'];

  const errors: string[] = [];
  const sw = new LearningSwitch({
    ageSeconds: age,
    onPortError: (port, e) => { errors.push(`${port.name}: ${(e as Error).message}`); },
  });
  const ports: Port[] = [];
  try {
    for (const name of taps) ports.push(TapPort.open({ name, netns, offload }));
    for (const o of vxlanOpts) ports.push(await VxlanPort.open(o));
    for (const name of vlans.keys()) {
      if (!ports.some((p) => p.name === name)) throw new UsageError(`--vlan names ${name}, which is not a port of this bridge`);
    }
    for (const p of ports) sw.addPort(p, { vlan: vlans.get(p.name) });
  } catch (e) {
    await Promise.allSettled(ports.map((p) => p.close()));
    await sw.close();
    throw e;
  }

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
  if (!json) console.error(`bridging ${ports.map((p) => p.name).join(', ')} (age ${age} s${offload ? ', TSO offload' : ''}); Ctrl-C stops`);
  report(false);
  const timer = setInterval(() => report(false), interval * 1000);
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    if (duration !== undefined) setTimeout(stop, duration * 1000);
  });
  clearInterval(timer);
  if (!json && process.stdout.isTTY) process.stdout.write('\n');
  report(true);
  await sw.close();
  return errors.length > 0 ? 1 : 0;
}
