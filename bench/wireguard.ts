// WireGuard: iperf3 TCP (1 stream) and ping RTT through tuntap ⇄ tuntap versus Debian's
// wireguard-go ⇄ wireguard-go, same topology (two namespaces over a veth), same run, and versus
// the same two processes without crypto (examples/tunnel.ts: the TUN ⇄ UDP forwarder on the
// device's offload 'split', compiled like the CLI). Then a fresh tunnel's first seconds: its
// first ping (the handshake inside it) and its first 20 pings against the same tunnel's pings
// after 3 s of traffic. Also the per-packet cost of the batched native AEAD against one
// createCipheriv per packet. OpenVPN (AES-256-GCM, TLS mode, userspace data channel) joins the
// comparison when it is installed.
//
//   npm run bench -- wireguard [--only=tunnels,first,cost] [--first-rounds=N] [--first-control=no]
import { createCipheriv, randomBytes } from 'node:crypto';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import type { BenchOptions } from './run.js';
import { WgTopology, ping, iperf, waitFor, nsRunOk, type Side } from '../test/wireguard/topology.js';
import { nsRun, nsSpawn } from '../test/helpers/netns.js';
import { sealBatch, openBatch } from '../src/wireguard/aead.js';
import { addon } from '../src/native.js';
import { StaticKey, generatePrivateKey } from '../src/wireguard/crypto.js';
import { CookieChecker, CookieGenerator } from '../src/wireguard/cookie.js';
import { createInitiation, consumeInitiation, createResponse, consumeResponse, tai64n } from '../src/wireguard/noise.js';

function aeadCost(size: number): { batchNs: number; openNs: number; perPacketNs: number } {
  const n = 64;
  const key = randomBytes(32);
  const src = randomBytes(n * size);
  const dst = Buffer.alloc(n * (size + 32));
  const srcOffsets = new Uint32Array(n).map((_, i) => i * size);
  const dstOffsets = new Uint32Array(n).map((_, i) => i * (size + 32));
  const b = {
    keys: key, keyIndex: null, src, srcOffsets, srcLengths: new Uint32Array(n).fill(size), counters: new Uint32Array(2 * n),
    dst, dstOffsets, dstLengths: new Uint32Array(n), count: n,
  };
  const rounds = 400;
  let t = process.hrtime.bigint();
  for (let r = 0; r < rounds; r++) sealBatch(b);
  const batchNs = Number(process.hrtime.bigint() - t) / (rounds * n);
  // Opening the last batch sealed, into a buffer of its own (all authentic).
  const o = {
    ...b, src: dst, srcOffsets: dstOffsets, srcLengths: Uint32Array.from(b.dstLengths), dst: Buffer.alloc(n * size),
    dstOffsets: srcOffsets, dstLengths: new Uint32Array(n),
  };
  const ok = new Uint8Array(n);
  t = process.hrtime.bigint();
  for (let r = 0; r < rounds; r++) openBatch(o, ok);
  const openNs = Number(process.hrtime.bigint() - t) / (rounds * n);
  if (ok.some((x) => x !== 1)) throw new Error('aead cost: a sealed packet did not open');
  const nonce = Buffer.alloc(12);
  t = process.hrtime.bigint();
  for (let r = 0; r < rounds * n / 4; r++) {
    const c = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 });
    c.update(src.subarray(0, size));
    c.final();
    c.getAuthTag();
  }
  const perPacketNs = Number(process.hrtime.bigint() - t) / (rounds * n / 4);
  return { batchNs, openNs, perPacketNs };
}

type PolyUse = 'lanes' | 'openssl';
const polyHook = addon as unknown as {
  aeadPoly1305?(use: PolyUse, keys: Uint8Array, data: Uint8Array, offsets: Uint32Array, lengths: Uint32Array, tags: Uint8Array): number;
};

/** Poly1305 alone, ns per message: 64 groups of the same eight messages of `size` bytes, each its own key. */
function polyCost(use: PolyUse, size: number): number | undefined {
  const hook = polyHook.aeadPoly1305;
  if (!hook) return undefined;
  const count = 512;
  const data = randomBytes(8 * size);
  const offsets = new Uint32Array(count).map((_, i) => (i % 8) * size);
  const lengths = new Uint32Array(count).fill(size);
  const keys = randomBytes(32 * count);
  const tags = Buffer.alloc(16 * count);
  const call = () => hook(use, keys, data, offsets, lengths, tags);
  try {
    call();
  } catch (e) {
    if (e instanceof RangeError) return undefined; // this CPU lacks the lanes' instructions
    throw e;
  }
  const rounds = 200;
  for (let r = 0; r < 20; r++) call();
  const t = process.hrtime.bigint();
  for (let r = 0; r < rounds; r++) call();
  return Number(process.hrtime.bigint() - t) / (rounds * count);
}

