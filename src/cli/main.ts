#!/usr/bin/env node
// `tuntap`: one CLI over the library. Each subcommand lives in its own file, loaded on demand,
// and exports `run(argv: string[]): Promise<number>` returning the exit code. Errors a user can
// cause (UserError) are printed as one line; anything else is a bug, printed with its stack.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UserError } from '../errors.js';
import { UsageError } from './args.js';

// The options every long-running command (wg up, socks, http, bridge) takes (src/cli/ops.ts).
const OPS = 'OPS: [--metrics [ADDR:]PORT] [--log-level LEVEL] [--log-format FORMAT]';

type Command = { summary: string; synopsis: string[]; load: () => Promise<{ run(argv: string[]): Promise<number> }> };

// The synopsis lists every option and subcommand; test/cli/help.test.ts holds it to each --help.
const commands: Record<string, Command> = {
  demo: {
    summary: 'the built-in demo in private namespaces: a TUN answering ping, then a two-host VPN',
    synopsis: ['[--count N] [--seconds SEC] [--quiet] [--tun-only]'],
    load: () => import('./demo.js'),
  },
  add: {
    summary: 'create a persistent TUN/TAP device, like ip tuntap add',
    synopsis: ['NAME [--mode tun|tap] [--owner USER] [--group GROUP] [--multi-queue] [--vnet-hdr] [--pi]',
      '[--address CIDR]... [--mtu N] [--up] [--netns NS] [--json]'],
    load: () => import('./add.js'),
  },
  del: { summary: 'delete a persistent TUN/TAP device', synopsis: ['NAME [--netns NS] [--json]'], load: () => import('./del.js') },
  list: { summary: 'list TUN/TAP devices with their TUN details', synopsis: ['[--netns NS] [--json]'], load: () => import('./list.js') },
  show: { summary: 'show one TUN/TAP device', synopsis: ['NAME [--netns NS] [--json]'], load: () => import('./show.js') },
  dump: {
    summary: 'print (and save as pcap) the packets arriving on a TUN/TAP, with a filter',
    synopsis: ['[--tap] [--name NAME] [--netns NS] [--address CIDR]... [-w FILE] [-c COUNT] [-q|--quiet]',
      '[-d|--print-bpf] [--no-kernel-filter] [--builtin-filter] [FILTER]'],
    load: () => import('./dump.js'),
  },
  wg: {
    summary: 'the WireGuard-compatible VPN',
    synopsis: ['genkey | pubkey | genpsk | up FILE [--name NAME] [--netns NS] [OPS] | down NAME',
      'syncconf NAME FILE [--netns NS] | show [NAME|all|interfaces] [--json] | demo [--seconds SEC]', OPS],
    load: () => import('./wg.js'),
  },
  socks: {
    summary: 'tun2socks: carry a TUN\'s TCP and UDP through a SOCKS5 or SOCKS4a proxy',
    synopsis: ['--proxy URL [--proxy-password-file FILE] [--route] [--gateway CIDR]... [--udp] [--dns MODE] [--dns-server ADDR] [--fake-ip CIDR]... [--rule RULE]...',
      '[--rules-file FILE]',
      '[--name NAME] [--mtu N] [--offload MODE] [--no-offload] [--address4 ADDR] [--address6 ADDR] [--no-ipv6]',
      '[--bind4 ADDR] [--bind6 ADDR] [--max-sessions N] [--idle-timeout SEC] [--interval SEC] [--json] [--quiet] [OPS]', OPS],
    load: () => import('./socks.js'),
  },
  http: {
    summary: 'tun2http: carry a TUN\'s TCP through an HTTP CONNECT proxy',
    synopsis: ['the options of socks, with --proxy http://...'],
    load: () => import('./http.js'),
  },
  bridge: {
    summary: 'a learning switch between TAP devices and VXLAN tunnels; persistent TAPs for VMs',
    synopsis: ['TAP... [--vxlan SPEC]... [--vlan PORT=SPEC]... [--age SEC] [--netns NS] [--no-offload]',
      '[--interval SEC] [--duration SEC] [--json] [OPS]', OPS,
      'vm-tap add NAME --user USER [--group GROUP] [--queues N] [--no-vnet-hdr] [--netns NS] [--json]',
      'vm-tap del NAME [--netns NS] [--json]'],
    load: () => import('./bridge.js'),
  },
  top: {
    summary: 'a live view of every WireGuard interface, proxy and bridge on this host',
    synopsis: ['[--interval SEC] [--once] [--json]'],
    load: () => import('./top.js'),
  },
};


function usage(): string {
  const width = Math.max(...Object.keys(commands).map((n) => n.length)) + 2;
  const pad = ' '.repeat(width + 2);
  const blocks = Object.entries(commands).map(([n, c]) =>
    [`  ${n.padEnd(width)}${c.summary}`, ...c.synopsis.map((l) => `${pad}${l}`)].join('\n'));
  return `usage: tuntap <command> [options]      (tuntap <command> --help describes one command)\n\n` +
    `commands:\n${blocks.join('\n')}\n\n  --version  print the version\n  --help     print this summary`;
}

/** The version in package.json, found from this file in src/cli or dist/src/cli. */
function version(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++, dir = dirname(dir)) {
    const file = join(dir, 'package.json');
    if (!existsSync(file)) continue;
    const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string };
    if (pkg.name === 'tuntap' && pkg.version) return pkg.version;
  }
  return 'unknown';
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined) { console.error(usage()); return 2; }
  if (name === '--help' || name === '-h' || name === 'help') { console.log(usage()); return 0; }
  if (name === '--version' || name === '-V') { console.log(`tuntap ${version()}`); return 0; }
  const command = Object.hasOwn(commands, name) ? commands[name] : undefined;
  if (!command) throw new UsageError(`unknown command "${name}" (tuntap --help lists them)`);
  const mod = await command.load();
  return mod.run(rest);
}

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err: unknown) => {
    if (err instanceof UserError) {
      // One line, whatever the message holds.
      console.error(`tuntap: ${err.message.replace(/\s*\n\s*/g, ' ')}`);
      process.exitCode = err instanceof UsageError ? 2 : 1;
    } else {
      console.error(err);
      console.error('tuntap: this is a bug in tuntap, not a mistake of yours; please report it with the command you ran and the output above');
      process.exitCode = 1;
    }
  },
);
