// `tuntap wg`: keys like `wg`, and WireGuard interfaces from wg-quick files.
//   tuntap wg genkey | pubkey | genpsk
//   tuntap wg up FILE [--name NAME] [--netns NS]     runs the interface in the foreground
//   tuntap wg down NAME                              stops the process serving NAME
//   tuntap wg syncconf NAME FILE [--netns NS]        applies a changed FILE to a running NAME
//   tuntap wg show [NAME|all|interfaces] [--json]
//   tuntap wg demo [--seconds SEC]                   two hosts, a tunnel, ping and a throughput run
import { randomBytes } from 'node:crypto';
import { setFlagsFromString } from 'node:v8';
import { accessSync, constants as fsConstants, readFileSync, writeFileSync, rmSync, existsSync } from 'node:fs';
import { basename } from 'node:path';
import { parseArgs, positiveIntOption, noExtraArguments, UsageError, type ParsedArgs } from './args.js';
import { validDeviceName } from './link.js';
import { ipv6Unavailable, demoUsesIpv6 } from './ipv6.js';
import { opsHelp, OPS_VALUES, opsOptions, logLine, serveMetrics, startMetrics } from './ops.js';
import { wireguardFamilies } from '../ops/wireguard-metrics.js';
import type { Logger } from '../ops/log.js';
import { UserError, fileError } from '../errors.js';
import { findLink } from '../netlink/index.js';
import { tellManager, reloadOnHangup } from './service-manager.js';
import { syncConfig, localChannel, socketChannel, type SyncResult } from '../wireguard/sync.js';
import {
  generatePrivateKey, publicKey, keyToBase64, keyFromBase64, readConfig, quickUp,
  getStatus, formatStatus, listInterfaces, UAPI_DIR, V8_TUNNEL_FLAGS, type WgConfig, type QuickInterface,
} from '../wireguard/index.js';

const usage = `usage: tuntap wg <command> [options]      (tuntap wg <command> --help describes one)
  genkey                      print a new private key (base64, like wg genkey)
  pubkey                      read a private key on stdin, print its public key
  genpsk                      print a new preshared key
  up FILE [--name NAME] [--netns NS] [--metrics [ADDR:]PORT] [--log-level LEVEL] [--log-format FORMAT]
                              bring up the interface FILE describes (wg-quick format) and serve it
                              in the foreground until Ctrl-C or \`tuntap wg down NAME\`
  down NAME                   bring the interface down
  syncconf NAME FILE [--netns NS]
                              apply a changed FILE to the running interface like \`wg syncconf\`,
                              keeping the sessions of unchanged peers (SIGHUP to \`wg up\` too)
  show [NAME|all|interfaces] [--json]
                              status like \`wg show\`
  demo [--seconds SEC]        two private namespaces with a tuntap VPN between them: ping, a TCP
                              throughput run with a live rate, then everything is removed`;

