// The two-host VPN demo runs end to end and leaves nothing behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { runVpnDemo } from '../../src/wireguard/demo.js';

test('tuntap wg demo: ping v4/v6 and a throughput run through the tunnel, then cleanup', async () => {
  const lines: string[] = [];
  // Other tests' interfaces may come and go meanwhile: only sockets the demo added count.
  const sockets = () => { try { return readdirSync('/var/run/wireguard'); } catch { return []; } };
  const socketsBefore = new Set(sockets());
  const code = await runVpnDemo({ seconds: 1, log: (l) => lines.push(l) });
  const out = lines.join('\n');
  assert.equal(code, 0, out);
  assert.equal(out.match(/3 packets transmitted, 3 received/g)?.length, 2, out);
  const avg = Number(/average (\d+) Mbit\/s/.exec(out)?.[1]);
  assert.ok(avg > 10, out);
  assert.match(out, /cleaned up/);
  assert.deepEqual(sockets().filter((s) => !socketsBefore.has(s)), [], 'UAPI sockets left by the demo');
});
