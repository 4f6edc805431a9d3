// The receiving side: a batch of datagrams from UDP. Handshake messages go to handshake.ts at
// once; data messages (wireguard.com/protocol "Transport Data Messages") are checked against
// their session (known index, not expired, not replayed) and opened together in one native call;
// what authenticates and carries an IP packet from a source the peer may use is delivered to
// the TUN in one batch.
import { openBatch } from './aead.js';
import { MESSAGE_DATA, DATA_HEADER_SIZE, TAG_SIZE } from './constants.js';
import { Arena, EMPTY, ScratchPool, type BatchScratch, type ReceivedDatagrams } from './batch.js';
import { InnerPackets } from './inner.js';
import { onAuthenticatedReceived, onDataReceived, rekeyDueReceiving } from './timers.js';
import type { Peer } from './peer.js';
import type { WireGuardEngine } from './engine.js';

export class Receiver {
  private readonly scratch = new ScratchPool();
  private readonly arena = new Arena();
  private view: DataView = new DataView(new ArrayBuffer(0));
  private readonly ip: InnerPackets<Peer>;
  /** Numbers batches, so a peer can be marked "seen in this batch" without a Set or Map. */
  private epoch = 0;

  constructor(private readonly engine: WireGuardEngine) {
    this.ip = new InnerPackets(engine.allowedIps);
  }

  /** Processes a batch of received datagrams: handshakes at once, data messages opened in one native call. */
  receive(d: ReceivedDatagrams): void {
    const { stats, sessions, handshakes } = this.engine;
    const now = this.engine.now();
    const buf = d.buffer;
    // The socket hands over the same receive buffer every time: one view of it, kept.
    let view = this.view;
    if (view.buffer !== buf.buffer || view.byteOffset !== buf.byteOffset || view.byteLength !== buf.byteLength) {
      view = this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    }
    const s = this.scratch.acquire(d.count);
    try {
      let n = 0;
      for (let i = 0; i < d.count; i++) {
        const off = d.offsets[i]!;
        const len = d.lengths[i]!;
        if (len < 4) { stats.dropped.malformed++; continue; }
        const type = view.getUint32(off, true); // type byte + three zero reserved bytes
        if (type === MESSAGE_DATA && len >= DATA_HEADER_SIZE + TAG_SIZE) {
          const kp = sessions.entry(view.getUint32(off + 4, true))?.keypair;
          if (!kp) { stats.dropped.unknownIndex++; continue; }
          const counter = view.getUint32(off + 8, true) + view.getUint32(off + 12, true) * 0x1_0000_0000;
          if (sessions.expired(kp, counter, now)) { stats.dropped.expired++; continue; }
          if (!kp.replay.check(counter)) { stats.dropped.replay++; continue; }
          s.index[n] = i; s.keypairs[n] = kp; s.counter[n] = counter; n++;
          continue;
        }
        // Only handshake messages need a view of their own; data is opened straight from the batch.
        if (!handshakes.receive(type, buf.subarray(off, off + len), d.endpoints, d.endpointOffset(i), now)) stats.dropped.malformed++;
      }
      if (n > 0) this.openAndDeliver(d, s, n, now);
    } finally {
      for (let k = 0; k < d.count; k++) s.keypairs[k] = undefined;
      s.peers.length = 0;
      s.inUse = false;
    }
  }

  private openAndDeliver(d: ReceivedDatagrams, s: BatchScratch, n: number, now: number): void {
    const { stats, sessions, timers: t } = this.engine;
    const { keyIndex, srcOffsets, srcLengths, counters, dstOffsets, dstLengths, ok, index, counter, keypairs } = s;
    // What goes to the TUN: the delivered packets' places in the output.
    const { outOffsets: deliverOffsets, outLengths: deliverLengths } = s;
    const epoch = ++this.epoch;
    let total = 0;
    let m = 0;
    for (let k = 0; k < n; k++) {
      const kp = keypairs[k]!;
      // A handshake later in this batch may have dropped the keypair, and its key slot with it.
      if (kp.receiveSlot < 0) { stats.dropped.unknownIndex++; continue; }
      const i = index[k]!;
      const c = counter[k]!;
      index[m] = i; keypairs[m] = kp; counter[m] = c;
      keyIndex[m] = kp.receiveSlot;
      srcOffsets[m] = d.offsets[i]! + DATA_HEADER_SIZE;
      srcLengths[m] = d.lengths[i]! - DATA_HEADER_SIZE;
      counters[2 * m] = c >>> 0;
      counters[2 * m + 1] = Math.floor(c / 0x1_0000_0000);
      dstOffsets[m] = total;
      total += srcLengths[m]! - TAG_SIZE;
      m++;
    }
    if (m === 0) return;
    n = m;
    const arena = this.arena.take(total);
    try {
      const out = arena.buffer;
      const b = s.batch;
      b.keys = sessions.keys; b.src = d.buffer; b.dst = out; b.count = n;
      openBatch(b, ok);
      b.keys = b.src = b.dst = EMPTY;
      let delivered = 0;
      const touched = s.peers;
      // Datagrams split from one GRO message share one source record: its endpoint is checked once.
      let lastPeer: Peer | undefined;
      let lastRecOff = -1;
      for (let k = 0; k < n; k++) {
        const kp = keypairs[k]!;
        if (!ok[k]) { stats.dropped.authFailed++; continue; }
        if (!kp.replay.accept(counter[k]!)) { stats.dropped.replay++; continue; }
        const peer = kp.peer;
        if (kp === peer.next) this.confirm(peer);
        const i = index[k]!;
        const recOff = d.endpointOffset(i);
        if (peer !== lastPeer || recOff !== lastRecOff) {
          peer.learnEndpoint(d.endpoints, recOff);
          lastPeer = peer;
          lastRecOff = recOff;
        }
        peer.rxBytes += d.lengths[i]!;
        if (peer.rxEpoch !== epoch) { peer.rxEpoch = epoch; touched.push(peer); }
        const len = dstLengths[k]!;
        if (len === 0) { stats.keepalivesReceived++; continue; }
        const at = dstOffsets[k]!;
        const ipLen = this.ip.received(out, at, len);
        if (ipLen === 0) { stats.dropped.malformed++; continue; }
        if (this.ip.source !== peer) { stats.dropped.notAllowed++; continue; }
        stats.dataPacketsReceived++;
        onDataReceived(peer, now, t);
        deliverOffsets[delivered] = at;
        deliverLengths[delivered] = ipLen;
        delivered++;
      }
      for (const peer of touched) {
        onAuthenticatedReceived(peer, now);
        if (rekeyDueReceiving(peer, now, t)) this.engine.handshakes.initiate(peer, false);
      }
      if (delivered > 0 && this.engine.io.deliver({ buffer: out, offsets: deliverOffsets, lengths: deliverLengths, count: delivered }) !== true) {
        arena.handOver();
      }
    } finally {
      arena.inUse = false;
    }
  }

  /** The initiator sent on the session we answered: it becomes current, and ends an attempt of our own (as wireguard-go). */
  private confirm(peer: Peer): void {
    this.engine.sessions.confirm(peer);
    this.engine.handshakes.endAttempt(peer);
    this.engine.sender.flush(peer);
  }
}