const helps: Record<string, string> = {
  genkey: 'usage: tuntap wg genkey    print a new random private key in base64 (like wg genkey)',
  pubkey: 'usage: tuntap wg pubkey < PRIVATEKEY    read a base64 private key on stdin, print its public key',
  genpsk: 'usage: tuntap wg genpsk    print a new random preshared key in base64 (like wg genpsk)',
  up: `usage: tuntap wg up FILE [--name NAME] [--netns NS] [--metrics [ADDR:]PORT] [--log-level LEVEL] [--log-format FORMAT]

Brings up the WireGuard interface FILE describes and serves it in the foreground until Ctrl-C,
SIGTERM or \`tuntap wg down NAME\`: a TUN, its addresses, MTU and a route for every AllowedIPs
entry, over rtnetlink. NAME is FILE's name without ".conf" (at most 15 characters) unless
--name gives it; --netns NS runs all of it (hooks too) in that network namespace.
SIGHUP reads FILE again and applies it as \`tuntap wg syncconf\` does, keeping the sessions of
unchanged peers. Under systemd (Type=notify, as tuntap-wg@.service) it says READY=1 once the
interface is up with its addresses and routes, and STOPPING=1 when it begins to stop.
${opsHelp(27)}

FILE is in wg-quick's format (keys are case-insensitive; lists are comma-separated):
  [Interface]
  PrivateKey = KEY           this host's key (tuntap wg genkey)
  ListenPort = PORT          UDP port, IPv4 and IPv6 (default: any free port)
  Address = CIDR, ...        the interface's addresses
  MTU = N                    default 1420
  Table = auto|main|off|N    where the AllowedIPs routes go; auto: the main table, except that a
                             default route gets its own table behind fwmark rules, as wg-quick
  FwMark = N|off             mark on the tunnel's own UDP packets
  PreUp, PostUp, PreDown, PostDown = COMMAND
                             run by sh around bringing the interface up and down; %i is NAME
  DNS = ...                  accepted, with a warning: the system resolver is not changed
  SaveConfig = true|false    accepted and ignored
  [Peer]                     one section per peer
  PublicKey = KEY            the peer's public key (required)
  PresharedKey = KEY         optional extra symmetric key (tuntap wg genpsk)
  AllowedIPs = CIDR, ...     addresses routed to this peer and accepted from it
  Endpoint = HOST:PORT       where to reach it ([IPv6]:PORT); learnt from its packets otherwise
  PersistentKeepalive = SEC  send a keepalive every SEC seconds (off by default)

The file holds a private key: keep it mode 600 (a warning says when others can read it).`,
  syncconf: `usage: tuntap wg syncconf NAME FILE [--netns NS]

Applies FILE (wg-quick's format, or wg's without the wg-quick keys) to the running interface
NAME, as \`wg syncconf\` does: peers not in FILE are removed, new ones added, changed ones
updated; a peer that did not change keeps its session and counters, so traffic through it goes
on without a pause. Then NAME's addresses (when FILE has Address lines) and the routes and rules
of its AllowedIPs are brought to what FILE asks, over rtnetlink in NS (default: this namespace).
It talks to NAME's UAPI socket, so it works on wireguard-go's interfaces too. \`tuntap wg up\`
does the same with its own FILE on SIGHUP (\`systemctl reload tuntap-wg@NAME\`). MTU and the
hooks take effect at the next \`up\`.`,
  down: 'usage: tuntap wg down NAME    stop the `tuntap wg up` process serving NAME (its interface, routes and rules go with it)',
  show: `usage: tuntap wg show [NAME|all|interfaces] [--json]

Prints the status of one interface, or of all (the default), like \`wg show\`: keys, listening
port, and per peer its endpoint, allowed IPs, latest handshake and transfer; for tuntap's own
interfaces also the packets dropped, by reason. \`interfaces\` lists the names only. It reads the
UAPI sockets in ${UAPI_DIR}, so it shows wireguard-go's interfaces too. Needs root.
  --json    the same as JSON (an array for all and interfaces, an object for one)`,
  demo: `usage: tuntap wg demo [--seconds SEC]

Two hosts (private network namespaces) joined by a veth, a tuntap WireGuard interface on each,
ping through the tunnel, then a TCP throughput run of SEC seconds (default 5) with a live rate
line; everything is removed at the end.`,
};

const pidFile = (name: string) => `${UAPI_DIR}/${name}.tuntap.pid`;

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** The options each subcommand takes. */
const specs: Record<string, { values?: string[]; flags?: string[] }> = {
  genkey: {}, pubkey: {}, genpsk: {}, down: {},
  up: { values: ['name', 'netns', ...OPS_VALUES] },
  syncconf: { values: ['netns'] },
  show: { flags: ['json'] },
  demo: { values: ['seconds'] },
};

