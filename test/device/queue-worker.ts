// Runs one device queue on a worker thread: reads for `ms`, reports each packet's UDP source
// port to the parent, then closes the queue (which owns the fd here).
import { parentPort, workerData } from 'node:worker_threads';
import { Queue, type QueueHandle } from '../../src/device/index.js';
import { udpSourcePort } from './packets.js';

const { handle, ms } = workerData as { handle: QueueHandle; ms: number };
const queue = Queue.fromHandle(handle);
const ports: number[] = [];
const signal = AbortSignal.timeout(ms);
parentPort!.postMessage({ ready: true });
try {
  for await (const batch of queue.batches({ signal })) {
    for (const p of batch) {
      const port = udpSourcePort(p);
      if (port >= 0) ports.push(port);
    }
  }
} catch (e) {
  if ((e as Error).name !== 'TimeoutError') throw e;
}
await queue.close();
parentPort!.postMessage({ ports, counters: queue.counters });
