// Forwarder benchmark (issue 2, "Performance"): iperf3 TCP between two namespaces joined only
// through TUN <-> UDP <-> TUN forwarders (MTU 1420, no crypto). Measured in one run:
//   (a) the C baseline, bench/c/forwarder.c: one read() and one send() per packet;
//   (b) the TypeScript forwarder on tuntap's device layer and UdpSocket, batched (plain);
//   (c) the same with vnet header + TSO: super-packets read from the TUN, split to MTU-size
//       segments sent as UDP GSO, received with UDP GRO, re-coalesced and written as
//       super-packets with a virtio_net_hdr, all by hand;
//   (d) examples/tunnel.ts: the same path with the offload inside the device (offload
//       'split'): the program reads and writes ordinary packets and never sees a header.
// Prints Gbit/s for each and the ratios (b)/(a), (c)/(a), (d)/(a) and (d)/(c). Targets:
// (b) >= 1.0x, (c) >= 4x, (d) >= 4x and (d)/(c) >= 0.9x.
//
//   npm run bench -- forwarder --duration 20 --only=c,plain,offload,example --rounds=3
import { existsSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import type { BenchOptions } from './run.js';
import { buildC } from './lib/cbuild.js';
import { iperfAcross, pingAcross, withForwardedPath, type ForwarderCommand } from './lib/topology.js';

const forwardScript = fileURLToPath(new URL('./lib/forward.ts', import.meta.url));
const exampleScript = fileURLToPath(new URL('../examples/tunnel.ts', import.meta.url));
const deviceLayer = fileURLToPath(new URL('../src/device/index.ts', import.meta.url));

function tsForwarder(mode: 'plain' | 'offload'): ForwarderCommand {
  return (tun, local, peer) => [process.execPath,
    ['--import', 'tsx', forwardScript, '--mode', mode, '--tun', tun, '--local', local, '--peer', peer]];
}

interface Variant { key: string; label: string; command: () => ForwarderCommand; needsDevice: boolean }

const variants: Variant[] = [
  { key: 'c', label: '(a) C forwarder, one read + one send per packet', command: () => {
    const bin = buildC('forwarder');
    return (tun, local, peer) => [bin, [tun, ...local.split(':'), ...peer.split(':')]];
  }, needsDevice: false },
  { key: 'plain', label: '(b) tuntap forwarder, batched', command: () => tsForwarder('plain'), needsDevice: true },
  { key: 'offload', label: '(c) tuntap forwarder, vnet hdr + TSO/GSO/GRO', command: () => tsForwarder('offload'), needsDevice: true },
  { key: 'example', label: "(d) examples/tunnel.ts, offload 'split' in the device", command: () => (tun, local, peer) =>
    [process.execPath, ['--import', 'tsx', exampleScript, tun, local, peer]], needsDevice: true },
];

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

/**
 * Options (after `npm run bench -- forwarder`): --duration SECONDS per iperf3 run (default 5),
 * --only=c,plain,offload,example, --rounds=N: the variants run interleaved N times (a, b, c, a, b, c, ...)
 * and the medians are compared, so load from elsewhere on the machine hits all of them alike.
 */
export async function run(opts: BenchOptions = { durationSec: 5, argv: [] }): Promise<Record<string, number>> {
  const option = (name: string) => opts.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
  const only = option('only')?.split(',') ?? variants.map((v) => v.key);
  const rounds = Math.max(1, Number(option('rounds') ?? 1));
  const selected = variants.filter((v) => only.includes(v.key));
  const samples: Record<string, number[]> = {};
  // Every process of the path shares these cores: load from elsewhere moves the figures.
  console.log(`iperf3 TCP through TUN <-> UDP <-> TUN, MTU 1420, ${opts.durationSec} s per run; ` +
    `${cpus().length} cores, load average ${loadavg()[0]!.toFixed(1)}`);
  for (let round = 1; round <= rounds; round++) {
    for (const v of selected) {
      if (v.needsDevice && !existsSync(deviceLayer)) {
        if (round === 1) console.log(`${v.label}: skipped (src/device is not there yet)`);
        continue;
      }
      const r = await withForwardedPath(v.command(), async (path) => {
        if (!(await pingAcross(path))) throw new Error(`${v.label}: ping does not cross the path\n${path.logs()}`);
        return iperfAcross(path, opts.durationSec);
      });
      const gbps = r.bitsPerSecond / 1e9;
      (samples[v.key] ??= []).push(gbps);
      const tag = rounds > 1 ? ` [round ${round}/${rounds}]` : '';
      console.log(`${v.label}: ${gbps.toFixed(3)} Gbit/s (${r.retransmits} retransmits, ${opts.durationSec} s)${tag}`);
    }
  }
  const results: Record<string, number> = {};
  for (const [key, xs] of Object.entries(samples)) results[key] = median(xs);
  if (rounds > 1) {
    for (const v of selected) {
      if (results[v.key] !== undefined) console.log(`median ${v.label}: ${results[v.key]!.toFixed(3)} Gbit/s`);
    }
  }
  const base = results.c;
  if (base !== undefined && base > 0) {
    if (results.plain !== undefined) console.log(`ratio (b)/(a): ${(results.plain / base).toFixed(2)}x  (target >= 1.0x)`);
    if (results.offload !== undefined) console.log(`ratio (c)/(a): ${(results.offload / base).toFixed(2)}x  (target >= 4x)`);
    if (results.example !== undefined) console.log(`ratio (d)/(a): ${(results.example / base).toFixed(2)}x  (target >= 4x)`);
  }
  if (results.example !== undefined && results.offload) {
    console.log(`ratio (d)/(c): ${(results.example / results.offload).toFixed(2)}x  (target >= 0.9x)`);
  }
  return results;
}
