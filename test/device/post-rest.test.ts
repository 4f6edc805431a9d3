// Queue.post's gathered write when the kernel takes only part of it: the rest (joined into the
// queue's own buffer, since the caller's bytes are free once post() returns) is written later,
// when the fd is writable, byte-exact and in order, and counted once.
//
// Provoking EAGAIN mid-batch. A TUN/TAP write allocates its skb charged to the fd's socket and
// fails with EAGAIN while the socket's unfreed skbs reach its sndbuf (tun_get_user ->
// sock_alloc_send_pskb, noblock). A TUN write rarely gets there: ip_rcv orphans the skb (frees the
// charge) during the write itself. A TAP frame that a bridge forwards never reaches ip_rcv: it
// stays charged until a port transmits it. So: TAP `src` (offload 'split', the queue under test)
// and TAP `dst` (the far side, read by this process) are ports of one bridge, `dst` transmits
// through a token bucket, and `src`'s sndbuf (TUNSETSNDBUF) is under one super-frame. The first
// super-frame passes on the bucket's burst; the second waits in the qdisc ~75 ms, still charged;
// the third write answers EAGAIN, and the skb's free (sock_wfree -> write space) makes the fd
// writable again. Every later super-frame waits its turn the same way. Measured without the
// bucket: the kernel takes the whole batch at once.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { TestNet, nsExec } from '../helpers/netns.js';
import { openTap, type TunDevice } from '../../src/device/index.js';
import type { Batch } from '../../src/base/batch.js';
import { parseTcp4, tcp4, TCP } from './packets.js';

const net = new TestNet();
after(() => net.cleanup());

const SRC_MAC = [0x02, 0, 0x52, 0, 0, 0x01];
/** Unknown to the bridge (not a port's own address): flooded out of the other port, `dst`. */
const DST_MAC = [0x02, 0, 0x52, 0, 0, 0x02];
const SPORT = 40_000, DPORT = 5001, FIRST_SEQ = 0xfff0_0000;  // the sequence wraps inside the stream
const MSS = 1400;

/** The stream's byte at `offset`: position-dependent, so a lost, repeated or moved segment shows. */
function streamByte(offset: number): number {
  return (offset * 7 + (offset >>> 8) * 13 + (offset >>> 16)) & 0xff;
}

/** `count` full TCP segments of one flow from stream offset `from`, as Ethernet frames in one buffer of their own. */
function segments(from: number, count: number): Batch & { buffer: Buffer } {
  const frames: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const at = from + i * MSS;
    const payload = new Uint8Array(MSS);
    for (let k = 0; k < MSS; k++) payload[k] = streamByte(at + k);
    const ip = tcp4({ src: '198.18.52.1', dst: '198.18.52.2', sport: SPORT, dport: DPORT,
      seq: (FIRST_SEQ + at) >>> 0, ack: 1, flags: TCP.ACK, payload });
    frames.push(Buffer.concat([Buffer.from(DST_MAC), Buffer.from(SRC_MAC), Buffer.from([0x08, 0x00]), ip]));
  }
  const buffer = Buffer.concat(frames);
  const offsets = new Uint32Array(count);
  const lengths = new Uint32Array(count);
  let o = 0;
  frames.forEach((f, i) => { offsets[i] = o; lengths[i] = f.length; o += f.length; });
  return { buffer, offsets, lengths, count };
}

/** What the far side saw of the flow: the stream bytes in arrival order, and anything wrong. */
interface Received { bytes: number; segments: number; problems: string[] }

/** Reads `dst` until `signal` aborts, checking each of the flow's segments against the stream. */
async function receive(dst: TunDevice, signal: AbortSignal, got: Received, expect: number, done: () => void): Promise<void> {
  try {
    for await (const batch of dst.batches({ signal })) {
      for (const frame of batch) {
        if (frame.length < 14 || frame[12] !== 0x08 || frame[13] !== 0x00) continue;  // the bridge's own chatter
        const t = parseTcp4(frame.subarray(14));
        if (!t || t.sport !== SPORT || t.dport !== DPORT) continue;
        const at = (t.seq - FIRST_SEQ) >>> 0;
        if (at !== got.bytes) got.problems.push(`segment at stream offset ${at} arrived when ${got.bytes} was next`);
        const payload = frame.subarray(14 + t.headerLength, 14 + t.headerLength + t.payloadLength);
        for (let k = 0; k < payload.length; k++) {
          if (payload[k] !== streamByte(at + k)) { got.problems.push(`byte ${at + k} is ${payload[k]}, not ${streamByte(at + k)}`); break; }
        }
        got.bytes = at + t.payloadLength;
        got.segments++;
        if (got.bytes >= expect) done();
      }
    }
  } catch (e) {
    if (!signal.aborted) throw e;
  }
}

