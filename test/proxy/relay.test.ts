// The relay's buffers on real TCP sockets (inside a namespace): a bulk transfer into a slow
// reader is granted more than its first allowance, never queues beyond RELAY_MAX_ALLOWANCE and
// one read, and hands its grant back when done.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { TestNet, nsExec, nsRun } from '../helpers/netns.js';

const net = new TestNet();
after(() => net.cleanup());

const relayModule = new URL('../../src/proxy/relay.ts', import.meta.url).pathname;

// producer ──▶ [a ⇄ relay ⇄ b] ──▶ slow reader. Prints what the relay queued and was granted.
const script = `
const net = require('node:net');
import(process.argv[1]).then(({ forward, RelayBudget }) => {
  const budget = new RelayBudget();
  const total = 8 * 1024 * 1024;
  let received = 0, maxQueued = 0, maxGranted = 0;
  const sink = net.createServer((s) => {
    // A slow reader: it stops and starts every 20 ms.
    const tick = setInterval(() => { if (s.isPaused()) s.resume(); else s.pause(); }, 20);
    s.on('data', (d) => { received += d.length; });
    s.on('end', () => { clearInterval(tick); s.end(); });
  }).listen(0, '127.0.0.1', () => {
    const relay = net.createServer((a) => {
      const b = net.connect(sink.address().port, '127.0.0.1', () => {
        const up = forward(a, b, budget), down = forward(b, a, budget);
        const watch = setInterval(() => { maxQueued = Math.max(maxQueued, b.writableLength); maxGranted = Math.max(maxGranted, budget.granted); }, 1);
        b.on('close', () => {
          clearInterval(watch); up(); down();
          console.log(JSON.stringify({ received, total, maxQueued, maxGranted, grantedAfter: budget.granted }));
          process.exit(0);
        });
      });
    }).listen(0, '127.0.0.1', () => {
      const producer = net.connect(relay.address().port, '127.0.0.1', () => producer.end(Buffer.alloc(total, 7)));
      producer.resume();
    });
  });
});
`;

test('relay buffers: granted on demand, bounded, handed back', async () => {
  const ns = net.namespace('pxr');
  // Small kernel socket buffers in this namespace: with loopback's defaults (megabytes) the
  // kernel could absorb the reader's pauses and the relay would never have to queue.
  for (const key of ['net.ipv4.tcp_rmem', 'net.ipv4.tcp_wmem']) nsExec(ns, 'sysctl', '-qw', `${key}=4096 16384 65536`);
  const r = await nsRun(ns, process.execPath, ['--import', 'tsx', '-e', script, relayModule], 60_000);
  assert.equal(r.code, 0, r.stderr);
  const res = JSON.parse(r.stdout) as { received: number; total: number; maxQueued: number; maxGranted: number; grantedAfter: number };
  console.log(`# ${JSON.stringify(res)}`);
  assert.equal(res.received, res.total, 'every byte arrived');
  assert.ok(res.maxGranted > 0, 'the bulk transfer was granted more than its first allowance');
  assert.ok(res.maxQueued <= 256 * 1024 + 64 * 1024, `queued at most the largest allowance and one read (${res.maxQueued})`);
  assert.equal(res.grantedAfter, 0, 'the grant came back');
});
