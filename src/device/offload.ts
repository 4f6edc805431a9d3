// Offload inside the device (a queue opened with offload 'split'): what the kernel hands over as
// TSO/USO super-packets with a virtio_net_hdr is split into ordinary MTU-sized packets with
// their checksums complete, and what the program writes is coalesced into super-packets with
// the header built. Both sides work on whole batches in memory the queue owns, so the program
// sees ordinary packets, batch in and batch out, and the kernel handles one packet per ~45.
import { BatchBuffer, type Batch } from '../base/batch.js';
import { completePartialChecksum } from '../base/checksum.js';
import { DeferredChecksums } from '../base/checksum-batch.js';
import { GroCoalescer, type GroPieces, type GroResult } from '../base/gro.js';
import { ipOffsetOfFrame, newSplitPlan, planSplit, splitInto } from '../base/gso.js';
import { u16, u16le } from '../base/bytes.js';
import { GsoType, readVnetHdr, VIRTIO_NET_HDR_F, type VirtioNetHdr } from '../base/vnet.js';
import { checksumRanges } from '../native.js';

/** A TAP's link header before the IP header, for coalescing (untagged frames only merge). */
const ETHERNET_HEADER = 14;

export interface SplitCounters {
  /** Super-packets split into MTU-sized packets. */
  superPacketsRead: number;
  /** Read packets dropped because their virtio_net_hdr and their bytes disagree. */
  offloadDrops: number;
}

/**
 * The read side: turns a drained batch (each packet behind its virtio_net_hdr, in `raw`) into
 * batches of ordinary packets. Packets that need nothing stay where they were read; a partial
 * checksum is completed in place; super-packets are split into the split area that follows the
 * read area in the same buffer, so one batch can point into both. When the split area fills up
 * the rest of the drain waits for the next call (next() while `pending`).
 */
export class Splitter {
  readonly out: BatchBuffer;
  #next = 0;
  #count = 0;
  readonly #hdr: VirtioNetHdr = { flags: 0, gsoType: 0, hdrLen: 0, gsoSize: 0, csumStart: 0, csumOffset: 0 };
  readonly #plan = newSplitPlan();
  // The split segments' transport checksums, summed natively in one call per batch: a JS sum per
  // 1.4 KB segment was the biggest cost of a split (~14% of a busy WireGuard sender).
  readonly #checksums = new DeferredChecksums();
  // The drained batch's arrays and the layout, copied out of the objects that hold them: next()
  // then reads fields of this class only, whichever object (a queue, the warm-up) made it, so
  // code optimized for one maker is not thrown away when the other runs it.
  readonly #rawOffsets: Uint32Array;
  readonly #rawLengths: Uint32Array;
  readonly #headerSize: number;
  readonly #littleEndian: boolean;
  readonly #tap: boolean;

  /**
   * `arena` holds the read area [0, splitFrom) and the split area [splitFrom, arena.length);
   * `raw` is the drained batch (offsets point after each header of `vnetHdrSize` bytes); its
   * arrays are read in place, so they must be the ones every drain fills.
   */
  constructor(
    arena: Buffer,
    private readonly splitFrom: number,
    slots: number,
    raw: { readonly offsets: Uint32Array; readonly lengths: Uint32Array },
    layout: { readonly vnetHdrSize: number; readonly vnetLittleEndian: boolean; readonly mode: 'tun' | 'tap' },
    private readonly counters: SplitCounters,
  ) {
    this.out = new BatchBuffer(arena, new Uint32Array(slots), new Uint32Array(slots));
    this.#rawOffsets = raw.offsets;
    this.#rawLengths = raw.lengths;
    this.#headerSize = layout.vnetHdrSize;
    this.#littleEndian = layout.vnetLittleEndian;
    this.#tap = layout.mode === 'tap';
  }

