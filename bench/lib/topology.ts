// The forwarder benchmark's topology: namespaces A and B joined by a veth (the "wire"); in each a
// TUN created by a forwarder process started in that namespace; iperf3 between the TUN addresses,
// so every byte crosses TUN A -> forwarder A -> UDP over the veth -> forwarder B -> TUN B.
//
//   nsA: veth 198.18.0.1/30, TUN 198.18.1.1 peer 198.18.1.2, iperf3 -c
//   nsB: veth 198.18.0.2/30, TUN 198.18.1.2 peer 198.18.1.1, iperf3 -s
import type { ChildProcess } from 'node:child_process';
import { TestNet, nsRun, nsSpawn } from '../../test/helpers/netns.js';

export const WIRE_A = '198.18.0.1';
export const WIRE_B = '198.18.0.2';
export const TUN_A = '198.18.1.1';
export const TUN_B = '198.18.1.2';
export const WIRE_PORT = 51820;
export const TUN_MTU = 1420;

/** How to start one forwarder: the command line for a TUN name and the outer addresses. */
export type ForwarderCommand = (tun: string, local: string, peer: string) => [string, string[]];

function waitForLine(child: ChildProcess, pattern: RegExp, what: string, timeoutMs = 20_000): Promise<RegExpMatchArray> {
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => fail(new Error(`${what}: no "${pattern.source}" within ${timeoutMs} ms; stderr: ${err.trim()}`)), timeoutMs);
    const onOut = (d: Buffer) => {
      out += d;
      const m = out.match(pattern);
      if (m) { cleanup(); resolve(m); }
    };
    const onErr = (d: Buffer) => { err += d; };
    const onExit = (code: number | null) => fail(new Error(`${what} exited (${code}) before it was ready: ${err.trim()}`));
    const cleanup = () => {
      clearTimeout(timer);
      child.stdout!.off('data', onOut);
      child.off('exit', onExit);
    };
    const fail = (e: Error) => { cleanup(); reject(e); };
    child.stdout!.on('data', onOut);
    child.stderr!.on('data', onErr);
    child.once('exit', onExit);
  });
}

export interface Path {
  nsA: string;
  nsB: string;
  forwarders: ChildProcess[];
  /** Forwarders' stderr so far (for failure reports). */
  logs(): string;
}

/**
 * Builds the topology with the given forwarder, runs `body`, then removes everything (namespaces,
 * processes) even when something fails.
 */
export async function withForwardedPath<T>(forwarder: ForwarderCommand, body: (path: Path) => Promise<T>): Promise<T> {
  const net = new TestNet();
  try {
    const nsA = net.namespace('fwa');
    const nsB = net.namespace('fwb');
    const { a, b } = net.veth(nsA, nsB);
    net.configure(nsA, a, { addresses: [`${WIRE_A}/30`] });
    net.configure(nsB, b, { addresses: [`${WIRE_B}/30`] });
    const forwarders: ChildProcess[] = [];
    let logs = '';
    const start = async (ns: string, tun: string, local: string, peer: string, mine: string, theirs: string) => {
      const [cmd, args] = forwarder(tun, `${local}:${WIRE_PORT}`, `${peer}:${WIRE_PORT}`);
      const child = nsSpawn(ns, cmd, args);
      child.stderr!.on('data', (d) => { logs += d; });
      forwarders.push(child);
      const [, name] = await waitForLine(child, /ready (\S+)/, `forwarder in ${ns}`);
      net.configure(ns, name!, { addresses: [{ address: mine, peer: theirs }], mtu: TUN_MTU, up: true });
    };
    await start(nsA, 'tfwa', WIRE_A, WIRE_B, TUN_A, TUN_B);
    await start(nsB, 'tfwb', WIRE_B, WIRE_A, TUN_B, TUN_A);
    return await body({ nsA, nsB, forwarders, logs: () => logs });
  } finally {
    net.cleanup();
  }
}

/** ping across the path; true when replies came back. */
export async function pingAcross(path: Path, count = 3): Promise<boolean> {
  const r = await nsRun(path.nsA, 'ping', ['-c', String(count), '-i', '0.2', '-W', '2', TUN_B], 15_000);
  return r.code === 0;
}

export interface IperfResult {
  /** Receiver-side goodput in bit/s. */
  bitsPerSecond: number;
  retransmits: number;
  bytes: number;
}

/** One iperf3 TCP run from A to B across the path. */
export async function iperfAcross(path: Path, seconds: number, extra: string[] = []): Promise<IperfResult> {
  const server = nsSpawn(path.nsB, 'iperf3', ['-s', '-1', '-B', TUN_B, '--forceflush']);
  try {
    await waitForLine(server, /Server listening/, 'iperf3 server');
    const r = await nsRun(path.nsA, 'iperf3',
      ['-c', TUN_B, '-B', TUN_A, '-t', String(seconds), '-J', ...extra], (seconds + 20) * 1000);
    let report: { end?: { sum_received?: { bits_per_second: number; bytes: number }; sum_sent?: { retransmits?: number } }; error?: string };
    try {
      report = JSON.parse(r.stdout);
    } catch {
      throw new Error(`iperf3 failed (${r.code}): ${r.stderr.trim() || r.stdout.slice(0, 500)}\nforwarders: ${path.logs()}`);
    }
    if (report.error || !report.end?.sum_received) throw new Error(`iperf3: ${report.error ?? 'no result'}\nforwarders: ${path.logs()}`);
    return {
      bitsPerSecond: report.end.sum_received.bits_per_second,
      bytes: report.end.sum_received.bytes,
      retransmits: report.end.sum_sent?.retransmits ?? 0,
    };
  } finally {
    if (server.exitCode === null) server.kill('SIGKILL');
  }
}
