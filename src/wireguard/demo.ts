// The two-host VPN scenario in one command: two private network namespaces ("hosts")
// joined by a veth, a tuntap WireGuard interface on each, ping through the tunnel, a TCP
// throughput run with a live rate line read from the tunnel's own counters, then everything is
// removed (the namespaces vanish with their last fd).
import { spawn, type ChildProcess } from 'node:child_process';
import { Netns } from '../netns.js';
import { createVeth, addAddress, configureInterface, setLink } from '../netlink/index.js';
import { WireGuardInterface } from './interface.js';
import { generatePrivateKey, publicKey } from './crypto.js';

export interface VpnDemoOptions {
  /** Seconds of throughput run (default 5). */
  seconds?: number;
  /** false: IPv4 only (where IPv6 is disabled); the caller says why. */
  ipv6?: boolean;
  log?: (line: string) => void;
}

/** What each drop counter of the demo means, for the final line. */
const dropReasons: Record<string, string> = {
  noRoute: 'packets to addresses outside every peer\'s AllowedIPs: the IPv6 router solicitation the kernel sends when an interface comes up',
};

const A = { outer4: '198.18.77.1', outer6: 'fd00:77::1', inner4: '198.19.77.1', inner6: 'fd01:77::1', port: 51871 };
const B = { outer4: '198.18.77.2', outer6: 'fd00:77::2', inner4: '198.19.77.2', inner6: 'fd01:77::2', port: 51872 };

/** Runs a command in `ns`, passing its output lines to `log`; resolves with the exit code and the output. */
function run(ns: Netns, cmd: string, args: string[], log: (l: string) => void): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    const child = ns.run(() => spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] }));
    let output = '';
    const relay = (d: Buffer) => { output += d; for (const l of d.toString().split('\n')) if (l.trim()) log(`  ${l}`); };
    child.stdout!.on('data', relay);
    child.stderr!.on('data', relay);
    child.once('error', () => resolve({ code: 127, output }));
    child.once('close', (code) => resolve({ code: code ?? 1, output }));
  });
}

// A TCP sink and a TCP source as small Node programs, started inside the namespaces.
const SINK = `require('net').createServer((s) => s.on('data', () => {})).listen(5201, process.argv[1], () => console.log('ready'));`;
const SOURCE = `const s = require('net').connect(5201, process.argv[1]); const chunk = Buffer.alloc(1 << 16);
const end = Date.now() + Number(process.argv[2]) * 1000;
const pump = () => { while (Date.now() < end) { if (!s.write(chunk)) return s.once('drain', pump); } s.end(); };
s.on('connect', pump); s.on('error', (e) => { console.error(e.message); process.exit(1); });`;