export async function run(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === undefined || cmd.startsWith('-')) {
    if (parseArgs(argv, {}).options.help) { console.log(usage); return 0; }
    throw new UsageError('wg needs a command: genkey, pubkey, genpsk, up, down, syncconf, show or demo (tuntap wg --help)');
  }
  const spec = Object.hasOwn(specs, cmd) ? specs[cmd] : undefined;
  if (!spec) throw new UsageError(`unknown wg command "${cmd}" (tuntap wg --help lists them)`);
  const args = parseArgs(rest, spec);
  if (args.options.help) { console.log(helps[cmd]); return 0; }
  switch (cmd) {
    case 'genkey':
      noExtraArguments(args);
      process.stdout.write(`${keyToBase64(generatePrivateKey())}\n`);
      return 0;
    case 'genpsk':
      noExtraArguments(args);
      process.stdout.write(`${keyToBase64(randomBytes(32))}\n`);
      return 0;
    case 'pubkey': {
      noExtraArguments(args);
      let key: Buffer;
      try { key = keyFromBase64(await readStdin()); } catch { throw new UserError('wg pubkey: the key on stdin is not 32 bytes in base64'); }
      process.stdout.write(`${keyToBase64(publicKey(key))}\n`);
      return 0;
    }
    case 'up': return up(args);
    case 'down': noExtraArguments(args, 1); return down(args.positional[0]);
    case 'syncconf': return syncconf(args);
    case 'show': return show(args);
    default: {
      noExtraArguments(args);
      const seconds = positiveIntOption(args.options, 'seconds', 5);
      const { runVpnDemo } = await import('../wireguard/demo.js');
      return runVpnDemo({ seconds, ipv6: demoUsesIpv6() });
    }
  }
}

/** wg-quick's name for FILE (wg0.conf → wg0), under the same rule as every device name. */
function interfaceName(file: string, given: string | undefined): string {
  if (given !== undefined) return validDeviceName(given);
  const base = basename(file);
  if (!base.endsWith('.conf') || base === '.conf') {
    throw new UsageError(`cannot name the interface after ${file}: call the file NAME.conf or pass --name NAME`);
  }
  return validDeviceName(base.slice(0, -'.conf'.length));
}

function loadConfig(file: string): WgConfig {
  try {
    readFileSync(file);
  } catch (e) {
    throw fileError(file, 'read', e);
  }
  return readConfig(file);  // a ConfigError is a UserError: one line
}

async function up(args: ParsedArgs): Promise<number> {
  const { options } = args;
  const file = args.positional[0];
  if (!file) throw new UsageError('wg up needs a configuration file (tuntap wg up --help)');
  noExtraArguments(args, 1);
  const name = interfaceName(file, options.name as string | undefined);
  const netns = options.netns as string | undefined;
  const ops = opsOptions(options);
  const logger = ops.logger;
  const cfg = loadConfig(file);
  for (const w of cfg.warnings) logger.warn(w);
  const existing = findLink(name, { netns });
  if (existing) {
    throw new UserError(existing.kind === 'tun'
      ? `${name} is already up${netns ? ` in ${netns}` : ''} (\`tuntap wg down ${name}\` stops a tuntap one)`
      : `a ${existing.kind ?? 'network'} device named ${name} already exists${netns ? ` in ${netns}` : ''}`);
  }
  const noIpv6 = ipv6Unavailable(netns);
  if (noIpv6) {
    const v6 = cfg.interface.addresses.find((a) => a.includes(':'));
    if (v6) throw new UserError(`${file}: Address ${v6} is IPv6, but ${noIpv6}`);
    logger.warn(`${noIpv6}, so ${name} carries IPv4 only (IPv6 AllowedIPs get no route)`);
  }
  const metrics = await startMetrics(ops);
  // This process is the tunnel, and a quiet tunnel (pings, keepalives) calls its data path too
  // rarely for V8's usual tiering: it stayed interpreted, then in baseline code, for minutes. So
  // compile every function to baseline code on first call, and (V8_TUNNEL_FLAGS) hand it to the
  // optimizing compiler after a few calls rather than hundreds. Measured per ping: about 0.1 ms
  // less than baseline code alone, and 0.1–0.2 ms less than that than interpreting.
  setFlagsFromString('--always-sparkplug');
  const q = await quickUp(cfg, { name, netns, log: (l) => logLine(logger, l), ipv6: !noIpv6 })
    .catch(async (e: unknown) => { await metrics?.close(); throw e; });
  serveMetrics(metrics, () => wireguardFamilies(q.iface));
  // Only now, so the one-off start-up code is not optimized too.
  for (const flag of V8_TUNNEL_FLAGS) setFlagsFromString(flag);
  // The handlers before the announcement: a signal sent as soon as it is read must find them.
  const stop = () => { tellManager({ STOPPING: 1 }); void q.down(); };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  const stopReloading = reloadFileOnHangup(q, name, file, netns, !noIpv6, logger);
  writeFileSync(pidFile(name), `${process.pid}\n`);
  logger.info(`${name} is up (listening on UDP port ${q.iface.listenPort}); Ctrl-C or \`tuntap wg down ${name}\` stops it`);
  tellManager({ READY: 1, STATUS: `${name} is up, ${q.iface.engine.peers.size} peers, UDP port ${q.iface.listenPort}` });
  await q.iface.closed;
  stopReloading();
  await metrics?.close();
  await q.down();
  rmSync(pidFile(name), { force: true });
  // Closed on its own (the TUN deleted, a socket failed): say why, in one line, and fail.
  const failure = q.iface.failure;
  if (failure) {
    console.error(`tuntap: ${name} stopped: ${failure.message.split('\n')[0]}`);
    return 1;
  }
  return 0;
}