  /** Raw packets of the last drain not yet handed out. */
  get pending(): boolean { return this.#next < this.#count; }

  /** Takes a drain of `count` raw packets (any not handed out from the previous one are gone). */
  load(count: number): void {
    this.#next = 0;
    this.#count = count;
  }

  /**
   * The next batch of ordinary packets from the pending raw ones; its count is 0 only when
   * every pending packet was dropped. Valid until the next call or the next drain.
   */
  next(): BatchBuffer {
    const out = this.out;
    out.reset();
    const buf = out.buffer;
    const offsets = this.#rawOffsets, lengths = this.#rawLengths;
    const hs = this.#headerSize;
    const le = this.#littleEndian;
    const tap = this.#tap;
    const room = buf.length - this.splitFrom;
    let at = this.splitFrom;
    while (this.#next < this.#count) {
      if (out.count === out.slots) break;
      const i = this.#next;
      const off = offsets[i]!, len = lengths[i]!;
      const h = off - hs;
      const gsoType = buf[h + 1]! & ~GsoType.ECN;
      if (gsoType === GsoType.NONE) {
        this.#next++;
        if ((buf[h]! & VIRTIO_NET_HDR_F.NEEDS_CSUM) !== 0) {
          const start = le ? u16le(buf, h + 6) : u16(buf, h + 6);
          const field = le ? u16le(buf, h + 8) : u16(buf, h + 8);
          if (start + field + 2 > len) { this.counters.offloadDrops++; continue; }
          completePartialChecksum(buf, start, field, off, off + len);
        }
        out.push(off, len);
        continue;
      }
      const pkt = buf.subarray(off, off + len);
      const hdr = readVnetHdr(this.#hdr, buf, h, le);
      let plan;
      try {
        plan = planSplit(pkt, hdr, tap ? ipOffsetOfFrame(pkt) : 0, this.#plan);
      } catch {
        this.#next++;
        this.counters.offloadDrops++;
        continue;
      }
      // One that could never fit (a tiny gso_size) is dropped; one that does not fit now waits.
      if (plan.bytes > room || plan.count > out.slots) { this.#next++; this.counters.offloadDrops++; continue; }
      if (plan.bytes > buf.length - at || plan.count > out.slots - out.count) break;
      this.#next++;
      at += splitInto(pkt, plan, out, at, 0, this.#checksums);
      this.counters.superPacketsRead++;
    }
    this.#checksums.finish(buf, checksumRanges);
    return out;
  }
}

/**
 * The write side: plans a batch of ordinary packets into super-packets and, when any merge,
 * writes the result (each behind its virtio_net_hdr) into an output buffer of its own. A write
 * that has to finish later keeps that buffer (hold()); batches coalesced before it settles get a
 * fresh one, and once it has, the buffer serves again.
 */
export class Coalescer {
  readonly #gro: GroCoalescer;
  readonly #headerSize: number;
  #out = new Uint8Array(0);
  #held = false;
  #headers = new Uint8Array(0);
  #restOffsets = new Uint32Array(0);
  #restLengths = new Uint32Array(0);

  constructor(opts: { mode: 'tun' | 'tap'; headerSize: number; littleEndian: boolean; verifyChecksums: boolean; udp: boolean }) {
    this.#headerSize = opts.headerSize;
    this.#gro = new GroCoalescer({
      linkHeader: opts.mode === 'tap' ? ETHERNET_HEADER : 0, headerSize: opts.headerSize, littleEndian: opts.littleEndian,
      verifyChecksums: opts.verifyChecksums, udp: opts.udp,
    });
  }

  /** The super-packets (headers in place) for `batch`, or null when nothing merges. */
  coalesce(batch: Batch): GroResult | null {
    if (batch.count < 2 || this.#gro.plan(batch) === 0) return null;
    return this.#gro.emit(this.#room(GroCoalescer.batchOutputBound(batch, this.#headerSize)));
  }

  /**
   * The super-packets for `batch` as pieces to write gathered (headers rebuilt in a buffer of
   * the coalescer's, payloads where they lie in the batch), or null when nothing merges or the
   * packets lie in too many buffers. The pieces are valid until the next call.
   */
  coalescePieces(batch: Batch): GroPieces | null {
    if (batch.count < 2 || this.#gro.plan(batch) === 0) return null;
    const bound = GroCoalescer.piecesHeaderBound(batch.count, this.#headerSize);
    if (this.#headers.length < bound) this.#headers = new Uint8Array(Math.max(bound, this.#headers.length * 2));
    return this.#gro.emitPieces(this.#headers);
  }

  /**
   * Outputs [from, p.count) of coalescePieces' result joined into a buffer of the coalescer's
   * own (what a write the kernel took only part of still has to send): no re-planning, and the
   * batch's bytes are free once this returns.
   */
  joinRest(p: GroPieces, from: number): Batch {
    const { sources, pieces, ends } = p;
    const count = p.count - from;
    if (this.#restOffsets.length < count) { this.#restOffsets = new Uint32Array(count * 2); this.#restLengths = new Uint32Array(count * 2); }
    let need = 0;
    for (let k = from === 0 ? 0 : ends[from - 1]!; k < ends[p.count - 1]!; k++) need += pieces[3 * k + 2]!;
    const out = this.#room(need);
    let o = 0;
    for (let i = from; i < p.count; i++) {
      const start = o;
      for (let k = i === 0 ? 0 : ends[i - 1]!; k < ends[i]!; k++) {
        const at = pieces[3 * k + 1]!, len = pieces[3 * k + 2]!;
        out.set(sources[pieces[3 * k]!]!.subarray(at, at + len), o);
        o += len;
      }
      this.#restOffsets[i - from] = start;
      this.#restLengths[i - from] = o - start;
    }
    return { buffer: out, offsets: this.#restOffsets, lengths: this.#restLengths, count };
  }

  /** Views (writeBatch's packets) instead of a batch. */
  coalesceViews(packets: readonly Uint8Array[]): GroResult | null {
    if (packets.length < 2) return null;
    const r = this.#gro.coalesce(packets, this.#room(GroCoalescer.outputBound(packets, this.#headerSize)));
    return r.merged > 0 ? r : null;
  }

  // An output buffer of at least `need` bytes that no pending write holds.
  #room(need: number): Uint8Array {
    if (this.#held) {
      this.#out = Buffer.allocUnsafeSlow(Math.max(need, this.#out.length));
      this.#held = false;
    } else if (this.#out.length < need) {
      this.#out = Buffer.allocUnsafeSlow(Math.max(need, this.#out.length * 2));
    }
    return this.#out;
  }

  /**
   * The last output is still being written: the next coalesce must not reuse its buffer. Returns
   * what to call once that write has settled, so the buffer serves again if it is still the current one.
   */
  hold(): () => void {
    const held = this.#out;
    this.#held = true;
    return () => { if (this.#out === held) this.#held = false; };
  }
}
