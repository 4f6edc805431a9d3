// `tuntap demo`: in a private network namespace it opens a TUN, configures it over rtnetlink,
// answers ICMP echo in TypeScript (rewriting each request in place into its reply), runs the
// system `ping` against addresses behind the device, prints every packet, and removes
// everything when done (the namespace dies with its last fd). Then the two-host VPN demo.
import { spawn } from 'node:child_process';
import { openTun, type TunDevice } from '../device/index.js';
import { configureInterface } from '../netlink/index.js';
import { Netns } from '../netns.js';
import { describe, echoReplyInPlace } from '../packet/index.js';
import { runVpnDemo } from '../wireguard/demo.js';
import { UserError } from '../errors.js';
import { parseArgs, positiveIntOption, noExtraArguments } from './args.js';
import { demoUsesIpv6 } from './ipv6.js';

const HELP = `usage: tuntap demo [--count N] [--seconds SEC] [--quiet] [--tun-only]

Part 1: creates a private network namespace with a TUN (198.18.0.1/24, fd00:7475::1/64),
answers ICMP echo for every other address on those networks from TypeScript, pings 198.18.0.2
and fd00:7475::2 with the system ping (--count N times each, default 3), and prints each
packet (--quiet: not).
Part 2 (left out with --tun-only): two hosts (namespaces) joined by a veth, a tuntap WireGuard
tunnel between them, ping and a TCP throughput run of --seconds SEC (default 5) through the
tunnel with a live rate line. Everything is removed at the end. Where IPv6 is disabled, both
parts use IPv4 only.`;

/** Answers echo requests arriving on `dev` until it closes; returns the number answered. */
async function answerPings(dev: TunDevice, print: (line: string) => void): Promise<number> {
  let answered = 0;
  const replies: Buffer[] = [];
  for await (const batch of dev.batches()) {
    replies.length = 0;
    for (const packet of batch) {
      print(`  in  ${describe(packet, 'raw')}`);
      if (echoReplyInPlace(packet)) {
        print(`  out ${describe(packet, 'raw')}`);
        replies.push(packet);
      }
    }
    // The replies are views into the batch buffer, valid until the next read: write them now.
    if (replies.length > 0) await dev.writeBatch(replies);
    answered += replies.length;
  }
  return answered;
}

function ping(ns: Netns, args: string[], print: (line: string) => void): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = ns.run(() => spawn('ping', args, { stdio: ['ignore', 'pipe', 'pipe'] }));
    let out = '';
    child.stdout.on('data', (d: Buffer) => { out += d; });
    child.stderr.on('data', (d: Buffer) => { out += d; });
    child.once('error', (e: NodeJS.ErrnoException) => reject(e.code === 'ENOENT'
      ? new UserError('the demo runs the system ping, which is not installed (Debian: apt-get install iputils-ping)')
      : e));
    child.once('close', (code) => {
      for (const line of out.split('\n')) if (/packets transmitted|rtt|unknown|not/.test(line)) print(`  ping: ${line.trim()}`);
      resolve(code ?? 1);
    });
  });
}

export async function run(argv: string[]): Promise<number> {
  const args = parseArgs(argv, { values: ['count', 'seconds'], flags: ['quiet', 'tun-only'] });
  const { options } = args;
  if (options.help) { console.log(HELP); return 0; }
  noExtraArguments(args);
  const count = positiveIntOption(options, 'count', 3);
  const seconds = positiveIntOption(options, 'seconds', 5);
  const print = options.quiet ? () => {} : (line: string) => console.log(line);
  const ipv6 = demoUsesIpv6();

  console.log('== part 1: a TUN answering ping from TypeScript ==');
  const pinged = await pingDemo(count, ipv6, print);
  if (options['tun-only'] || pinged !== 0) return pinged;
  console.log('\n== part 2: two hosts and a WireGuard-compatible tuntap VPN between them ==');
  return runVpnDemo({ seconds, ipv6 });
}

async function pingDemo(count: number, ipv6: boolean, print: (line: string) => void): Promise<number> {
  using ns = Netns.create();
  const dev = openTun({ name: 'tuntap0', netns: ns });
  try {
    configureInterface('lo', { up: true }, { netns: ns });
    configureInterface(dev.name, {
      mtu: 1500,
      addresses: ['198.18.0.1/24', ...(ipv6 ? [{ address: 'fd00:7475::1/64', nodad: true }] : [])],
      up: true,
    }, { netns: ns });
    console.log(`${dev.name} is up in a private namespace: 198.18.0.1/24${ipv6 ? ', fd00:7475::1/64' : ''}`);
    const answering = answerPings(dev, print);
    console.log(`ping -c ${count} 198.18.0.2 (answered by tuntap)`);
    const v4 = await ping(ns, ['-c', String(count), '-i', '0.2', '-W', '2', '198.18.0.2'], print);
    let v6 = 0;
    if (ipv6) {
      console.log(`ping -6 -c ${count} fd00:7475::2 (answered by tuntap)`);
      v6 = await ping(ns, ['-6', '-c', String(count), '-i', '0.2', '-W', '2', 'fd00:7475::2'], print);
    }
    await dev.close();
    const answered = await answering;
    console.log(`answered ${answered} echo requests; ${v4 === 0 && v6 === 0 ? 'all pings replied' : 'some pings failed'}`);
    return v4 === 0 && v6 === 0 ? 0 : 1;
  } finally {
    await dev.close();
  }
}
