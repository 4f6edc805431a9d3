// Shared by the l2 tests: TAPs whose netdev lives in a host namespace, MACs, iperf3 runs.
import { nsExec, nsRun, nsSpawn, uniqueName } from '../helpers/netns.js';
import { TapPort } from '../../src/l2/tap-port.js';
import { configureInterface, moveLink } from '../../src/netlink/index.js';

/** Opens a TAP in the switch namespace and moves its netdev into `host` with the given addresses. */
export function tapIntoHost(sw: string, host: string, v4: string, v6: string, opts: { offload?: boolean; mtu?: number } = {}): TapPort {
  const port = TapPort.open({ name: uniqueName('tp'), netns: sw, offload: opts.offload ?? true });
  moveLink(port.name, host, { netns: sw });
  configureInterface(port.name, {
    mtu: opts.mtu || undefined, addresses: [`${v4}/24`, { address: `${v6}/64`, nodad: true }], up: true,
  }, { netns: host });
  return port;
}

export function macOf(ns: string, dev: string): string {
  return nsExec(ns, 'cat', `/sys/class/net/${dev}/address`).trim();
}

export async function iperf(server: string, client: string, address: string, seconds = 2): Promise<number> {
  return (await iperfReport(server, client, address, seconds)).bps;
}

/** iperf3 TCP from `client` to a one-shot server on `address` in `server`: receiver bit/s and sender retransmits. */
export async function iperfReport(server: string, client: string, address: string, seconds: number): Promise<{ bps: number; retransmits: number }> {
  const srv = nsSpawn(server, 'iperf3', ['-s', '-1', '-B', address]);
  try {
    for (let i = 0; i < 50; i++) {
      const r = await nsRun(client, 'iperf3', ['-c', address, '-t', String(seconds), '-J'], (seconds + 20) * 1000);
      let report: { error?: string; end?: { sum_received?: { bits_per_second: number }; sum_sent?: { retransmits?: number } } } = {};
      try { report = JSON.parse(r.stdout); } catch { /* not JSON: judged below */ }
      const bps = report.end?.sum_received?.bits_per_second;
      if (r.code === 0 && !report.error && bps !== undefined) return { bps, retransmits: report.end?.sum_sent?.retransmits ?? 0 };
      // -J reports a refused connection (server not listening yet) in "error", sometimes with status 0.
      if (!/refused/.test(`${report.error ?? ''} ${r.stdout} ${r.stderr}`)) {
        throw new Error(`iperf3 failed (${r.code}): ${report.error ?? r.stdout.slice(-400)} ${r.stderr}`);
      }
      await new Promise((res) => setTimeout(res, 100)); // the server is still starting
    }
    throw new Error('iperf3 server never came up');
  } finally {
    srv.kill();
  }
}

