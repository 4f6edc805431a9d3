// `tuntap wg`: keys like `wg`, and WireGuard interfaces from wg-quick files.
//   tuntap wg genkey | pubkey | genpsk
//   tuntap wg up FILE [--name NAME] [--netns NS]     runs the interface in the foreground
//   tuntap wg down NAME                              stops the process serving NAME
//   tuntap wg show [NAME|all|interfaces]
//   tuntap wg demo [--seconds N]                    two hosts, a tunnel, ping and a throughput run
import { randomBytes } from 'node:crypto';
import { setFlagsFromString } from 'node:v8';
import { readFileSync, writeFileSync, rmSync, existsSync } from 'node:fs';
import { parseArgs, intOption, UsageError } from './args.js';
import {
  generatePrivateKey, publicKey, keyToBase64, keyFromBase64, readConfig, interfaceNameOf, quickUp,
  getStatus, formatStatus, listInterfaces, UAPI_DIR, ConfigError, V8_TUNNEL_FLAGS,
} from '../wireguard/index.js';

const usage = `usage: tuntap wg <genkey|pubkey|genpsk|up|down|show> ...
  genkey                      print a new private key (base64, like wg genkey)
  pubkey                      read a private key on stdin, print its public key
  genpsk                      print a new preshared key
  up FILE [--name NAME] [--netns NS]
                              bring up the interface FILE describes (wg-quick format) and serve it
                              in the foreground until Ctrl-C or \`tuntap wg down NAME\`
  down NAME                   bring the interface down
  show [NAME|all|interfaces]  status like \`wg show\`
  demo [--seconds N]          two private namespaces with a tuntap VPN between them: ping, a TCP
                              throughput run with a live rate, then everything is removed`;

const pidFile = (name: string) => `${UAPI_DIR}/${name}.tuntap.pid`;

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export async function run(argv: string[]): Promise<number> {
  const args = parseArgs(argv, { values: ['name', 'netns', 'seconds'] });
  const [cmd, ...rest] = args.positional;
  if (args.options.help || !cmd) { console.log(usage); return cmd ? 0 : 2; }
  switch (cmd) {
    case 'genkey':
      process.stdout.write(`${keyToBase64(generatePrivateKey())}\n`);
      return 0;
    case 'genpsk':
      process.stdout.write(`${keyToBase64(randomBytes(32))}\n`);
      return 0;
    case 'pubkey': {
      let key: Buffer;
      try { key = keyFromBase64(await readStdin()); } catch { console.error('tuntap wg pubkey: Key is not the correct length or format'); return 1; }
      process.stdout.write(`${keyToBase64(publicKey(key))}\n`);
      return 0;
    }
    case 'up': return up(rest[0], args.options);
    case 'down': return down(rest[0]);
    case 'show': return show(rest[0]);
    case 'demo': {
      const { runVpnDemo } = await import('../wireguard/demo.js');
      return runVpnDemo({ seconds: intOption(args.options, 'seconds', 5) });
    }
    default: throw new UsageError(`unknown wg command "${cmd}"\n\n${usage}`);
  }
}

async function up(file: string | undefined, options: Record<string, unknown>): Promise<number> {
  if (!file) throw new UsageError('tuntap wg up needs a configuration file');
  const name = (options.name as string | undefined) ?? interfaceNameOf(file);
  if (!name) throw new UsageError(`cannot derive an interface name from ${file}: name it NAME.conf or pass --name`);
  let cfg;
  try { cfg = readConfig(file); } catch (e) {
    if (e instanceof ConfigError) { console.error(`tuntap: ${e.message}`); return 1; }
    throw e;
  }
  for (const w of cfg.warnings) console.error(`Warning: ${w}`);
  // This process is the tunnel, and a quiet tunnel (pings, keepalives) calls its data path too
  // rarely for V8's usual tiering: it stayed interpreted, then in baseline code, for minutes. So
  // compile every function to baseline code on first call, and (V8_TUNNEL_FLAGS) hand it to the
  // optimizing compiler after a few calls rather than hundreds. Measured per ping: about 0.1 ms
  // less than baseline code alone, and 0.1–0.2 ms less than that than interpreting.
  setFlagsFromString('--always-sparkplug');
  const q = await quickUp(cfg, { name, netns: options.netns as string | undefined, log: (l) => console.error(l) });
  // Only now, so the one-off start-up code is not optimized too.
  for (const flag of V8_TUNNEL_FLAGS) setFlagsFromString(flag);
  writeFileSync(pidFile(name), `${process.pid}\n`);
  console.error(`${name} is up (listening on UDP port ${q.iface.listenPort}); Ctrl-C or \`tuntap wg down ${name}\` stops it`);
  const stop = () => { void q.down(); };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  await q.iface.closed;
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
  if (!name) throw new UsageError('tuntap wg down needs an interface name');
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

async function show(which: string | undefined): Promise<number> {
  const names = !which || which === 'all' || which === 'interfaces' ? listInterfaces() : [which];
  if (which === 'interfaces') { console.log(names.join(' ')); return 0; }
  const blocks: string[] = [];
  for (const n of names) blocks.push(formatStatus(await getStatus(n)));
  if (blocks.length) console.log(blocks.join('\n\n'));
  return 0;
}