test('post() that the kernel takes only part of (EAGAIN mid-batch) writes the rest later from its own copy: byte-exact, in order, counted once',
  { timeout: 60_000 }, async () => {
    const ns = net.namespace('pr');
    // No IPv6 on the devices: no router solicitations or MLD reports among the frames read. No
    // iptables hooks on bridged frames: with them (the default here) a frame leaves the bridge
    // uncharged, so the socket never fills (measured: every write taken at once).
    nsExec(ns, 'sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1',
      'net.bridge.bridge-nf-call-iptables=0');
    const src = openTap({ netns: ns, offload: 'split' });
    const dst = openTap({ netns: ns, offload: 'split' });
    const stop = new AbortController();
    let receiving: Promise<void> = Promise.resolve();
    try {
      // tuntap has no bridge or qdisc API: ip and tc make them.
      const br = `${src.name.slice(0, 10)}br`;
      nsExec(ns, 'ip', 'link', 'add', br, 'type', 'bridge');
      for (const port of [src.name, dst.name]) nsExec(ns, 'ip', 'link', 'set', port, 'master', br, 'up');
      nsExec(ns, 'ip', 'link', 'set', br, 'up');
      // 5 Mbit/s, bucket 80 KiB: the first super-frame passes at once, the next waits ~75 ms (held,
      // charged); larger than a super-frame, so the qdisc never re-segments one.
      nsExec(ns, 'tc', 'qdisc', 'replace', 'dev', dst.name, 'root', 'tbf', 'rate', '5mbit', 'burst', '80kb', 'limit', '4mb');
      // Under one super-frame (~64 KiB of payload, more in truesize): one charged frame fills it.
      src.setSndbuf(32 * 1024);

      const first = segments(0, 230);           // 5 super-frames of 46 segments
      // 2 more, posted while the first batch's rest waits: they must queue behind it (order), and
      // their coalesced copy must not reuse the buffer the rest was joined into.
      const second = segments(230 * MSS, 92);
      const total = (first.count + second.count) * MSS;
      const got: Received = { bytes: 0, segments: 0, problems: [] };
      let arrived!: () => void;
      const allArrived = new Promise<void>((r) => { arrived = r; });
      receiving = receive(dst, stop.signal, got, total, arrived);

      const q = src.queues[0]!.counters;
      assert.equal(src.post(first), true, 'post() keeps nothing of the caller\'s');
      first.buffer.fill(0xee);  // the caller reuses its batch at once
      const afterFirst = { ...q };
      assert.equal(afterFirst.writesGathered, 1, `the batch went gathered: ${JSON.stringify(afterFirst)}`);
      assert.ok(afterFirst.packetsWritten > 0 && afterFirst.packetsWritten + afterFirst.packetsCoalesced < first.count,
        `the kernel took part of the batch, not all of it: ${JSON.stringify(afterFirst)}`);
      assert.ok(afterFirst.writeWaits > 0, `the rest waits for writability: ${JSON.stringify(afterFirst)}`);

      assert.equal(src.post(second), true, 'post() behind a pending rest copies, keeping nothing of the caller\'s');
      second.buffer.fill(0xee);

      const timeout = setTimeout(arrived, 20_000);
      await allArrived;
      clearTimeout(timeout);
      await new Promise((r) => setTimeout(r, 100));  // a segment written twice would arrive by now
      const seen = { bytes: got.bytes, segments: got.segments, problems: got.problems.slice(0, 5) };
      const report = JSON.stringify({ takenAtOnce: afterFirst.packetsWritten, got: seen, counters: q });
      assert.deepEqual(got.problems, [], report);
      assert.equal(got.bytes, total, `every byte arrived: ${report}`);
      assert.equal(got.segments, first.count + second.count, `each segment exactly once: ${report}`);
      // Both batches finished; every posted packet counted once, written or merged into a super-frame.
      assert.equal(q.batchesWritten, 2, report);
      assert.equal(q.writesRejected, 0, report);
      assert.equal(q.packetsWritten + q.packetsCoalesced, first.count + second.count, `packets posted and counted: ${report}`);
      assert.equal(q.packetsWritten, q.superPacketsWritten, `each write a super-frame: ${report}`);
      console.log(`post rest: ${report}`);
    } finally {
      stop.abort();
      await receiving;
      await src.close();
      await dst.close();
    }
  });