/** Microseconds per call of `fn`, after a warm-up of the same length. */
function usPerCall(calls: number, fn: () => void): number {
  for (let i = 0; i < calls; i++) fn();
  const t = process.hrtime.bigint();
  for (let i = 0; i < calls; i++) fn();
  return Number(process.hrtime.bigint() - t) / calls / 1000;
}

/** What a handshake message costs the one JS thread: MAC checks, a cookie reply, the Noise steps. */
export function handshakeCost(): Array<[string, number]> {
  const initiator = new StaticKey(generatePrivateKey());
  const responder = new StaticKey(generatePrivateKey());
  const psk = generatePrivateKey();
  const clock = () => 0;
  const checker = new CookieChecker(responder.public, 120_000, clock);
  const made = createInitiation(initiator, responder.public, psk, 1, tai64n())!;
  new CookieGenerator(responder.public, 120_000, clock).stamp(made.message);
  const source = Buffer.alloc(18, 7);
  const consumed = consumeInitiation(responder, made.message)!;
  return [
    ['MAC1 check (keyed BLAKE2s, every handshake message)', usPerCall(20_000, () => checker.checkMac1(made.message))],
    ['MAC2 check (under load)', usPerCall(20_000, () => checker.checkMac2(made.message, source))],
    ['cookie reply (XChaCha20-Poly1305)', usPerCall(20_000, () => checker.makeReply(made.message, source))],
    ['consume an initiation (2 X25519)', usPerCall(500, () => consumeInitiation(responder, made.message))],
    ['answer it (ephemeral key, 2 X25519)', usPerCall(500, () => createResponse(consumed, psk, 2))],
    ['whole handshake, both sides', usPerCall(200, () => {
      const i = createInitiation(initiator, responder.public, psk, 1, tai64n())!;
      const r = createResponse(consumeInitiation(responder, i.message)!, psk, 2)!;
      consumeResponse(initiator, i.state, r.message);
    })],
  ];
}

/** OpenVPN point-to-point in TLS mode with AES-256-GCM, certificates made with openssl for the run. */
async function openvpn(topo: WgTopology, a: { ns: string; outer4: string; inner4: string }, b: { ns: string; outer4: string; inner4: string }): Promise<void> {
  const dir = topo.dir;
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  ssl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-subj', '/CN=bench-ca', '-days', '2');
  for (const who of ['server', 'client']) {
    ssl('req', ...ec, '-keyout', `${who}.key`, '-out', `${who}.csr`, '-subj', `/CN=${who}`);
    ssl('x509', '-req', '-in', `${who}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${who}.crt`, '-days', '2');
  }
  const common = ['--dev', 'tun', '--proto', 'udp', '--port', '1194', '--ca', join(dir, 'ca.crt'), '--data-ciphers', 'AES-256-GCM',
    '--disable-dco', '--verb', '3', '--tun-mtu', '1420'];
  const server = nsSpawn(b.ns, 'openvpn', [...common, '--tls-server', '--dh', 'none', '--local', b.outer4, '--ifconfig', b.inner4, a.inner4,
    '--cert', join(dir, 'server.crt'), '--key', join(dir, 'server.key')]);
  const client = nsSpawn(a.ns, 'openvpn', [...common, '--tls-client', '--remote', b.outer4, '--ifconfig', a.inner4, b.inner4,
    '--cert', join(dir, 'client.crt'), '--key', join(dir, 'client.key')]);
  let log = '';
  for (const p of [server, client]) p.stdout!.on('data', (d) => { log += d; });
  await waitFor('OpenVPN tunnel', () => (log.match(/Initialization Sequence Completed/g)?.length ?? 0) >= 2, 20_000)
    .catch((e: Error) => { throw new Error(`${e.message}: ${log.slice(-2000)}`); });
}

// Pings at 0.2 s intervals: a quiet tunnel's round trip, every wake-up starting from cold caches.
// All tunnels are up at once and the rounds alternate between them, so a busy moment of this
// shared machine falls on every tunnel alike instead of on whichever was being measured. An
// unmeasured round of WARMUP_PINGS comes first for every tunnel: the handshake, and the first
// seconds of a process (a tuntap process compiles its data path during its first few pings).
const WARMUP_PINGS = 10;
const ROUNDS = 3;
const PINGS = 20;

