// Attacks on tun2socks / tun2http, each mounted against the real `tuntap socks|http` process in
// the namespaces of topology.ts.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { nsRun, nsSpawn } from '../helpers/netns.js';
import { waitForOutput } from '../helpers/wait.js';
import { ProxyTopology, SERVER4, PROXY4 } from './topology.js';

let t: ProxyTopology;

before(async () => {
  t = new ProxyTopology();
  await t.startServers();
});
after(() => t?.cleanup());

// Opens n connections to the echo server and holds them; prints how many echoed a byte, then
// closes them all when stdin ends.
const holdScript = `
const net = require('node:net');
const n = Number(process.argv[1]), host = process.argv[2];
let echoed = 0, failed = 0, settled = 0;
const socks = [];
const settle = () => { if (++settled === n) console.log(JSON.stringify({ echoed, failed })); };
for (let i = 0; i < n; i++) {
  const s = net.connect({ host, port: 7000 });
  socks.push(s);
  let done = false;
  const finish = (ok) => { if (done) return; done = true; if (ok) echoed++; else failed++; settle(); };
  s.on('connect', () => s.write('x'));
  s.on('data', () => finish(true));
  s.on('error', () => finish(false));
  s.on('close', () => finish(false));
  s.setTimeout(8000, () => finish(false));
}
process.stdin.on('end', () => { for (const s of socks) s.destroy(); process.exit(0); });
process.stdin.resume();
`;

test('out of file descriptors: the service stays up, counts the failures by errno, and warned at start', async () => {
  const dante = await t.startDante(1087);
  try {
    // 1,024 descriptors hold about 480 proxied connections; 1,500 are attempted.
    await t.withTuntap('socks', ['--proxy', `socks5://${PROXY4}:1087`, '--route'], async (p) => {
      const holder = nsSpawn(t.app, process.execPath, ['-e', holdScript, '1500', SERVER4], { stdio: ['pipe', 'pipe', 'pipe'] });
      let held: { echoed: number; failed: number };
      try {
        held = JSON.parse((await waitForOutput(holder, /\{.*\}/, 'holder', { timeoutMs: 60_000 }))[0]) as typeof held;
        // Stats lines keep coming while every descriptor is in use.
        const lines = p.stdout.length;
        await p.waitStats(() => p.stdout.length > lines + 1);
        console.log(`# 1500 connections against 1024 descriptors: ${JSON.stringify(held)}`);
        const s = await p.waitStats((x) => x.connectionsFailed > 0);
        const failures = s.failures as unknown as Record<string, Record<string, number>>;
        console.log(`# failures: ${JSON.stringify(failures)}`);
        assert.ok((failures.accept!.EMFILE ?? 0) + (failures.connect!.EMFILE ?? 0) > 0, JSON.stringify(failures));
        assert.ok(held.echoed >= 300, 'the connections that fit work');
        assert.ok(held.failed > 0);
      } finally {
        holder.stdin!.end();
      }
      await p.waitStats((x) => x.sessions === 0, 30_000);
      assert.match(p.stderr(), /20000 sessions need up to \d+ file descriptors but the limit is 1024/);
      assert.match(p.stderr(), /closed before it could be accepted \(accept: EMFILE\) \(out of file descriptors/);
      // A thousand failures, a few lines: the rest is summarized.
      assert.match(p.stderr(), /more failures not shown: accept EMFILE ×\d+/);
      assert.ok(p.stderr().split('\n').length < 50, p.stderr());
      // And it serves again.
      const r = await nsRun(t.app, 'curl', ['-sS', '-m', '10', `http://${SERVER4}:8080/`], 20_000);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(p.child.exitCode, null, 'still running');
    }, { wrapper: ['prlimit', '--nofile=1024:1024'] });
  } finally {
    dante.child.kill('SIGTERM');
  }
});

test('the soft open-files limit is raised to the hard one at start', async () => {
  await t.withTuntap('socks', ['--proxy', `socks5://${PROXY4}:1081`], async (p) => {
    const limits = readFileSync(`/proc/${p.child.pid}/limits`, 'utf8');
    assert.match(limits, /^Max open files\s+4096\s+4096\s/m);
  }, { wrapper: ['prlimit', '--nofile=512:4096'] });
});

