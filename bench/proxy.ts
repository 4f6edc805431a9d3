// tun2socks throughput and memory: iperf3 from the app namespace through `tuntap socks` → dante,
// against the same iperf3 speaking SOCKS5 to dante itself (proxychains4), both directions, in
// the same run; then resident memory of tuntap holding N idle proxied connections.
// Run alone: node --import tsx bench/proxy.ts  (env: BENCH_PROXY_SECONDS, BENCH_PROXY_IDLE, BENCH_PROXY_MTU)
import { writeFileSync, existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { nsRun, nsSpawn } from '../test/helpers/netns.js';
import { ProxyTopology, PROXY4, SERVER4, sleep } from '../test/proxy/topology.js';

let seconds = Number(process.env.BENCH_PROXY_SECONDS ?? 5);
// 9,000 by default: tuntap holds two fds per connection and this VM's hard RLIMIT_NOFILE is 20,000.
const idle = Number(process.env.BENCH_PROXY_IDLE ?? 9000);
const mtu = Number(process.env.BENCH_PROXY_MTU ?? 9000);
const tunMtu = Number(process.env.BENCH_PROXY_TUN_MTU ?? 65000);

async function iperf(t: ProxyTopology, wrap: string[], reverse: boolean): Promise<number> {
  const r = await nsRun(t.app, wrap[0] ?? 'iperf3', [...wrap.slice(1), ...(wrap.length ? ['iperf3'] : []),
    '-c', SERVER4, '-t', String(seconds), '-J', ...(reverse ? ['-R'] : [])], (seconds + 30) * 1000);
  if (r.code !== 0) throw new Error(`iperf3 failed: ${r.stdout.slice(0, 500)} ${r.stderr}`);
  return (JSON.parse(r.stdout) as { end: { sum_received: { bits_per_second: number } } }).end.sum_received.bits_per_second;
}

// Holds `n` connections to the echo server open (idle) until stdin closes.
const holdScript = `
const net = require('node:net');
const n = Number(process.argv[1]), host = process.argv[2];
let open = 0;
for (let i = 0; i < n; i++) {
  const s = net.connect({ host, port: 7000 });
  s.on('connect', () => { if (++open === n) console.log('open ' + open); });
  s.on('error', (e) => { console.error(e.message); process.exit(1); });
}
process.stdin.on('end', () => process.exit(0)); process.stdin.resume();
`;

/** Uses the compiled CLI when dist/ is at least as new as the sources (tsx adds ~35 MiB of RSS). */
function chooseCli(): string {
  const root = new URL('..', import.meta.url).pathname;
  const compiled = join(root, 'dist/src/cli/main.js');
  const newest = ['src/proxy/engine.ts', 'src/proxy/nat.ts', 'src/cli/socks.ts'].map((f) => statSync(join(root, f)).mtimeMs);
  if (!process.env.TUNTAP_PROXY_CLI && existsSync(compiled) && existsSync(join(root, 'dist/src/proxy/engine.js'))
    && statSync(join(root, 'dist/src/proxy/engine.js')).mtimeMs >= Math.max(...newest)) {
    process.env.TUNTAP_PROXY_CLI = compiled;
  }
  return process.env.TUNTAP_PROXY_CLI ? `compiled CLI ${process.env.TUNTAP_PROXY_CLI}` : 'sources via tsx';
}

/** `opts.durationSec` (from bench/run.ts) sets the seconds per iperf3 run. */
export async function run(opts: { durationSec?: number } = {}): Promise<void> {
  if (opts.durationSec) seconds = opts.durationSec;
  const cli = chooseCli();
  const t = new ProxyTopology({ mtu });
  try {
    await t.startServers();
    await t.startDante(1081);
    const chains = join(t.dir, 'proxychains.conf');
    writeFileSync(chains, `strict_chain\nquiet_mode\ntcp_read_time_out 15000\ntcp_connect_time_out 8000\n[ProxyList]\nsocks5 ${PROXY4} 1081\n`);
    const direct = { up: await iperf(t, ['proxychains4', '-q', '-f', chains], false), down: await iperf(t, ['proxychains4', '-q', '-f', chains], true) };
    const p = await t.startTuntap('socks', ['--proxy', `socks5://${PROXY4}:1081`, '--route', '--mtu', String(tunMtu)]);
    let tun: { up: number; down: number };
    let rssIdle = 0;
    let rssBase = 0;
    let holder: ChildProcess | undefined;
    try {
      tun = { up: await iperf(t, [], false), down: await iperf(t, [], true) };
      await sleep(1500);
      rssBase = p.stats().rss ?? 0;
      const h = holder = nsSpawn(t.app, process.execPath, ['-e', holdScript, String(idle), SERVER4], { stdio: ['pipe', 'pipe', 'inherit'] });
      await new Promise<void>((resolve, reject) => {
        h.stdout!.on('data', (d) => { if (String(d).includes('open')) resolve(); });
        h.once('exit', (c) => reject(new Error(`holder exited ${c}`)));
      });
      const s = await p.waitStats((x) => x.sessions >= idle, 60_000);
      await sleep(1500);
      rssIdle = p.stats().rss ?? s.rss ?? 0;
      h.stdin!.end();
      await p.waitStats((x) => x.sessions === 0, 60_000);
    } finally {
      // On failure the holder would keep its thousands of connections open: end it here.
      if (holder && holder.exitCode === null) holder.kill();
      await p.stop();
    }
    const g = (b: number): string => `${(b / 1e9).toFixed(2)} Gbit/s`;
    console.log(`proxy (tun2socks → dante, link MTU ${mtu}, TUN MTU ${tunMtu}, ${seconds} s each, ${cli}):`);
    console.log(`  upload    direct SOCKS5 (proxychains4) ${g(direct.up)}   tuntap socks ${g(tun.up)}   ratio ${(tun.up / direct.up).toFixed(2)}x`);
    console.log(`  download  direct SOCKS5 (proxychains4) ${g(direct.down)}   tuntap socks ${g(tun.down)}   ratio ${(tun.down / direct.down).toFixed(2)}x`);
    console.log(`  RSS: ${(rssBase / 2 ** 20).toFixed(0)} MiB after the transfers, ${(rssIdle / 2 ** 20).toFixed(0)} MiB with ${idle} idle proxied connections`);
  } finally {
    await t.cleanup();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  run().catch((e: unknown) => { console.error(e); process.exitCode = 1; });
}
