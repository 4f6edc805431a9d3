#!/usr/bin/env node
// `tuntap`: one CLI over the library. Each subcommand lives in its own file, loaded on demand,
// and exports `run(argv: string[]): Promise<number>` returning the exit code.
import { TuntapError } from '../errors.js';

type Command = { summary: string; load: () => Promise<{ run(argv: string[]): Promise<number> }> };

const commands: Record<string, Command> = {
  demo: { summary: 'run the built-in demo in private namespaces', load: () => import('./demo.js') },
  add: { summary: 'create a persistent TUN/TAP device (--mode --owner --group --multi-queue --vnet-hdr --pi --address --mtu --up)', load: () => import('./add.js') },
  del: { summary: 'delete a persistent TUN/TAP device', load: () => import('./del.js') },
  list: { summary: 'list TUN/TAP devices with their TUN details', load: () => import('./list.js') },
  show: { summary: 'show one TUN/TAP device', load: () => import('./show.js') },
  dump: { summary: 'print (and pcap) the packets arriving on a TUN/TAP, with a filter', load: () => import('./dump.js') },
  wg: { summary: 'WireGuard: genkey/pubkey/genpsk, up FILE (wg-quick format), down NAME, show', load: () => import('./wg.js') },
  socks: { summary: 'tun2socks: carry a TUN\'s TCP/UDP through a SOCKS5/SOCKS4a proxy', load: () => import('./socks.js') },
  http: { summary: 'tun2http: carry a TUN\'s TCP through an HTTP CONNECT proxy', load: () => import('./http.js') },
  bridge: { summary: 'learning switch between TAP devices and VXLAN tunnels; persistent TAPs for VMs', load: () => import('./bridge.js') },
};

function usage(): string {
  const width = Math.max(...Object.keys(commands).map((n) => n.length));
  const lines = Object.entries(commands).map(([n, c]) => `  ${n.padEnd(width)}  ${c.summary}`);
  return `usage: tuntap <command> [options]\n\ncommands:\n${lines.join('\n')}\n\n` +
    'Run `tuntap <command> --help` for the options of one command.';
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(usage());
    return name ? 0 : 2;
  }
  const command = commands[name];
  if (!command) {
    console.error(`tuntap: unknown command "${name}"\n\n${usage()}`);
    return 2;
  }
  const mod = await command.load();
  return mod.run(rest);
}

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err: unknown) => {
    if (err instanceof TuntapError || (err instanceof Error && err.name === 'UsageError')) {
      console.error(`tuntap: ${err.message}`);
    } else {
      console.error(err);
    }
    process.exitCode = 1;
  },
);