/** On SIGHUP, reads FILE again and applies it to the interface this process serves. */
function reloadFileOnHangup(q: QuickInterface, name: string, file: string, netns: string | undefined, ipv6: boolean,
  logger: Logger): () => void {
  const log = (l: string) => logLine(logger, l);
  return reloadOnHangup(async () => {
    log(`[#] reloading ${file}`);
    const cfg = checkedForReload(loadConfig(file), file, name, netns, ipv6, (w) => logger.warn(w));
    const r = await syncConfig(localChannel(q.iface), name, cfg, { netns, ipv6, log });
    return `${name} reloaded: ${describeSync(r)}`;
  }, (line, failed) => (failed ? logger.error(`${name}: ${line}`) : logger.info(line)));
}

/**
 * A reload's config: what cannot change on a running interface is said (its MTU sizes buffers
 * made at \`up\`), and an IPv6 address where IPv6 is off is refused before anything changes.
 */
function checkedForReload(cfg: WgConfig, file: string, name: string, netns: string | undefined, ipv6: boolean,
  warn: (line: string) => void): WgConfig {
  for (const w of cfg.warnings) warn(w);
  const v6 = ipv6 ? undefined : cfg.interface.addresses.find((a) => a.includes(':'));
  if (v6) throw new UserError(`${file}: Address ${v6} is IPv6, but IPv6 is disabled here`);
  const mtu = cfg.interface.mtu ?? 1420;
  const running = findLink(name, { netns })?.mtu;
  if (running !== undefined && running !== mtu) {
    warn(`${file}: MTU ${mtu} takes effect at the next \`up\` (${name} keeps ${running})`);
  }
  return cfg;
}

function describeSync(r: SyncResult): string {
  const { peers, routing } = r;
  const parts = [`${peers.added.length} peers added, ${peers.removed.length} removed, ${peers.changed.length} updated, ${peers.unchanged} unchanged`];
  const addresses = routing.addressesAdded.length + routing.addressesRemoved.length;
  const routes = routing.routesAdded.length + routing.routesRemoved.length;
  if (addresses) parts.push(`${addresses} address changes`);
  if (routes) parts.push(`${routes} route changes`);
  return parts.join(', ');
}

/** `tuntap wg syncconf NAME FILE`: FILE applied to the running interface through its UAPI socket. */
async function syncconf(args: ParsedArgs): Promise<number> {
  const [iface, file] = args.positional;
  if (!iface || !file) throw new UsageError('wg syncconf needs an interface name and a configuration file (tuntap wg syncconf --help)');
  noExtraArguments(args, 2);
  const name = validDeviceName(iface);
  const netns = args.options.netns as string | undefined;
  const cfg = loadConfig(file);
  if (!findLink(name, { netns })) {
    throw new UserError(`there is no interface ${name}${netns ? ` in ${netns}` : ' in this network namespace (--netns NS names another)'}`);
  }
  const noIpv6 = ipv6Unavailable(netns);
  const sock = `${UAPI_DIR}/${name}.sock`;
  if (!existsSync(sock)) throw new UserError(`${name} is not a WireGuard interface served from user space (there is no ${sock})`);
  const warn = (w: string) => console.error(`tuntap: warning: ${w}`);
  const r = await syncConfig(socketChannel(name), name, checkedForReload(cfg, file, name, netns, !noIpv6, warn), {
    netns, ipv6: !noIpv6, log: (l) => console.error(l),
  });
  console.error(`${name}: ${describeSync(r)}`);
  return 0;
}

