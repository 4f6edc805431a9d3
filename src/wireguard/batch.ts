// The batch shapes the engine takes and hands out, and the buffers it keeps between batches:
// descriptor arrays for the native AEAD calls (BatchScratch) and the output of sealing or
// opening (Arena). Both are reused from one batch to the next; a call that re-enters while one
// is in use gets a fresh one of its own.
import type { Batch } from '../base/batch.js';
import type { AeadBatch } from './aead.js';
import type { Keypair } from './keys.js';
import type { Peer } from './peer.js';

/** Datagrams or packets laid out in one buffer: the base layer's one batch shape. */
export type Packed = Batch;

/** Received datagrams with their sources as 24-byte endpoint records (src/net's DatagramBatch fits). */
export interface ReceivedDatagrams {
  readonly count: number;
  readonly buffer: Uint8Array;
  readonly offsets: Uint32Array;
  readonly lengths: Uint32Array;
  readonly endpoints: Uint8Array;
  endpointOffset(i: number): number;
}

/** Packets of one batch bound for one peer: order[start .. start+count) are their indices. */
export interface TxGroup { peer: Peer; kp: Keypair | undefined; start: number; count: number }

export const EMPTY = Buffer.alloc(0);
const EMPTY_VIEW = new DataView(EMPTY.buffer, EMPTY.byteOffset, 0);
const MIN_SCRATCH = 128;

/**
 * Descriptor arrays for the native AEAD calls and the per-batch bookkeeping around them, kept
 * from one batch to the next. Allocating them per batch cost more than the crypto of a small
 * packet: fresh small typed arrays must be moved off the V8 heap before native code may read
 * them, and fresh memory is cold memory.
 */
export class BatchScratch {
  inUse = false;
  readonly capacity: number;
  readonly keyIndex: Uint32Array;
  readonly srcOffsets: Uint32Array;
  readonly srcLengths: Uint32Array;
  readonly counters: Uint32Array;
  readonly dstOffsets: Uint32Array;
  readonly dstLengths: Uint32Array;
  /** Sealing: where each datagram starts in the output, and its length with the header. */
  readonly outOffsets: Uint32Array;
  readonly outLengths: Uint32Array;
  /** Opening: authenticated or not, the datagram index and counter of each data message. */
  readonly ok: Uint8Array;
  readonly index: Uint32Array;
  readonly counter: Float64Array;
  readonly keypairs: Array<Keypair | undefined>;
  readonly peers: Peer[] = [];
  /** Grouping a TUN batch by peer: each packet's group (NO_GROUP: no route), then the send order. */
  readonly groupOf: Uint32Array;
  readonly order: Uint32Array;
  readonly groups: TxGroup[] = [];
  readonly batch: AeadBatch;

  constructor(capacity: number) {
    this.capacity = capacity;
    const u32 = () => new Uint32Array(capacity);
    this.keyIndex = u32(); this.srcOffsets = u32(); this.srcLengths = u32(); this.dstOffsets = u32(); this.dstLengths = u32();
    this.outOffsets = u32(); this.outLengths = u32(); this.index = u32(); this.groupOf = u32(); this.order = u32();
    this.counters = new Uint32Array(2 * capacity);
    this.ok = new Uint8Array(capacity);
    this.counter = new Float64Array(capacity);
    this.keypairs = new Array<Keypair | undefined>(capacity).fill(undefined);
    this.batch = {
      keys: EMPTY, keyIndex: this.keyIndex, src: EMPTY, srcOffsets: this.srcOffsets, srcLengths: this.srcLengths,
      counters: this.counters, dst: EMPTY, dstOffsets: this.dstOffsets, dstLengths: this.dstLengths, count: 0,
    };
  }
}

/** One direction's scratch, grown to the largest batch seen; release it with `inUse = false`. */
export class ScratchPool {
  private scratch = new BatchScratch(MIN_SCRATCH);

  /** The scratch for a batch of n, or (if a call up the stack holds it) one for this call alone. */
  acquire(n: number): BatchScratch {
    const s = this.scratch;
    if (s.inUse) return new BatchScratch(Math.max(n, MIN_SCRATCH));
    if (s.capacity >= n) { s.inUse = true; return s; }
    const grown = new BatchScratch(Math.max(n, 2 * s.capacity));
    grown.inUse = true;
    this.scratch = grown;
    return grown;
  }
}

const ARENA_MIN = 16 << 10;

// The output of sealing or opening, reused from batch to batch for as long as the I/O side hands
// it back at once (the kernel took the data during the call); a buffer the I/O side keeps (a send
// or write waiting for room) is left to it and a new one is made. On an idle tunnel, allocating
// and wrapping a fresh Buffer per wake-up was one of its costliest cold steps (~10 us).
export class Arena {
  buffer: Buffer = EMPTY;
  view: DataView = EMPTY_VIEW;
  inUse = false;

  /** This arena at `size` bytes or more, or (if a call up the stack holds it) one for this call alone; release with `inUse = false`. */
  take(size: number): Arena {
    const a = this.inUse ? new Arena() : this;
    // Never the empty buffer, even for a size of 0 (a batch of keepalives opens to no bytes):
    // the native AEAD refuses a buffer with no memory behind it.
    if (size > a.buffer.length || a.buffer.length === 0) {
      a.buffer = Buffer.allocUnsafeSlow(Math.max(size, ARENA_MIN));
      a.view = new DataView(a.buffer.buffer, a.buffer.byteOffset, a.buffer.length);
    }
    a.inUse = true;
    return a;
  }

  /** The I/O side kept the buffer: the next batch gets a new one. */
  handOver(): void {
    this.buffer = EMPTY;
    this.view = EMPTY_VIEW;
  }
}
