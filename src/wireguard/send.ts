// The sending side (wireguard.com/protocol "Transport Data Messages"): packets from the TUN are
// routed by AllowedIPs, grouped by peer, sealed together in one native call and sent with one
// batched send per peer. A peer without a usable session has its packets staged and a handshake
// started; they go out, in order, once it completes. Keepalives are empty data messages.
import { sealBatch, paddedLength } from './aead.js';
import { MESSAGE_DATA, DATA_HEADER_SIZE, TAG_SIZE } from './constants.js';
import { Arena, EMPTY, ScratchPool, type TxGroup } from './batch.js';
import { InnerPackets } from './inner.js';
import { onAuthenticatedSent, rekeyDueSending } from './timers.js';
import type { Peer } from './peer.js';
import type { WireGuardEngine } from './engine.js';

const NO_GROUP = 0xffffffff;

type Indices = Uint32Array | readonly number[];

export class Sender {
  // Routing and grouping a TUN batch, and sealing, each with its own scratch: sealing runs inside
  // a send, and a send can re-enter through a flush.
  private readonly txScratch = new ScratchPool();
  private readonly sealScratch = new ScratchPool();
  private readonly arena = new Arena();
  private readonly ip: InnerPackets<Peer>;
  /** Numbers batches, so a peer can be marked "seen in this batch" without a Set or Map. */
  private epoch = 0;

  constructor(private readonly engine: WireGuardEngine) {
    this.ip = new InnerPackets(engine.allowedIps);
  }

  /**
   * Routes, encrypts and sends a batch of IP packets (buffer[offsets[i] .. +lengths[i]]). Packets
   * for peers without a session are staged and a handshake starts.
   */
  send(buffer: Uint8Array, offsets: Indices, lengths: Indices, count: number): void {
    const { stats, sessions, handshakes } = this.engine;
    const s = this.txScratch.acquire(count);
    try {
      const epoch = ++this.epoch;
      const { groups, groupOf, order } = s;
      let ngroups = 0;
      for (let i = 0; i < count; i++) {
        const peer = this.ip.destination(buffer, offsets[i]!, lengths[i]!);
        if (!peer) { stats.dropped.noRoute++; groupOf[i] = NO_GROUP; continue; }
        if (peer.txEpoch !== epoch) {
          peer.txEpoch = epoch;
          peer.txGroup = ngroups;
          const g = groups[ngroups] ??= { peer, kp: undefined, start: 0, count: 0 };
          g.peer = peer;
          g.count = 0;
          ngroups++;
        }
        groups[peer.txGroup]!.count++;
        groupOf[i] = peer.txGroup;
      }
      if (ngroups === 0) return;
      // Lay the packets out group by group, each group in the order its packets came.
      let at = 0;
      for (let g = 0; g < ngroups; g++) { const grp = groups[g]!; grp.start = at; at += grp.count; grp.count = 0; }
      for (let i = 0; i < count; i++) {
        const g = groupOf[i]!;
        if (g === NO_GROUP) continue;
        const grp = groups[g]!;
        order[grp.start + grp.count++] = i;
      }
      const now = this.engine.now();
      for (let g = 0; g < ngroups; g++) {
        const grp = groups[g]!;
        const peer = grp.peer;
        const kp = sessions.sendable(peer, now);
        if (!kp || peer.queue.length > 0) {
          for (let k = grp.start; k < grp.start + grp.count; k++) {
            const i = order[k]!;
            this.stage(peer, Buffer.from(buffer.subarray(offsets[i]!, offsets[i]! + lengths[i]!)));
          }
          if (kp) this.flush(peer); else handshakes.initiate(peer, false);
          grp.kp = undefined;
          continue;
        }
        grp.kp = kp;
      }
      this.sealAndSend(buffer, offsets, lengths, order, groups, ngroups);
    } finally {
      s.inUse = false;
    }
  }

  /** Sends what the peer has staged, if it has a session now. */
  flush(peer: Peer): void {
    const kp = this.engine.sessions.sendable(peer, this.engine.now());
    if (!kp || peer.queue.length === 0) return;
    const packets = peer.queue;
    peer.queue = [];
    const offsets: number[] = [];
    const lengths: number[] = [];
    let total = 0;
    for (const p of packets) { offsets.push(total); lengths.push(p.length); total += p.length; }
    const buf = Buffer.concat(packets, total);
    this.sealAndSend(buf, offsets, lengths, null, [{ peer, kp, start: 0, count: packets.length }], 1);
  }