/** Whether process `pid` runs `tuntap wg up` (the CLI's main script) for interface `name`, by its command line. */
function isWgUpOf(pid: number, name: string): boolean {
  let argv: string[];
  try {
    argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  } catch {
    return false;
  }
  const at = argv.findIndex((a, i) => a === 'wg' && argv[i + 1] === 'up' && i > 0 && /(^|\/)(main\.[jt]s|tuntap)$/.test(argv[i - 1]!));
  if (at < 0) return false;
  let args;
  try {
    args = parseArgs(argv.slice(at + 1).filter((a) => a !== ''), { values: ['name', 'netns', 'seconds'] });
  } catch {
    return false;
  }
  // The name `wg up` gave its interface: --name, else FILE's name without ".conf".
  const base = args.positional[1]?.replace(/^.*\//, '');
  const served = (args.options.name as string | undefined) ?? (base?.endsWith('.conf') ? base.slice(0, -'.conf'.length) : undefined);
  return served === name;
}

async function down(name: string | undefined): Promise<number> {
  if (!name) throw new UsageError('wg down needs an interface name');
  const iface = name.replace(/\.conf$/, '').replace(/^.*\//, '');
  const path = pidFile(iface);
  if (!existsSync(path)) { console.error(`tuntap: ${name} is not a tuntap WireGuard interface that is up`); return 1; }
  const text = readFileSync(path, 'utf8');
  if (!/^[1-9]\d{0,9}\n?$/.test(text)) { console.error(`tuntap: ${path} holds ${JSON.stringify(text.slice(0, 20))}, not a process id`); return 1; }
  const pid = Number(text);
  // The pid may be stale (the process died, the number was reused) or the file planted: signal
  // only a `tuntap wg up` that serves this very interface.
  if (!isWgUpOf(pid, iface)) {
    console.error(`tuntap: ${path} names process ${pid}, which is not \`tuntap wg up\` of ${iface}: not signalling it`);
    return 1;
  }
  try { process.kill(pid, 'SIGTERM'); } catch { rmSync(path, { force: true }); console.error(`tuntap: the process for ${name} is gone`); return 1; }
  for (let i = 0; i < 100 && existsSync(path); i++) await new Promise((r) => setTimeout(r, 50));
  return 0;
}

async function show(args: ParsedArgs): Promise<number> {
  noExtraArguments(args, 1);
  const which = args.positional[0];
  const json = args.options.json === true;
  const all = !which || which === 'all' || which === 'interfaces';
  const names = all ? listInterfaces() : [which];
  if (which === 'interfaces') { console.log(json ? JSON.stringify(names) : names.join(' ')); return 0; }
  const statuses = [];
  for (const n of names) {
    try {
      statuses.push(await status(n));
    } catch (e) {
      // Listing them all, an interface that went down since the listing is simply not there.
      if (all && !existsSync(`${UAPI_DIR}/${n}.sock`)) continue;
      throw e;
    }
  }
  if (json) console.log(JSON.stringify(all ? statuses : statuses[0]));
  else if (statuses.length) console.log(statuses.map(formatStatus).join('\n\n'));
  return 0;
}

/** One interface's status, with the reasons it cannot be read in words. */
async function status(name: string) {
  const sock = `${UAPI_DIR}/${name}.sock`;
  try {
    accessSync(sock, fsConstants.R_OK | fsConstants.W_OK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new UserError(`wg show: no WireGuard interface named "${name}" is running (there is no ${sock})`);
    if (code === 'EACCES') throw new UserError(`wg show: reading ${name} needs root (${sock}: permission denied)`);
    throw fileError(sock, 'open', e);
  }
  try {
    return await getStatus(name);
  } catch (e) {
    // A socket nobody serves any more, or an answer that does not come.
    throw new UserError(`wg show: ${(e as Error).message}`, { cause: e });
  }
}
