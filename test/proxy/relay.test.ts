// The native relay (native/relay.cc through SocketRelay) on real TCP sockets inside a namespace:
// client ⇄ [relay] ⇄ server on loopback, each scenario in its own process (relay-peer.ts).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { TestNet, nsExec, nsRun } from '../helpers/netns.js';

const net = new TestNet();
after(() => net.cleanup());

const peer = new URL('./relay-peer.ts', import.meta.url).pathname;
let ns: string | undefined;

async function run<T>(scenario: string, timeoutMs = 60_000): Promise<T> {
  if (!ns) {
    ns = net.namespace('pxr');
    nsExec(ns, 'ip', 'link', 'set', 'lo', 'up');
  }
  const r = await nsRun(ns, process.execPath, ['--import', 'tsx', peer, scenario], timeoutMs);
  assert.equal(r.code, 0, r.stderr);
  const res = JSON.parse(r.stdout) as T;
  console.log(`# ${scenario}: ${JSON.stringify(res).slice(0, 400)}`);
  return res;
}

interface End { id: number; bytesAToB: number; bytesBToA: number; failed: 'a' | 'b' | null; errno: number }

test('48 MiB each way at once arrive intact (SHA-256), and the pair ends normally', async () => {
  const r = await run<{ upOk: boolean; downOk: boolean; upLength: number; downLength: number; ends: End[] }>('bulk');
  assert.equal(r.upLength, 48 << 20);
  assert.equal(r.downLength, 48 << 20);
  assert.ok(r.upOk && r.downOk, 'hashes match');
  assert.equal(r.ends.length, 1);
  assert.deepEqual([r.ends[0]!.failed, r.ends[0]!.bytesAToB, r.ends[0]!.bytesBToA], [null, 48 << 20, 48 << 20]);
});

test('a half-close passes through in each direction, and the other direction goes on', async () => {
  const r = await run<{ clientFirst: Record<string, boolean>; serverFirst: Record<string, boolean>; ends: End[]; size: number }>('halfClose');
  assert.deepEqual(r.clientFirst, { requestOk: true, replyOk: true });
  assert.deepEqual(r.serverFirst, { greetingOk: true, uploadOk: true });
  assert.equal(r.ends.filter((e) => e.failed === null).length, 2, 'both pairs ended normally');
  assert.equal(r.size, 0);
});

test('bytes Node had read before the handover go first, in order', async () => {
  const r = await run<{ ok: boolean; length: number }>('leftover');
  assert.equal(r.length, 103_000);
  assert.ok(r.ok, 'the early bytes, then the rest, intact');
});

test('a reset from either side reaches the other side as a reset', async () => {
  const r = await run<Record<'client' | 'server', { otherSaw: string; bytes: number; end?: End }>>('reset');
  for (const who of ['client', 'server'] as const) {
    assert.equal(r[who].otherSaw, 'ECONNRESET', `${who}'s reset reached the other side`);
    assert.equal(r[who].bytes, 10_000, 'what was sent before the reset arrived');
    assert.equal(r[who].end?.failed, who === 'client' ? 'a' : 'b');
  }
});

test('a peer that stops reading: the relay holds at most one read, the sender is held back', async () => {
  const r = await run<{ written: number; relayed: number; maxHeld: number; rss: number }>('stalled');
  assert.ok(r.maxHeld <= 64 * 1024, `held ${r.maxHeld} bytes (one 64 KiB read at most)`);
  // What the kernel buffers on loopback (a few MiB) and not more: the client was stopped.
  assert.ok(r.relayed < 32 << 20, `relayed ${r.relayed} bytes to a peer that reads nothing`);
  assert.ok(r.written - r.relayed >= 0);
});

test('2000 pairs at once each carry their bytes, and every fd is closed afterwards', async () => {
  const r = await run<{ size: number; echoed: number; endsNormal: number; fdsBefore: number; fdsAfter: number }>('many', 120_000);
  assert.equal(r.size, 2000);
  assert.equal(r.echoed, 2000);
  assert.equal(r.endsNormal, 2000);
  assert.equal(r.fdsAfter, r.fdsBefore, 'fd count back where it was');
});

test('dropping pairs and closing the set close their fds and the epoll fd', async () => {
  const r = await run<{ before: number; during: number; afterDrop: number; after: number }>('fds');
  assert.ok(r.during >= r.before + 400, 'the relay holds two fds per pair');
  assert.ok(r.afterDrop <= r.during - 200, 'a dropped pair closed both of its fds');
  assert.equal(r.after, r.before);
});