type Kind = 'tuntap' | 'tuntap (1 process)' | 'no crypto' | 'wireguard-go' | 'openvpn';

// examples/tunnel.ts as plain JavaScript beside the build (dist/bench/), so it runs as the CLI
// does: compiled, without tsx's loader thread; its `tuntap/...` imports resolve to dist/ through
// the package's own exports.
function compiledExample(): string {
  const source = readFileSync(fileURLToPath(new URL('../examples/tunnel.ts', import.meta.url)), 'utf8');
  const out = ts.transpileModule(source, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } });
  const dir = fileURLToPath(new URL('../dist/bench/', import.meta.url));
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'tunnel.mjs');
  writeFileSync(file, out.outputText);
  return file;
}

/** examples/tunnel.ts on `s` towards `peer` (plain UDP, no crypto), with the tunnel's addresses. */
async function plainTunnel(s: Side, peer: Side): Promise<void> {
  s.proc = nsSpawn(s.ns, process.execPath, [compiledExample(), s.name, `${s.outer4}:${s.port}`, `${peer.outer4}:${peer.port}`]);
  let out = '';
  s.proc.stdout!.on('data', (d) => { out += d; });
  s.proc.stderr!.on('data', (d) => { out += d; });
  await waitFor(`examples/tunnel.ts on ${s.name}`, () => {
    if (s.proc!.exitCode !== null) throw new Error(`examples/tunnel.ts exited: ${out}`);
    return out.includes('ready');
  }, 20_000);
  await nsRunOk(s.ns, 'ip', ['link', 'set', s.name, 'mtu', '1420', 'up']);
  await nsRunOk(s.ns, 'ip', ['addr', 'add', `${s.inner4}/24`, 'dev', s.name]);
  await nsRunOk(s.ns, 'ip', ['addr', 'add', `${s.inner6}/64`, 'dev', s.name, 'nodad']);
}

interface Tunnel {
  kind: Kind;
  topo: WgTopology;
  a: Side;
  b: Side;
  times: number[];
  /** tuntap: each `wg up` process's start until it is ready (warm-up included). */
  upMs: number[];
}

interface Measured { bps: number; bpsRounds: number[]; rttMs: number; rttMedianMs: number; wireRttMs: number }

/** Both sides of a `kind` tunnel, checked with two pings unless `checkPing` is false (a first ping to be timed). */
async function bringUp(kind: Kind, idx: number, opts: { checkPing?: boolean } = {}): Promise<Tunnel> {
  const topo = new WgTopology(idx);
  const upMs: number[] = [];
  try {
    const a = topo.side(1);
    const b = topo.side(2);
    topo.link(a, b);
    if (kind === 'tuntap') {
      // one process per side, as on two hosts (wireguard-go runs one process per side too), each
      // the built CLI as users run it (`npm run bench` builds it first)
      for (const [me, other] of [[a, b], [b, a]] as const) {
        const t = performance.now();
        await topo.tuntapProcess(me, [{ side: other, endpoint: 4 }], { compiled: true });
        upMs.push(performance.now() - t);
      }
    } else if (kind === 'no crypto') {
      await plainTunnel(a, b);
      await plainTunnel(b, a);
    } else if (kind === 'openvpn') {
      await openvpn(topo, a, b);
    } else if (kind === 'tuntap (1 process)') {
      await topo.tuntap(a, [{ side: b, endpoint: 4 }]);
      await topo.tuntap(b, [{ side: a, endpoint: 4 }]);
    } else {
      await topo.wireguardGo(a, [{ side: b, endpoint: 4 }]);
      await topo.wireguardGo(b, [{ side: a, endpoint: 4 }]);
    }
    if (opts.checkPing !== false) {
      const warm = await ping(a.ns, b.inner4, 2);
      if (!warm.ok) throw new Error(`${kind}: tunnel does not pass ping: ${warm.out}`);
    }
    return { kind, topo, a, b, times: [], upMs };
  } catch (e) {
    await topo.cleanup();
    throw e;
  }
}

function pingTimes(out: string): number[] {
  return [...out.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]));
}

const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;
const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)] ?? NaN;

