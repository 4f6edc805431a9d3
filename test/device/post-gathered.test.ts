// Queue.post's coalesced write, gathered against the kernel: two namespaces joined by this
// process, which reads each TUN (offload 'split') and post()s what it read to the other, as the
// WireGuard receiver does. post() writes the super-packets it builds from the packets' bytes
// where they lie (only headers are rebuilt), so the caller's batch is referenced during the
// call only: here the caller scribbles over its batch as soon as post() says it is free, and
// real TCP (iperf3, and random bytes echoed back and compared) must still arrive intact.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { TestNet, nsSpawn, nsRun } from '../helpers/netns.js';
import { waitForOutput } from '../helpers/wait.js';
import { openTun, type PacketBatch, type TunDevice } from '../../src/device/index.js';
import type { Batch } from '../../src/base/batch.js';
import { addAddresses, clientTraffic, startEchoServers, waitFor } from '../packet/wire.js';

const net = new TestNet();
after(() => net.cleanup());

interface Posted { packets: number; posts: number; heldByQueue: number; sample?: Batch }

// The batch's packets copied into a buffer of the test's own (the caller's batch post() sees).
function ownCopy(batch: PacketBatch, into: Buffer): Batch & { buffer: Buffer } {
  const offsets = new Uint32Array(batch.count);
  const lengths = new Uint32Array(batch.count);
  let o = 0;
  for (let i = 0; i < batch.count; i++) {
    const p = batch.packet(i);
    into.set(p, o);
    offsets[i] = o;
    lengths[i] = p.length;
    o += p.length;
  }
  return { buffer: into, offsets, lengths, count: batch.count };
}

/** Reads `from` until `signal` aborts and post()s each batch to `to`, reusing the batch's buffer at once when post() allows. */
async function forward(from: TunDevice, to: TunDevice, signal: AbortSignal, posted: Posted): Promise<void> {
  let buffer = Buffer.alloc(1 << 20);
  try {
    for await (const batch of from.batches({ signal })) {
      const mine = ownCopy(batch, buffer);
      // A batch of a bulk flow, kept to post again later.
      if (!posted.sample && mine.count >= 8) posted.sample = ownCopy(batch, Buffer.alloc(1 << 20));
      posted.packets += mine.count;
      posted.posts++;
      if (to.post(mine)) buffer.fill(0xee, 0, mine.offsets[mine.count - 1]! + mine.lengths[mine.count - 1]!);
      else { posted.heldByQueue++; buffer = Buffer.alloc(1 << 20); }  // the queue still writes from it
    }
  } catch (e) {
    if (!signal.aborted) throw e;
  }
}

test('post() on a TUN with offload writes coalesced TCP gathered: the bytes arrive intact though the caller reuses its batch at once, counted as the copying path counts',
  { timeout: 120_000 }, async () => {
    const a = net.namespace('ga');
    const b = net.namespace('gb');
    const devA = openTun({ netns: a, offload: 'split' });
    const devB = openTun({ netns: b, offload: 'split' });
    addAddresses(a, devA.name, '198.18.96.1/24', 'fd00:96::1/64');
    addAddresses(b, devB.name, '198.18.96.2/24', 'fd00:96::2/64');
    const toB: Posted = { packets: 0, posts: 0, heldByQueue: 0 };
    const toA: Posted = { packets: 0, posts: 0, heldByQueue: 0 };
    const stop = new AbortController();
    const pumps = [forward(devA, devB, stop.signal, toB), forward(devB, devA, stop.signal, toA)];
    const rxBefore = devB.stats().rxPackets;
    const server = nsSpawn(b, 'iperf3', ['-s', '-1', '-B', '198.18.96.2', '--forceflush']);
    const echo = startEchoServers(b, '198.18.96.2', 'fd00:96::2', 7311, 7312);
    try {
      await waitForOutput(server, 'Server listening', 'iperf3 -s');
      const r = await nsRun(a, 'iperf3', ['-c', '198.18.96.2', '-t', '2', '-J'], 60_000);
      assert.equal(r.code, 0, r.stderr || r.stdout.slice(0, 500));
      const report = JSON.parse(r.stdout) as { end: { sum_received: { bytes: number } } };
      assert.ok(report.end.sum_received.bytes > 10_000_000, `iperf3 moved ${report.end.sum_received.bytes} bytes`);
      await waitFor(echo, 'ready');
      const out = await clientTraffic(a, ['198.18.96.2', 'fd00:96::2'], 7311, 7312, 2_000_000);
      assert.match(out, /198\.18\.96\.2 2000000 intact/);
      assert.match(out, /fd00:96::2 2000000 intact/);
    } finally {
      stop.abort();
      await Promise.all(pumps);
    }
    const qb = devB.queues[0]!.counters;
    const rxDelta = devB.stats().rxPackets - rxBefore;
    const counted = { ...qb };
    // The kernel refusing a gathered write (a TUN that is down answers EIO): what it did not take
    // goes through the queue's own copy and is counted as rejected there, as the copying path
    // counts it; post() neither throws nor keeps the caller's bytes.
    assert.ok(toB.sample, 'a batch of 8 or more packets was read');
    devB.setUp(false);
    assert.equal(devB.post(toB.sample), true);
    toB.sample.buffer.fill(0xee);
    await new Promise((r) => setTimeout(r, 100));
    const refused = JSON.stringify({ counted, after: qb });
    assert.ok(qb.writesRejected > counted.writesRejected, `the refused rest is counted: ${refused}`);
    assert.equal(qb.writesGathered, counted.writesGathered, `nothing went gathered: ${refused}`);
    assert.equal(qb.packetsWritten, counted.packetsWritten, refused);
    assert.ok(qb.packetsCoalesced > counted.packetsCoalesced, `the batch was coalesced (so the gathered path ran): ${refused}`);
    await devA.close();
    await devB.close();
    const report = JSON.stringify({ posted: { packets: toB.packets, posts: toB.posts, heldByQueue: toB.heldByQueue }, counted, rxDelta });
    // The coalesced batches went gathered (not through the copy), and were coalesced as the copy would be.
    assert.ok(counted.superPacketsWritten > 50 && counted.packetsCoalesced > 10 * counted.superPacketsWritten, `coalesced writes: ${report}`);
    assert.ok(counted.writesGathered > 50, `gathered writes: ${report}`);
    // Every posted packet is accounted for once: written as it is or merged into a super-packet.
    assert.equal(counted.packetsWritten + counted.packetsCoalesced + counted.writesRejected, toB.packets, `packets posted and counted: ${report}`);
    assert.equal(counted.writesRejected, 0, report);
    assert.ok(counted.batchesWritten <= toB.posts && counted.batchesWritten > toB.posts - 5, `batches posted and counted: ${report}`);
    // The receiving kernel got super-packets: far fewer packets than were posted.
    assert.ok(rxDelta < toB.packets / 5, `the kernel received ${rxDelta} packets for ${toB.packets} posted: ${report}`);
    console.log(`post gathered: ${report}`);
  });
