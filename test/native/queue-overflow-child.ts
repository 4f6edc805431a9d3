// Child of queue-overflow.test.ts: opens the TUN of issue #12 (packet info, readSize 9000,
// batchSize 3) in the namespace named by argv[2], prints "ready NAME", waits for a line on stdin
// (the parent has queued the packets by then), drains the queue and prints one JSON line per
// batch. A heap overflow in the native drain shows as a crash (or, under ASan, a report) here.
import { createInterface } from 'node:readline';
import { openTun } from '../../src/device/index.js';
import { configureInterface } from '../../src/netlink/index.js';

const ns = process.argv[2]!;
const dev = openTun({ netns: ns, packetInfo: true, readSize: 9000, batchSize: 3 });
configureInterface(dev.name, { mtu: 9500, addresses: ['198.18.77.1/24'], up: true }, { netns: ns });
process.stdout.write(`ready ${dev.name}\n`);

const lines = createInterface({ input: process.stdin });
await new Promise<void>((resolve) => lines.once('line', () => resolve()));
lines.close();

const q = dev.queues[0]!;
let seen = 0;
while (seen < 3) {
  const batch = await q.readBatch({ signal: AbortSignal.timeout(5000) });
  if (!batch) break;
  const packets = [];
  for (let i = 0; i < batch.count; i++) {
    packets.push({ offset: batch.offsets[i], length: batch.lengths[i], stripped: batch.info(i)!.stripped });
  }
  seen += batch.count;
  process.stdout.write(`${JSON.stringify({ bufferLength: batch.buffer.length, packets })}\n`);
}
// Heap churn: a corrupted malloc heap usually aborts here if it did not already.
let keep: Buffer[] = [];
for (let i = 0; i < 2000; i++) keep.push(Buffer.allocUnsafeSlow(1024 + (i % 64) * 256));
keep = [];
await dev.close();
process.stdout.write('done\n');