  /** Sends an empty data message (staged behind a handshake if there is no session). */
  keepalive(peer: Peer): void {
    const kp = this.engine.sessions.sendable(peer, this.engine.now());
    if (kp && peer.queue.length === 0) {
      this.sealAndSend(EMPTY, [0], [0], null, [{ peer, kp, start: 0, count: 1 }], 1);
    } else {
      if (peer.queue.length === 0) this.stage(peer, Buffer.alloc(0));
      if (kp) this.flush(peer); else this.engine.handshakes.initiate(peer, false);
    }
  }

  private stage(peer: Peer, packet: Buffer): void {
    if (!peer.stage(packet)) this.engine.stats.dropped.queueFull++;
  }

  /**
   * Seals the packets of several peers in one native call and sends one batch per peer. Group g
   * holds packets order[start .. start+count) (order null: the indices themselves); groups
   * without a keypair are skipped.
   */
  private sealAndSend(buffer: Uint8Array, offsets: Indices, lengths: Indices, order: Uint32Array | null,
    groups: readonly TxGroup[], ngroups: number): void {
    const { stats, sessions, timers: t, mtu } = this.engine;
    let total = 0;
    let n = 0;
    for (let g = 0; g < ngroups; g++) {
      const grp = groups[g]!;
      if (!grp.kp) continue;
      for (let k = grp.start; k < grp.start + grp.count; k++) {
        total += DATA_HEADER_SIZE + paddedLength(lengths[order ? order[k]! : k]!, mtu) + TAG_SIZE;
      }
      n += grp.count;
    }
    if (n === 0) return;
    const arena = this.arena.take(total);
    const out = arena.buffer;
    const header = arena.view;
    const s = this.sealScratch.acquire(n);
    try {
      const { keyIndex, srcOffsets, srcLengths, counters, dstOffsets, dstLengths, outOffsets, outLengths } = s;
      let at = 0;
      let j = 0;
      const now = this.engine.now();
      for (let g = 0; g < ngroups; g++) {
        const grp = groups[g]!;
        const kp = grp.kp;
        if (!kp) continue;
        const slot = kp.sendSlot;
        let carriesData = false;
        for (let k = grp.start; k < grp.start + grp.count; k++) {
          const i = order ? order[k]! : k;
          const len = lengths[i]!;
          if (len > 0) carriesData = true;
          const counter = kp.sendCounter++;
          const counterLow = counter >>> 0;
          const counterHigh = Math.floor(counter / 0x1_0000_0000);
          header.setUint32(at, MESSAGE_DATA, true);
          header.setUint32(at + 4, kp.remoteIndex, true);
          header.setUint32(at + 8, counterLow, true);
          header.setUint32(at + 12, counterHigh, true);
          keyIndex[j] = slot;
          srcOffsets[j] = offsets[i]!;
          srcLengths[j] = len;
          counters[2 * j] = counterLow;
          counters[2 * j + 1] = counterHigh;
          outOffsets[j] = at;
          dstOffsets[j] = at + DATA_HEADER_SIZE;
          at += DATA_HEADER_SIZE + paddedLength(len, mtu) + TAG_SIZE;
          j++;
        }
        onAuthenticatedSent(grp.peer, now, carriesData, t);
      }
      const b = s.batch;
      b.keys = sessions.keys; b.src = buffer; b.dst = out; b.count = n;
      sealBatch(b, mtu);
      b.keys = b.src = b.dst = EMPTY;
      for (let k = 0; k < n; k++) outLengths[k] = DATA_HEADER_SIZE + dstLengths[k]!;
      j = 0;
      for (let g = 0; g < ngroups; g++) {
        const grp = groups[g]!;
        const kp = grp.kp;
        if (!kp) continue;
        const peer = grp.peer;
        const count = grp.count;
        let bytes = 0;
        for (let k = j; k < j + count; k++) {
          bytes += outLengths[k]!;
          if (srcLengths[k] === 0) stats.keepalivesSent++; else stats.dataPacketsSent++;
        }
        peer.txBytes += bytes;
        if (peer.endpoint) {
          const whole = j === 0 && count === n;
          const done = this.engine.io.send(peer.endpoint, {
            buffer: out, count,
            offsets: whole ? outOffsets : outOffsets.subarray(j, j + count),
            lengths: whole ? outLengths : outLengths.subarray(j, j + count),
          });
          if (done !== true) arena.handOver();
        } else {
          stats.dropped.noEndpoint += count;
        }
        j += count;
        if (rekeyDueSending(kp, now, t)) this.engine.handshakes.initiate(peer, false);
      }
    } finally {
      s.inUse = false;
      arena.inUse = false;
    }
  }
}