async function measureAll(kinds: Kind[], seconds: number, iperfRounds: number): Promise<Map<Kind, Measured>> {
  const tunnels: Tunnel[] = [];
  try {
    for (const [i, kind] of kinds.entries()) tunnels.push(await bringUp(kind, 41 + i));
    for (const t of tunnels) await ping(t.a.ns, t.b.inner4, WARMUP_PINGS);
    for (let round = 0; round < ROUNDS; round++) {
      for (const t of tunnels) t.times.push(...pingTimes((await ping(t.a.ns, t.b.inner4, PINGS)).out));
    }
    // The same pings over the veth itself: what the tunnel adds is the difference.
    const wire = new Map<Kind, number[]>();
    for (const t of tunnels) wire.set(t.kind, pingTimes((await ping(t.a.ns, t.b.outer4, PINGS)).out));
    // Throughput rounds alternate between the tunnels too; each reports its median.
    const bps = new Map<Kind, number[]>(kinds.map((k) => [k, []]));
    for (let round = 0; round < iperfRounds; round++) {
      for (const t of tunnels) bps.get(t.kind)!.push(await iperf(t.b.ns, t.a.ns, t.b.inner4, seconds));
    }
    const results = new Map<Kind, Measured>();
    for (const t of tunnels) {
      results.set(t.kind, { bps: median(bps.get(t.kind)!), bpsRounds: bps.get(t.kind)!, rttMs: mean(t.times),
        rttMedianMs: median(t.times), wireRttMs: mean(wire.get(t.kind)!) });
    }
    return results;
  } finally {
    for (const t of tunnels) await t.topo.cleanup();
  }
}

// A fresh tunnel's first seconds, as a user meets them: both sides `tuntap wg up` (compiled), then
// one ping (it waits for the handshake it starts), FIRST_PINGS pings EARLY_INTERVAL apart, 3 s of
// traffic (pings 10 ms apart), and FIRST_PINGS pings again. A new pair of processes each round.
// The same rounds with wireguard-go (alternating with ours, so a busy moment of this shared
// machine falls on both alike) are the control: what the kernel and the scheduler make of any
// idle tunnel's first pings.
const FIRST_PINGS = 20;
const EARLY_INTERVAL = 0.05;
const TRAFFIC_SECONDS = 3;

type FirstKind = Extract<Kind, 'tuntap' | 'wireguard-go'>;
interface FirstRound { firstPingMs: number; early: number[]; steady: number[]; upMs: number[] }

async function pingSeries(ns: string, target: string, count: number, intervalS: number): Promise<number[]> {
  const r = await nsRun(ns, 'ping', ['-c', String(count), '-i', String(intervalS), '-W', '5', target], (count * intervalS + 20) * 1000);
  const times = pingTimes(r.stdout);
  if (times.length < count) throw new Error(`ping ${target}: ${times.length} of ${count} answered: ${r.stdout}${r.stderr}`);
  return times;
}

async function firstSecondsRound(kind: FirstKind, idx: number): Promise<FirstRound> {
  const { topo, a, b, upMs } = await bringUp(kind, idx, { checkPing: false });
  try {
    const [firstPingMs] = await pingSeries(a.ns, b.inner4, 1, EARLY_INTERVAL);
    const early = await pingSeries(a.ns, b.inner4, FIRST_PINGS, EARLY_INTERVAL);
    await pingSeries(a.ns, b.inner4, TRAFFIC_SECONDS * 100, 0.01);
    const steady = await pingSeries(a.ns, b.inner4, FIRST_PINGS, EARLY_INTERVAL);
    return { firstPingMs: firstPingMs!, early, steady, upMs };
  } finally {
    await topo.cleanup();
  }
}

async function firstSeconds(rounds: number, kinds: FirstKind[]): Promise<Map<FirstKind, FirstRound[]>> {
  const m = new Map<FirstKind, FirstRound[]>(kinds.map((k) => [k, []]));
  for (let r = 0; r < rounds; r++) {
    for (const [i, kind] of kinds.entries()) m.get(kind)!.push(await firstSecondsRound(kind, 61 + (r * kinds.length + i) % 30));
  }
  return m;
}

const fixed = (xs: number[], digits = 2) => xs.map((x) => x.toFixed(digits)).join(' ');

