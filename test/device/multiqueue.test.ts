// IFF_MULTI_QUEUE against the real kernel: flows spread over queues and stay on theirs,
// TUNSETQUEUE detach/attach moves flows, queues run on worker threads.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { TestNet, nsExec } from '../helpers/netns.js';
import { openTun, type Queue, type QueueCounters, type TunDevice } from '../../src/device/index.js';
import { udpSourcePort } from './packets.js';
import { sendUdp } from './util.js';

const net = new TestNet();
after(() => net.cleanup());

const FLOWS = 64;
const SPORT = 41000;

function setup(queues: number): { ns: string; dev: TunDevice } {
  const ns = net.namespace('dm');
  const dev = openTun({ netns: ns, queues });
  net.configure(ns, dev.name, { addresses: ['198.18.2.1/24'], up: true });
  return { ns, dev };
}

/** Reads the given queues while `traffic` runs (and a little after); returns port → queue indexes. */
async function observe(queues: Queue[], traffic: () => Promise<void>): Promise<Map<number, Set<number>>> {
  const seen = new Map<number, Set<number>>();
  const controller = new AbortController();
  const readers = queues.map(async (q) => {
    try {
      for await (const batch of q.batches({ signal: controller.signal })) {
        for (const p of batch) {
          const port = udpSourcePort(p);
          if (port < SPORT || port >= SPORT + FLOWS) continue;
          if (!seen.has(port)) seen.set(port, new Set());
          seen.get(port)!.add(q.index);
        }
      }
    } catch (e) {
      if ((e as Error).name !== 'AbortError') throw e;
    }
  });
  await traffic();
  await new Promise((r) => setTimeout(r, 300));
  controller.abort();
  await Promise.all(readers);
  return seen;
}

test('4 queues, 64 UDP flows: several queues receive, each flow stays on one queue; detach moves flows', async () => {
  const { ns, dev } = setup(4);
  try {
    assert.equal(dev.queues.length, 4);
    const send = () => sendUdp(ns, '198.18.2.2', 9000, { flows: FLOWS, rounds: 4, sport: SPORT, gapMs: 20 });
    const seen = await observe(dev.queues, send);
    assert.equal(seen.size, FLOWS, 'every flow arrived');
    const perQueue = new Map<number, number[]>();
    for (const [port, queues] of seen) {
      assert.equal(queues.size, 1, `flow ${port} stayed on one queue (saw ${[...queues]})`);
      const q = [...queues][0]!;
      perQueue.set(q, [...(perQueue.get(q) ?? []), port]);
    }
    assert.ok(perQueue.size > 1, `more than one queue received (${perQueue.size})`);

    // Detach the busiest queue: its flows move to the attached ones, it receives nothing.
    const [busiest, itsFlows] = [...perQueue.entries()].sort((a, b) => b[1].length - a[1].length)[0]!;
    dev.queues[busiest]!.detach();
    assert.equal(dev.queues[busiest]!.attached, false);
    const after = await observe(dev.queues, send);
    assert.equal(after.size, FLOWS, 'every flow still arrives');
    for (const port of itsFlows) {
      const queues = after.get(port)!;
      assert.ok(!queues.has(busiest), `flow ${port} left the detached queue`);
      assert.equal(queues.size, 1);
    }
    // Control calls keep working through an attached queue; re-attach restores four queues.
    assert.equal(dev.iff().name, dev.name);
    dev.queues[busiest]!.attach();
    assert.throws(() => dev.queues[busiest]!.attach(), { code: 'EINVAL' });
    const again = await observe(dev.queues, send);
    const used = new Set([...again.values()].flatMap((s) => [...s]));
    assert.ok(used.size > 1);
  } finally {
    await dev.close();
  }
});

interface WorkerResult { ports: number[]; counters: QueueCounters }

const workers = new Set<Worker>();
async function terminateAll(): Promise<void> {
  await Promise.all([...workers].map((w) => w.terminate()));
  workers.clear();
}
after(terminateAll);

function runQueueInWorker(q: Queue, ms: number): { ready: Promise<void>; done: Promise<WorkerResult> } {
  const handle = q.transfer();
  const worker = new Worker(new URL('./worker-boot.mjs', import.meta.url), {
    workerData: { entry: new URL('./queue-worker.ts', import.meta.url).href, handle, ms },
  });
  workers.add(worker);
  worker.once('exit', () => workers.delete(worker));
  let onReady!: () => void;
  const ready = new Promise<void>((r) => { onReady = r; });
  const done = new Promise<WorkerResult>((resolve, reject) => {
    worker.on('message', (m: { ready?: boolean } & WorkerResult) => { if (m.ready) onReady(); else resolve(m); });
    worker.on('error', reject);
    worker.on('exit', (code) => { if (code !== 0) reject(new Error(`worker exited with ${code}`)); });
  });
  return { ready, done };
}

test('queues handed to worker threads read their flows; the device disappears after all close', async () => {
  const { ns, dev } = setup(4);
  let workers: { ready: Promise<void>; done: Promise<WorkerResult> }[] = [];
  try {
    workers = [dev.queues[2]!, dev.queues[3]!].map((q) => runQueueInWorker(q, 4000));
    assert.equal(dev.queues[2]!.transferred, true);
    await Promise.all(workers.map((w) => w.ready));
    const local = await observe([dev.queues[0]!, dev.queues[1]!],
      () => sendUdp(ns, '198.18.2.2', 9000, { flows: FLOWS, rounds: 3, sport: SPORT, gapMs: 20 }));
    const results = await Promise.all(workers.map((w) => w.done));
    const all = new Map<number, Set<string>>();
    for (const [port, qs] of local) all.set(port, new Set([...qs].map(String)));
    results.forEach((r, i) => {
      for (const port of r.ports) {
        if (port < SPORT || port >= SPORT + FLOWS) continue;
        if (!all.has(port)) all.set(port, new Set());
        all.get(port)!.add(`worker${i}`);
      }
    });
    assert.equal(all.size, FLOWS, 'every flow arrived on some thread');
    for (const [port, where] of all) assert.equal(where.size, 1, `flow ${port} on one queue`);
    const workerPackets = results.reduce((n, r) => n + r.counters.packetsRead, 0);
    assert.ok(workerPackets > 0, 'the worker queues received packets');
    assert.ok(local.size > 0, 'the main-thread queues received packets');
  } finally {
    await dev.close();
    await Promise.allSettled(workers.map((w) => w.done));
  }
  assert.doesNotMatch(nsExec(ns, 'ip', 'link'), new RegExp(`${dev.name}:`));
});

test('terminating a worker that waits on a queue releases its fd and poll handle', async () => {
  const { ns, dev } = setup(2);
  const { ready, done } = runQueueInWorker(dev.queues[1]!, 60_000);
  const settled = done.catch(() => undefined); // terminate() makes it reject
  await ready;
  await dev.close();
  assert.match(nsExec(ns, 'ip', 'link'), new RegExp(`${dev.name}:`), 'the worker still holds a queue');
  await terminateAll();
  assert.doesNotMatch(nsExec(ns, 'ip', 'link'), new RegExp(`${dev.name}:`), 'the device went away with the worker');
  await settled;
});
