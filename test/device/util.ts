// Shared test plumbing for the device tests.
import { nsRun } from '../helpers/netns.js';
import type { Queue, TunDevice } from '../../src/device/index.js';

/** Reads everything arriving on a queue for `ms` milliseconds (copies, since batches are reused). */
export async function collect(source: Queue | TunDevice, ms: number, keep: (p: Buffer) => boolean = () => true): Promise<Buffer[]> {
  const out: Buffer[] = [];
  const signal = AbortSignal.timeout(ms);
  try {
    for (;;) {
      const batch = await source.readBatch({ signal });
      if (!batch) break;
      for (let i = 0; i < batch.count; i++) {
        const p = batch.packet(i);
        if (keep(p)) out.push(Buffer.from(p));
      }
    }
  } catch (e) {
    if ((e as Error).name !== 'TimeoutError' && (e as Error).name !== 'AbortError') throw e;
  }
  return out;
}

/**
 * Runs the senders one after another, then reads what they queued on the device. Nothing reads a
 * device until asked, so the frames wait in its kernel queue: a slow sender (a loaded machine,
 * the ASan build) cannot miss a collection window running beside it.
 */
export async function afterSending(source: Queue | TunDevice, keep: (p: Buffer) => boolean,
  ...senders: (() => Promise<unknown>)[]): Promise<Buffer[]> {
  for (const send of senders) await send();
  return collect(source, 300, keep);
}

/**
 * Sends UDP datagrams from inside `ns` with a node child: `rounds` datagrams from each of
 * `flows` source ports (base port `sport`), to dst:dport.
 */
export async function sendUdp(ns: string, dst: string, dport: number, opts: { flows?: number; rounds?: number; sport?: number; size?: number; gapMs?: number } = {}): Promise<void> {
  const { flows = 1, rounds = 1, sport = 40000, size = 32, gapMs = 0 } = opts;
  const script = `
const dgram = require('node:dgram');
const [dst, dport, flows, rounds, sport, size, gap] = process.argv.slice(1).map((v, i) => i === 0 ? v : Number(v));
const sockets = [];
let bound = 0;
for (let f = 0; f < flows; f++) {
  const s = dgram.createSocket('udp4');
  s.bind(sport + f, () => { if (++bound === flows) go(); });
  sockets.push(s);
}
async function go() {
  const payload = Buffer.alloc(size, 0x61);
  for (let r = 0; r < rounds; r++) {
    await Promise.all(sockets.map((s) => new Promise((res) => s.send(payload, dport, dst, res))));
    if (gap) await new Promise((res) => setTimeout(res, gap));
  }
  sockets.forEach((s) => s.close());
}`;
  const r = await nsRun(ns, process.execPath, ['-e', script, dst, String(dport), String(flows), String(rounds), String(sport), String(size), String(gapMs)]);
  if (r.code !== 0) throw new Error(`udp sender failed: ${r.stderr}`);
}