function reportFirstSeconds(m: Map<FirstKind, FirstRound[]>, rounds: number): void {
  console.log(`\n== wireguard: a fresh tunnel's first seconds (two processes per side pair, ${rounds} rounds, a new pair each;` +
    ` ${FIRST_PINGS} pings ${EARLY_INTERVAL * 1000} ms apart right after the first, and again after ${TRAFFIC_SECONDS} s of traffic)`);
  for (const [kind, rs] of m) {
    const early = rs.flatMap((r) => r.early);
    const steady = rs.flatMap((r) => r.steady);
    const ratio = median(early) / median(steady);
    console.log(`  ${kind}:`);
    // Per round: its own medians and ratio, and its first five pings (where a cold start shows).
    for (const [i, r] of rs.entries()) {
      console.log(`    round ${i + 1}: first ping ${r.firstPingMs.toFixed(2)} ms; first ${FIRST_PINGS} median ${median(r.early).toFixed(3)},` +
        ` steady ${median(r.steady).toFixed(3)}, ratio ${(median(r.early) / median(r.steady)).toFixed(2)}x; pings 1-5: ${fixed(r.early.slice(0, 5))}`);
    }
    const perRound = rs.map((r) => median(r.early) / median(r.steady));
    const upMs = rs.flatMap((r) => r.upMs);
    if (upMs.length > 0) console.log(`    start-up (\`wg up\` until ready, warm-up included): median ${median(upMs).toFixed(0)} ms per process`);
    console.log(`    first ping (starts the handshake; handshake to first data and back): median ${median(rs.map((r) => r.firstPingMs)).toFixed(3)} ms`);
    console.log(`    first ${FIRST_PINGS} pings after it: median ${median(early).toFixed(3)} ms, mean ${mean(early).toFixed(3)}, max ${Math.max(...early).toFixed(3)}`);
    console.log(`    the same after ${TRAFFIC_SECONDS} s of traffic:  median ${median(steady).toFixed(3)} ms, mean ${mean(steady).toFixed(3)}, max ${Math.max(...steady).toFixed(3)}`);
    console.log(`    ratio first ${FIRST_PINGS} / steady state: ${ratio.toFixed(2)}x (medians of all rounds${kind === 'tuntap' ? '; target <= 1.2x' : ''});` +
      ` per round ${fixed(perRound)} (median ${median(perRound).toFixed(2)}x)`);
  }
}

export async function run(opts: BenchOptions): Promise<void> {
  const option = (name: string) => opts.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
  const only = option('only')?.split(',') ?? ['tunnels', 'first', 'cost'];
  if (only.includes('tunnels')) await tunnels(opts, option);
  if (only.includes('first')) {
    const rounds = Math.max(1, Number(option('first-rounds') ?? 5));
    // --first-control=no leaves wireguard-go's rounds out.
    const kinds: FirstKind[] = option('first-control') === 'no' ? ['tuntap'] : ['tuntap', 'wireguard-go'];
    reportFirstSeconds(await firstSeconds(rounds, kinds), rounds);
  }
  if (only.includes('cost')) cost();
}

// The tunnels part takes --kinds=K,... (tuntap, single, plain, wggo, openvpn; default all) to
// time only some of them, and --iperf-rounds=N (default 1) for N alternating iperf3 rounds per
// tunnel, each reported as its median.
const KIND_OPTIONS: Record<string, Kind> = {
  tuntap: 'tuntap', single: 'tuntap (1 process)', plain: 'no crypto', wggo: 'wireguard-go', openvpn: 'openvpn',
};