export async function runVpnDemo(opts: VpnDemoOptions = {}): Promise<number> {
  const log = opts.log ?? ((l: string) => console.log(l));
  const seconds = opts.seconds ?? 5;
  const ipv6 = opts.ipv6 !== false;
  const hostA = Netns.create();
  const hostB = Netns.create();
  const tag = process.pid.toString(36).slice(-5);
  const ifaces: WireGuardInterface[] = [];
  const children: ChildProcess[] = [];
  try {
    for (const h of [hostA, hostB]) setLink('lo', { up: true }, { netns: { fd: h.fd } });
    const vethA = `wgdv${tag}a`;
    const vethB = `wgdv${tag}b`;
    createVeth(vethA, vethB, { peerNetns: { fd: hostB.fd } }, { netns: { fd: hostA.fd } });
    for (const [h, dev, side] of [[hostA, vethA, A], [hostB, vethB, B]] as const) {
      addAddress(dev, `${side.outer4}/24`, { netns: { fd: h.fd } });
      if (ipv6) addAddress(dev, { address: `${side.outer6}/64`, nodad: true }, { netns: { fd: h.fd } });
      setLink(dev, { up: true }, { netns: { fd: h.fd } });
    }
    log(`two hosts (private network namespaces) joined by a veth: ${A.outer4} ⇄ ${B.outer4}`);

    const keyA = generatePrivateKey();
    const keyB = generatePrivateKey();
    for (const [h, side, other, key, otherKey, suffix] of [
      [hostA, A, B, keyA, keyB, 'a'], [hostB, B, A, keyB, keyA, 'b'],
    ] as const) {
      const name = `wgd${tag}${suffix}`;
      const wg = await WireGuardInterface.open({
        name, netns: { fd: h.fd }, privateKey: key, listenPort: side.port,
        peers: [{ publicKey: publicKey(otherKey), endpoint: { address: other.outer4, port: other.port },
          allowedIps: [`${other.inner4}/32`, ...(ipv6 ? [`${other.inner6}/128`] : [])] }],
      });
      ifaces.push(wg);
      const addresses = [`${side.inner4}/24`, ...(ipv6 ? [{ address: `${side.inner6}/64`, nodad: true }] : [])];
      configureInterface(name, { mtu: 1420, addresses, up: true }, { netns: { fd: h.fd } });
      log(`host ${suffix.toUpperCase()}: WireGuard interface ${name}, tunnel address ${side.inner4}${ipv6 ? ` / ${side.inner6}` : ''} (\`wg show ${name}\` works meanwhile)`);
    }
    const [wgA] = ifaces as [WireGuardInterface, WireGuardInterface];

    // The first packet waits for the handshake it starts, and the next few for this process
    // compiling its data path for real traffic (warmup.ts): a round of its own, so the pings
    // shown after it are the tunnel's usual round trips.
    const first = await run(hostA, 'ping', ['-c', '5', '-i', '0.2', '-W', '5', B.inner4], () => {});
    const times = [...first.output.matchAll(/time=([\d.]+) ms/g)].map((m) => m[1]);
    let failed = first.code === 0 ? 0 : 1;
    log(`\nfirst packets: ${times.length ? `${times.join(', ')} ms` : 'no reply'}: the first waited for the WireGuard handshake ` +
      `it started (${wgA.engine.stats.handshakeInitiationsSent} initiation sent), the next ones for this process compiling its data path for the traffic`);
    log(`ping through the tunnel, host A → host B:`);
    for (const target of ipv6 ? [B.inner4, B.inner6] : [B.inner4]) {
      const { code } = await run(hostA, 'ping', [...(target.includes(':') ? ['-6'] : []), '-c', '3', '-i', '0.2', '-W', '2', target], log);
      if (code !== 0) failed++;
    }
    const peer = wgA.engine.getPeer(publicKey(keyB))!;

    log(`\nTCP throughput through the tunnel for ${seconds} s (live rate from the tunnel's counters):`);
    const sink = hostB.run(() => spawn(process.execPath, ['-e', SINK, B.inner4], { stdio: ['ignore', 'pipe', 'inherit'] }));
    children.push(sink);
    await new Promise<void>((resolve, reject) => {
      sink.stdout!.once('data', () => resolve());
      sink.once('exit', () => reject(new Error('the TCP sink did not start')));
    });
    const source = hostA.run(() => spawn(process.execPath, ['-e', SOURCE, B.inner4, String(seconds)], { stdio: ['ignore', 'inherit', 'inherit'] }));
    children.push(source);
    const started = Date.now();
    const startBytes = peer.txBytes;
    let last = startBytes;
    const ticker = setInterval(() => {
      const now = peer.txBytes;
      log(`  ${((Date.now() - started) / 1000).toFixed(0).padStart(3)} s  ${((now - last) * 8 / 1e6).toFixed(0).padStart(6)} Mbit/s (encrypted, on the wire)`);
      last = now;
    }, 1000);
    const sourceCode = await new Promise<number>((resolve) => source.once('exit', (c) => resolve(c ?? 1)));
    clearInterval(ticker);
    const elapsed = (Date.now() - started) / 1000;
    log(`  average ${(((peer.txBytes - startBytes) * 8) / elapsed / 1e6).toFixed(0)} Mbit/s over ${elapsed.toFixed(1)} s`);
    if (sourceCode !== 0) failed++;
    const dropped = Object.entries(wgA.engine.stats.dropped).filter(([, n]) => n > 0)
      .map(([k, n]) => `${k} ${n}${dropReasons[k] ? ` (${dropReasons[k]})` : ''}`);
    log(`\ndropped on host A: ${dropped.length ? dropped.join(', ') : 'nothing'}`);
    return failed === 0 ? 0 : 1;
  } finally {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    for (const w of ifaces) await w.close();
    hostA.close();
    hostB.close();
    log('cleaned up: interfaces closed, namespaces gone');
  }
}
