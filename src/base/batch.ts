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