async function tunnels(opts: BenchOptions, option: (name: string) => string | undefined): Promise<void> {
  const hasOpenvpn = spawnSync('sh', ['-c', 'command -v openvpn']).status === 0;
  const all: Kind[] = ['tuntap', 'tuntap (1 process)', 'no crypto', 'wireguard-go', ...(hasOpenvpn ? ['openvpn' as const] : [])];
  const asked = option('kinds')?.split(',').map((k) => {
    const kind = KIND_OPTIONS[k];
    if (!kind) throw new Error(`--kinds: unknown kind ${k} (one of ${Object.keys(KIND_OPTIONS).join(', ')})`);
    return kind;
  });
  const kinds = asked ? all.filter((k) => asked.includes(k)) : all;
  const iperfRounds = Math.max(1, Number(option('iperf-rounds') ?? 1));
  console.log(`\n== wireguard: iperf3 TCP 1 stream through the tunnel, ${opts.durationSec} s each` +
    `${iperfRounds > 1 ? ` (median of ${iperfRounds} alternating rounds)` : ''}, two namespaces over a veth;` +
    ` ping RTT over ${ROUNDS} alternating rounds of ${PINGS}`);
  const m = await measureAll(kinds, opts.durationSec, iperfRounds);
  const mbit = (bps: number) => `${(bps / 1e6).toFixed(0)} Mbit/s`;
  const rounds = (m: Measured) => m.bpsRounds.length > 1 ? ` [${m.bpsRounds.map((b) => (b / 1e6).toFixed(0)).join(', ')}]` : '';
  const rtt = (m: Measured) => `ping RTT ${m.rttMs.toFixed(3)} ms (median ${m.rttMedianMs.toFixed(3)}; ` +
    `${(m.rttMs - m.wireRttMs).toFixed(3)} ms over the bare veth's ${m.wireRttMs.toFixed(3)})`;
  const added = (m: Measured) => m.rttMs - m.wireRttMs;
  const rows: Array<[Kind, string, string]> = [
    ['tuntap', 'tuntap ⇄ tuntap:            ', ', one process per side'],
    ['tuntap (1 process)', 'tuntap ⇄ tuntap, 1 process: ', ', both sides on one event loop'],
    ['no crypto', 'no crypto (examples/tunnel.ts):', ', the same two processes\' path, plain UDP'],
    ['wireguard-go', 'wireguard-go ⇄ wireguard-go:', ''],
    ['openvpn', 'OpenVPN AES-256-GCM:        ', ''],
  ];
  for (const [kind, label, note] of rows) {
    const r = m.get(kind);
    if (r) console.log(`  ${label} ${mbit(r.bps)}${rounds(r)}, ${rtt(r)}${note}`);
  }
  if (!hasOpenvpn && kinds === all) console.log('  OpenVPN: not installed (apt-get install openvpn) — comparison skipped');
  const ours = m.get('tuntap');
  const plain = m.get('no crypto');
  const base = m.get('wireguard-go');
  const ovpn = m.get('openvpn');
  if (ours && base) {
    console.log(`  ratio tuntap / wireguard-go: throughput ${(ours.bps / base.bps).toFixed(2)}x, RTT ${(ours.rttMs / base.rttMs).toFixed(2)}x` +
      ` (median ${(ours.rttMedianMs / base.rttMedianMs).toFixed(2)}x; added RTT ${(added(ours) / added(base)).toFixed(2)}x)`);
  }
  if (ours && ovpn) console.log(`  ratio tuntap / OpenVPN:      throughput ${(ours.bps / ovpn.bps).toFixed(2)}x, RTT ${(ours.rttMs / ovpn.rttMs).toFixed(2)}x`);
  if (ours && plain) {
    const perRound = ours.bpsRounds.length > 1 ? ` [${ours.bpsRounds.map((b, i) => (b / plain.bpsRounds[i]!).toFixed(2)).join(', ')}]` : '';
    console.log(`  ratio tuntap / no crypto:    throughput ${(ours.bps / plain.bps).toFixed(2)}x${perRound} (target >= 0.7x: crypto and protocol cost at most 30%)`);
  }
}

function cost(): void {
  // Last: its garbage must not be collected while the tunnels above are timed.
  console.log('\n== wireguard: handshake path per message, on the thread that also moves data');
  for (const [what, us] of handshakeCost()) console.log(`  ${what.padEnd(52)} ${us.toFixed(1)} us`);
  console.log('\n== wireguard: AEAD per packet (64-packet batches, native) vs one createCipheriv per packet');
  for (const size of [64, 1420]) {
    const { batchNs, openNs, perPacketNs } = aeadCost(size);
    console.log(`  ${String(size).padStart(5)} B: batch ${batchNs.toFixed(0)} ns/packet, createCipheriv ${perPacketNs.toFixed(0)} ns/packet` +
      ` (${(perPacketNs / batchNs).toFixed(1)}x; batch seals ${(size * 8 / batchNs).toFixed(2)} Gbit/s on one core); batch opens ${openNs.toFixed(0)} ns/packet`);
  }
  const sizes = [64, 1420].map((size) => [size, polyCost('lanes', size), polyCost('openssl', size)] as const);
  if (sizes.every(([, lanes, openssl]) => lanes !== undefined && openssl !== undefined)) {
    console.log('  Poly1305 alone, per message in groups of eight: lanes (AVX-512 IFMA) vs OpenSSL\'s Poly1305_Init/Update/Final');
    for (const [size, lanes, openssl] of sizes) {
      console.log(`  ${String(size).padStart(5)} B: lanes ${lanes!.toFixed(0)} ns, OpenSSL ${openssl!.toFixed(0)} ns (${(lanes! / openssl!).toFixed(2)}x)`);
    }
  }
}
