// End-to-end check of the benchmark's TypeScript forwarders (not a timed test): two namespaces
// joined only through TUN <-> UdpSocket <-> TUN forwarders carry ping and a short iperf3 TCP
// run, in plain mode, with vnet header + TSO/GSO/GRO by hand, and as examples/tunnel.ts (the
// same offloads inside the device).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { iperfAcross, pingAcross, withForwardedPath, type ForwarderCommand } from '../../bench/lib/topology.js';

const forwardScript = fileURLToPath(new URL('../../bench/lib/forward.ts', import.meta.url));
const forwarder = (mode: string): ForwarderCommand => (tun, local, peer) =>
  [process.execPath, ['--import', 'tsx', forwardScript, '--mode', mode, '--tun', tun, '--local', local, '--peer', peer]];

const example: ForwarderCommand = (tun, local, peer) =>
  [process.execPath, ['--import', 'tsx', fileURLToPath(new URL('../../examples/tunnel.ts', import.meta.url)), tun, local, peer]];

for (const mode of ['plain', 'offload', 'example']) {
  test(`${mode} forwarder carries ping and iperf3 between two namespaces`, { timeout: 30_000 }, async () => {
    await withForwardedPath(mode === 'example' ? example : forwarder(mode), async (path) => {
      assert.ok(await pingAcross(path), `ping across the ${mode} forwarder failed: ${path.logs()}`);
      const r = await iperfAcross(path, 1);
      // Every byte crossed both forwarders; a broken split/coalesce shows as a stall (no bytes).
      assert.ok(r.bytes > 1_000_000, `iperf3 moved only ${r.bytes} bytes`);
      for (const f of path.forwarders) assert.equal(f.exitCode, null, `a forwarder died: ${path.logs()}`);
    });
  });
}
