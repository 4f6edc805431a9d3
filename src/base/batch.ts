// The one batch shape every layer passes packets in: packets (or datagrams) laid out in one
// buffer, packet i at buffer[offsets[i] .. offsets[i] + lengths[i]). A device read, a UDP
// receive, a GSO split and a GRO coalesce all produce it; a device write and a UDP send take it,
// so a batch crosses from one to the other without a view or a copy per packet.

export interface Batch {
  readonly buffer: Uint8Array;
  readonly offsets: Uint32Array;
  readonly lengths: Uint32Array;
  readonly count: number;
}

/** Packet i of a batch, as a view (no copy). */
export function packetAt(batch: Batch, i: number): Uint8Array {
  const at = batch.offsets[i]!;
  return batch.buffer.subarray(at, at + batch.lengths[i]!);
}

/** One view per packet (for APIs that take packets one by one). */
export function batchViews(batch: Batch): Uint8Array[] {
  const views: Uint8Array[] = new Array(batch.count);
  for (let i = 0; i < batch.count; i++) views[i] = packetAt(batch, i);
  return views;
}

/** Total bytes of the batch's packets. */
export function batchBytes(batch: Batch): number {
  let n = 0;
  for (let i = 0; i < batch.count; i++) n += batch.lengths[i]!;
  return n;
}

/**
 * A batch its owner fills: a buffer, room for `slots` packets, and `count` so far. Reused from
 * one batch to the next (reset() and fill again), so a data path allocates nothing per batch.
 */
export class BatchBuffer implements Batch {
  count = 0;
  constructor(
    public buffer: Uint8Array,
    public offsets: Uint32Array,
    public lengths: Uint32Array,
  ) {}

  static alloc(bytes: number, slots: number): BatchBuffer {
    return new BatchBuffer(Buffer.allocUnsafeSlow(bytes), new Uint32Array(slots), new Uint32Array(slots));
  }

  get slots(): number { return this.offsets.length; }

  reset(): void { this.count = 0; }

  /** Appends packet buffer[offset, offset + length). */
  push(offset: number, length: number): void {
    const i = this.count++;
    this.offsets[i] = offset;
    this.lengths[i] = length;
  }
}

/**
 * Packets gathered from pieces rather than laid out in one buffer: packet i is pieces
 * [ends[i - 1], ends[i]) (ends[-1] = 0), each a (source index, offset, length) triple into
 * `sources`. A device write or a UDP send takes it as one writev or message per packet, so
 * headers built in one place and payloads left where they were read need no copy into one buffer.
 */
export interface PieceBatch {
  readonly sources: readonly Uint8Array[];
  readonly pieces: Uint32Array;
  readonly ends: Uint32Array;
  readonly count: number;
}

/** A PieceBatch its owner fills: add() pieces, end() each packet; reset() to start the next batch. */
export class PieceBuffer implements PieceBatch {
  count = 0;
  sources: Uint8Array[] = [];
  pieces = new Uint32Array(3 * 256);
  ends = new Uint32Array(128);
  private added = 0;

  reset(): void { this.count = 0; this.added = 0; this.sources.length = 0; }

  /** Appends buffer `source`'s bytes [offset, offset + length) to the packet being built. */
  add(source: number, offset: number, length: number): void {
    if (3 * this.added === this.pieces.length) {
      const grown = new Uint32Array(this.pieces.length * 2); grown.set(this.pieces); this.pieces = grown;
    }
    const k = 3 * this.added++;
    this.pieces[k] = source; this.pieces[k + 1] = offset; this.pieces[k + 2] = length;
  }

  /** Ends the packet being built (its pieces are those added since the last end()). */
  end(): void {
    if (this.count === this.ends.length) {
      const grown = new Uint32Array(this.ends.length * 2); grown.set(this.ends); this.ends = grown;
    }
    this.ends[this.count++] = this.added;
  }

  /** Packets start..start+n-1 again, e.g. a flooded frame for one more destination. */
  repeat(start: number, n: number): void {
    for (let i = start; i < start + n; i++) {
      for (let k = i === 0 ? 0 : this.ends[i - 1]!; k < this.ends[i]!; k++) this.add(this.pieces[3 * k]!, this.pieces[3 * k + 1]!, this.pieces[3 * k + 2]!);
      this.end();
    }
  }
}
