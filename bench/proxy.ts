// tun2socks throughput and memory: iperf3 from the app namespace through `tuntap socks` → dante,
// against the same iperf3 speaking SOCKS5 to dante itself (proxychains4), both directions, in
// the same run, at every TUN MTU that matters (65000, our default; 8500; 1500). Then, on the
// default MTU, the proxy's resident memory: idle, its peak while one flow is busy, its peak
// holding many connections of which a few hundred are busy, and once they all closed.
// Run alone: node --import tsx bench/proxy.ts  (env: BENCH_PROXY_SECONDS, BENCH_PROXY_FLOWS,
// BENCH_PROXY_BUSY, BENCH_PROXY_MTU (the links'), BENCH_PROXY_TUN_MTUS, BENCH_PROXY_OFFLOAD)
import { writeFileSync, existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { nsRun } from '../test/helpers/netns.js';
import { ProxyTopology, PROXY4, SERVER4, memoryOf, resetPeak, sleep, type HeldConnections, type ProxyProcess } from '../test/proxy/topology.js';

let seconds = Number(process.env.BENCH_PROXY_SECONDS ?? 5);
// 9,800 by default: tuntap holds two descriptors per connection, and this VM's hard open-files
// limit (20,000, which root cannot raise here) leaves room for 9,832 sessions.
const flows = Number(process.env.BENCH_PROXY_FLOWS ?? 9800);
const busy = Number(process.env.BENCH_PROXY_BUSY ?? 200);
const linkMtu = Number(process.env.BENCH_PROXY_MTU ?? 9000);
const tunMtus = (process.env.BENCH_PROXY_TUN_MTUS ?? '65000,8500,1500').split(',').map(Number);
const offload = process.env.BENCH_PROXY_OFFLOAD;

async function iperf(t: ProxyTopology, wrap: string[], reverse: boolean): Promise<number> {
  const r = await nsRun(t.app, wrap[0] ?? 'iperf3', [...wrap.slice(1), ...(wrap.length ? ['iperf3'] : []),
    '-c', SERVER4, '-t', String(seconds), '-J', ...(reverse ? ['-R'] : [])], (seconds + 30) * 1000);
  if (r.code !== 0) throw new Error(`iperf3 failed: ${r.stdout.slice(0, 500)} ${r.stderr}`);
  return (JSON.parse(r.stdout) as { end: { sum_received: { bits_per_second: number } } }).end.sum_received.bits_per_second;
}

/** Uses the compiled CLI when dist/ is at least as new as the sources (tsx adds ~35 MiB of RSS). */
function chooseCli(): string {
  const root = new URL('..', import.meta.url).pathname;
  const compiled = join(root, 'dist/src/cli/main.js');
  const newest = ['src/proxy/engine.ts', 'src/proxy/nat.ts', 'src/proxy/socket-relay.ts', 'src/cli/socks.ts']
    .filter((f) => existsSync(join(root, f))).map((f) => statSync(join(root, f)).mtimeMs);
  if (!process.env.TUNTAP_PROXY_CLI && existsSync(compiled) && existsSync(join(root, 'dist/src/proxy/engine.js'))
    && statSync(join(root, 'dist/src/proxy/engine.js')).mtimeMs >= Math.max(...newest)) {
    process.env.TUNTAP_PROXY_CLI = compiled;
  }
  return process.env.TUNTAP_PROXY_CLI ? `compiled CLI ${process.env.TUNTAP_PROXY_CLI}` : 'sources via tsx';
}

async function startProxy(t: ProxyTopology, tunMtu: number): Promise<ProxyProcess> {
  return t.startTuntap('socks', ['--proxy', `socks5://${PROXY4}:1081`, '--route', '--mtu', String(tunMtu),
    ...(offload ? ['--offload', offload] : [])]);
}

interface Memory { idle: number; busyFlow: number; manyFlows: number; held: number; afterClose: number }

/** The memory figures, on a freshly started proxy; `transfer` runs the one-flow transfers. */
async function measureMemory(t: ProxyTopology, p: ProxyProcess, transfer: () => Promise<void>): Promise<Memory> {
  const pid = p.child.pid!;
  await sleep(2000);
  const idle = memoryOf(pid).rss;
  resetPeak(pid);
  await transfer();
  const busyFlow = memoryOf(pid).peak;
  await sleep(1500);
  resetPeak(pid);
  let holder: HeldConnections | undefined;
  try {
    const h = holder = await t.holdConnections(flows, busy);
    // A loaded machine may leave a few handshakes unaccepted until they time out: 99% will do.
    await p.waitStats((x) => x.sessions >= flows * 0.99, 60_000);
    await sleep(seconds * 1000);
    const manyFlows = memoryOf(pid).peak;
    const held = p.stats().sessions!;
    h.close();
    await p.waitStats((x) => x.sessions === 0, 60_000);
    // A closed connection's NAT entry lingers 5 s (late segments still find it), then is freed.
    await sleep(8000);
    return { idle, busyFlow, manyFlows, held, afterClose: memoryOf(pid).rss };
  } finally {
    // On failure the holder would keep its thousands of connections open: end it here.
    holder?.kill();
  }
}

/** `opts.durationSec` (from bench/run.ts) sets the seconds per iperf3 run. */
export async function run(opts: { durationSec?: number } = {}): Promise<void> {
  if (opts.durationSec) seconds = opts.durationSec;
  const cli = chooseCli();
  const t = new ProxyTopology({ mtu: linkMtu });
  try {
    await t.startServers();
    await t.startDante(1081);
    const chains = join(t.dir, 'proxychains.conf');
    writeFileSync(chains, `strict_chain\nquiet_mode\ntcp_read_time_out 15000\ntcp_connect_time_out 8000\n[ProxyList]\nsocks5 ${PROXY4} 1081\n`);
    const proxychains = ['proxychains4', '-q', '-f', chains];
    const direct = { up: await iperf(t, proxychains, false), down: await iperf(t, proxychains, true) };
    const byMtu: { mtu: number; up: number; down: number }[] = [];
    let memory: Memory | undefined;
    for (const mtu of tunMtus) {
      const p = await startProxy(t, mtu);
      try {
        let up = 0, down = 0;
        const transfer = async (): Promise<void> => { up = await iperf(t, [], false); down = await iperf(t, [], true); };
        if (mtu === tunMtus[0] && flows > 0) memory = await measureMemory(t, p, transfer);
        else await transfer();
        byMtu.push({ mtu, up, down });
      } finally {
        await p.stop();
      }
    }
    const g = (b: number): string => `${(b / 1e9).toFixed(2)} Gbit/s`;
    const m = (b: number): string => `${(b / 2 ** 20).toFixed(1)} MiB`;
    const over = (b: number): string => `${b >= memory!.idle ? '+' : ''}${m(b - memory!.idle)}`;
    console.log(`proxy (tun2socks → dante, link MTU ${linkMtu}, ${seconds} s each, offload ${offload ?? 'default'}, ${cli}):`);
    console.log(`  direct SOCKS5 (proxychains4)   upload ${g(direct.up)}   download ${g(direct.down)}`);
    for (const r of byMtu) {
      console.log(`  tuntap socks, TUN MTU ${String(r.mtu).padStart(5)}   upload ${g(r.up)} (${(r.up / direct.up).toFixed(2)}x)   download ${g(r.down)} (${(r.down / direct.down).toFixed(2)}x)`);
    }
    if (memory) {
      console.log(`  RSS (TUN MTU ${tunMtus[0]}): idle ${m(memory.idle)}; one busy flow peak ${over(memory.busyFlow)};` +
        ` ${memory.held} flows (${busy} busy) peak ${over(memory.manyFlows)} (${over(memory.idle + (memory.manyFlows - memory.idle) * 10_000 / memory.held)} per 10,000);` +
        ` after they closed ${over(memory.afterClose)}`);
    }
    console.log(`BENCH_PROXY_JSON ${JSON.stringify({ direct, byMtu, memory, flows, busy })}`);
  } finally {
    await t.cleanup();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  run().catch((e: unknown) => { console.error(e); process.exitCode = 1; });
}
