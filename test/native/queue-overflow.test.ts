// Issue #12: a queue's drain checked its room with `capacity - pos >= readSize`, which wraps once
// `pos` (rounded up to 8) passes the capacity; the next read() then writes past the buffer. The
// reproduction from the issue runs in a child process so that a crash is seen as one: a TUN with
// packet info, readSize 9000, batchSize 3, and packets of 6148, 9500 and 9500 bytes.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { TestNet, nsExec } from '../helpers/netns.js';
import { waitForOutput } from '../helpers/wait.js';
import { sendUdp } from '../device/util.js';

const net = new TestNet();
after(() => net.cleanup());

const child = fileURLToPath(new URL('./queue-overflow-child.ts', import.meta.url));

interface BatchLine { bufferLength: number; packets: { offset: number; length: number; stripped: boolean }[] }

test('a drain that fills its buffer unevenly stays inside it (6148 + 9500 + 9500 bytes, readSize 9000, batch 3)', async () => {
  const ns = net.namespace('qo');
  // No IPv6 on the TUN: router solicitations and MLD reports would queue before our packets.
  nsExec(ns, 'sysctl', '-qw', 'net.ipv6.conf.default.disable_ipv6=1');
  const proc = spawn(process.execPath, ['--import', 'tsx', child, ns], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (d) => { stdout += d; });
  proc.stderr.on('data', (d) => { stderr += d; });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.once('exit', (code, signal) => resolve({ code, signal })));
  try {
    await waitForOutput(proc, /ready (\S+)/, 'the reader child', { timeoutMs: 20_000 });
    // IP packets of 6148, 9500 and 9500 bytes (20 IP + 8 UDP + payload), queued in this order.
    for (const size of [6148, 9500, 9500]) await sendUdp(ns, '198.18.77.2', 9, { size: size - 28 });
    proc.stdin.write('go\n');
    const { code, signal } = await exited;
    assert.equal(signal, null, `the reader died of ${signal}: ${stderr}`);
    assert.equal(code, 0, `the reader failed: ${stderr}`);
  } finally {
    proc.kill('SIGKILL');
  }
  const batches = stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as BatchLine);
  const packets = batches.flatMap((b) => b.packets.map((p) => ({ ...p, bufferLength: b.bufferLength })));
  assert.equal(packets.length, 3, stdout);
  for (const p of packets) {
    assert.ok(p.offset + p.length <= p.bufferLength, `packet at ${p.offset}+${p.length} lies past the ${p.bufferLength}-byte buffer`);
  }
  assert.equal(packets[0]!.length, 6148);
  assert.equal(packets[0]!.stripped, false);
  // The 9500-byte packets do not fit the read size: the kernel cuts them and says so.
  assert.ok(packets.slice(1).every((p) => p.stripped && p.length < 9500 && p.length >= 9000), JSON.stringify(packets));
  assert.match(stdout, /done/);
});
