// One queue of a TUN/TAP device: batched reads and writes over a non-blocking fd.
//
// Reads are pulled: nothing is read until the consumer asks for the next batch, so a slow
// consumer leaves packets in the kernel's queue (bounded by the device's txqueuelen), whose
// overflow the kernel counts as tx_dropped. A batch's memory is reused: it is valid until the
// next read on the same queue. A queue opened with offload 'split' hands out ordinary packets
// split from the kernel's super-packets and coalesces what it is given to write (offload.ts).
import { call, toTuntapError, TuntapError } from '../errors.js';
import { constants } from 'node:os';
import { MAX_PACKET } from './constants.js';
import { explainControl, explainRead, explainWrite } from './explain.js';
import { native, type NativeQueue } from './native.js';
import { positiveInteger } from '../native.js';
import { Reader, type ReadSource } from '../readiness.js';
import type { Batch } from '../base/batch.js';
import type { GroPieces } from '../base/gro.js';
import { decodePacketInfo, encodePacketInfo, ETH_P, PI_LENGTH, type PacketInfo } from '../base/pi.js';
import { decodeVnetHdr, encodeVnetHdr, readVnetHdr, type VirtioNetHdr } from '../base/vnet.js';
import { Coalescer, Splitter } from './offload.js';

/**
 * What the queue does with the kernel's offloads: 'split' hands out and takes ordinary packets
 * (super-packets split on read, coalesced on write); 'raw' hands out packets as the kernel
 * delivered them, virtio_net_hdr decoded by batch.vnet(i); 'none': the device has no vnet header.
 */
export type OffloadMode = 'split' | 'raw' | 'none';

/** Everything a queue needs to run, including in another thread (structured-cloneable). */
export interface QueueHandle {
  fd: number;
  name: string;
  mode: 'tun' | 'tap';
  index: number;
  packetInfo: boolean;
  /** 0 when the device has no vnet header. */
  vnetHdrSize: number;
  vnetLittleEndian?: boolean;
  batchSize?: number;
  readSize?: number;
  /** 'split' (needs a vnet header and no packet info); default 'raw' with a vnet header. */
  offload?: 'split' | 'raw';
  /** Split mode: verify a written packet's transport checksum before merging it (default true). */
  verifyChecksums?: boolean;
  /** Split mode: merge UDP datagrams into USO super-packets too (the kernel must know USO). */
  coalesceUdp?: boolean;
}

export interface PacketBatch extends Batch {
  /** Number of packets; memory is valid until the next read on this queue. */
  readonly count: number;
  /** The packets of the batch (each behind its PI/vnet headers, except in split mode). */
  readonly buffer: Buffer;
  /** Start of packet i's payload (after the PI and vnet headers). */
  readonly offsets: Uint32Array;
  /** Payload length of packet i. */
  readonly lengths: Uint32Array;
  /** Bytes before each payload (PI header + vnet header; 0 in split mode). */
  readonly headerLength: number;
  packet(i: number): Buffer;
  /** Packet i with its PI/vnet headers, as the kernel delivered it (for raw forwarding). */
  raw(i: number): Buffer;
  /** Packet i's virtio_net_hdr (raw mode; undefined without one, and in split mode). */
  vnet(i: number): VirtioNetHdr | undefined;
  /** vnet(i) decoded into `into` instead of a new object (a data path's per-packet read). */
  vnetInto(i: number, into: VirtioNetHdr): VirtioNetHdr | undefined;
  info(i: number): PacketInfo | undefined;
  [Symbol.iterator](): IterableIterator<Buffer>;
}

export interface QueueCounters {
  packetsRead: number; bytesRead: number; batchesRead: number;
  /** Packets the kernel took (a super-packet counts once: packetsCoalesced counts those merged into one). */
  packetsWritten: number; bytesWritten: number; batchesWritten: number;
  /** Packets the kernel refused in writeBatch (counted and skipped). */
  writesRejected: number;
  /** Times a writer waited for the fd to become writable (backpressure). */
  writeWaits: number;
  /** Split mode: super-packets read and split into the packets handed out. */
  superPacketsRead: number;
  /** Split mode: read packets dropped because their virtio_net_hdr and their bytes disagree. */
  offloadDrops: number;
  /** Split mode: super-packets written, and the packets merged into them (beyond each one's first). */
  superPacketsWritten: number;
  packetsCoalesced: number;
  /** Split mode: coalesced batches post() wrote gathered (headers rebuilt, payloads from where they lay, not copied). */
  writesGathered: number;
}

export interface WriteOptions {
  /** virtio_net_hdr to send (vnet devices; default: no offload). */
  vnet?: Partial<VirtioNetHdr>;
  /** PI protocol (devices with packet info; default inferred from the IP version or 0 for TAP). */
  protocol?: number;
  signal?: AbortSignal;
}

export interface WriteBatchOptions {
  /** One header for all packets, or one per packet (undefined entries mean "none"). */
  vnet?: Partial<VirtioNetHdr> | readonly (Partial<VirtioNetHdr> | undefined)[];
  protocols?: readonly number[];
  signal?: AbortSignal;
}

/** Where the headers before each packet come from, for the batches a queue hands out. */
interface BatchLayout {
  readonly headerLength: number;
  readonly vnetHdrSize: number;
  readonly vnetLittleEndian: boolean;
  readonly packetInfo: boolean;
}

/** Split mode's batches: ordinary packets, nothing before them. */
const NO_HEADERS: BatchLayout = { headerLength: 0, vnetHdrSize: 0, vnetLittleEndian: true, packetInfo: false };

class QueueBatch implements PacketBatch {
  count = 0;
  constructor(
    readonly buffer: Buffer,
    readonly offsets: Uint32Array,
    readonly lengths: Uint32Array,
    private readonly layout: BatchLayout,
  ) {}

  #check(i: number): number {
    if (i < 0 || i >= this.count) throw new RangeError(`packet ${i} is outside the batch of ${this.count}`);
    return this.offsets[i]!;
  }

  packet(i: number): Buffer {
    const start = this.#check(i);
    return this.buffer.subarray(start, start + this.lengths[i]!);
  }

  get headerLength(): number {
    return this.layout.headerLength;
  }

  raw(i: number): Buffer {
    const start = this.#check(i);
    return this.buffer.subarray(start - this.layout.headerLength, start + this.lengths[i]!);
  }

  vnet(i: number): VirtioNetHdr | undefined {
    const size = this.layout.vnetHdrSize;
    if (size === 0 || i < 0 || i >= this.count) return undefined;
    return decodeVnetHdr(this.buffer, this.offsets[i]! - size, size, this.layout.vnetLittleEndian);
  }

  vnetInto(i: number, into: VirtioNetHdr): VirtioNetHdr | undefined {
    const size = this.layout.vnetHdrSize;
    if (size === 0 || i < 0 || i >= this.count) return undefined;
    return readVnetHdr(into, this.buffer, this.offsets[i]! - size, this.layout.vnetLittleEndian);
  }

  info(i: number): PacketInfo | undefined {
    if (!this.layout.packetInfo || i < 0 || i >= this.count) return undefined;
    return decodePacketInfo(this.buffer, this.offsets[i]! - this.layout.headerLength);
  }

  *[Symbol.iterator](): IterableIterator<Buffer> {
    for (let i = 0; i < this.count; i++) yield this.packet(i);
  }
}

function closedError(name: string, syscall: string): TuntapError {
  return new TuntapError(syscall, constants.errno.EBADF, `${name}: the queue is closed (${syscall}: EBADF)`);
}

function abortError(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException('The operation was aborted', 'AbortError');
}

// A batch's count must not run past its offsets or lengths (the native side checks again).
function checkCount(count: number, offsets: Uint32Array, lengths: Uint32Array): void {
  if (count > offsets.length || count > lengths.length) throw new RangeError('count exceeds offsets or lengths');
}

/** The split area's size, relative to the read area: segments repeat the headers. */
const SPLIT_AREA_FACTOR = 2;
/** What a gathered write names when the kernel refuses a packet (its bytes are in pieces, not one view). */
const NO_BYTES = new Uint8Array(0);

export class Queue implements AsyncIterable<Buffer>, AsyncDisposable {
  readonly name: string;
  readonly mode: 'tun' | 'tap';
  readonly index: number;
  readonly packetInfo: boolean;
  vnetHdrSize: number;
  vnetLittleEndian: boolean;
  readonly batchSize: number;
  readonly readSize: number;
  readonly offload: OffloadMode;
  readonly counters: QueueCounters = {
    packetsRead: 0, bytesRead: 0, batchesRead: 0,
    packetsWritten: 0, bytesWritten: 0, batchesWritten: 0, writesRejected: 0, writeWaits: 0,
    superPacketsRead: 0, offloadDrops: 0, superPacketsWritten: 0, packetsCoalesced: 0, writesGathered: 0,
  };

  #fd: number;
  #native: NativeQueue | null;
  /** The drained batch, as the kernel delivered it. */
  #batch: QueueBatch;
  /** Bytes of the read area (the front of the batch's buffer). */
  #capacity: number;
  #splitter: Splitter | null = null;
  #split: QueueBatch | null = null;
  #coalescer: Coalescer | null = null;
  readonly #verifyChecksums: boolean;
  readonly #coalesceUdp: boolean;
  readonly #reader: Reader;
  #attached = true;
  #transferred = false;
  #writeWaiter: (() => void) | null = null;
  #heads: Buffer = Buffer.alloc(0);
  #zeroHeads: Buffer = Buffer.alloc(0);
  #one: Uint8Array[] = [];
  #writeLock: Promise<void> | null = null;
  #gatherError: unknown = null;

  constructor(handle: QueueHandle) {
    this.#fd = handle.fd;
    this.name = handle.name;
    this.mode = handle.mode;
    this.index = handle.index;
    this.packetInfo = handle.packetInfo;
    this.vnetHdrSize = handle.vnetHdrSize;
    this.vnetLittleEndian = handle.vnetLittleEndian ?? true;
    if (handle.offload === 'split' && (this.vnetHdrSize === 0 || this.packetInfo)) {
      throw new TypeError(`${this.name}: offload 'split' needs a vnet header and no packet information header`);
    }
    this.offload = handle.offload === 'split' ? 'split' : this.vnetHdrSize > 0 ? 'raw' : 'none';
    this.#verifyChecksums = handle.verifyChecksums ?? true;
    this.#coalesceUdp = handle.coalesceUdp ?? false;
    this.batchSize = Math.max(1, Math.min(positiveInteger(handle.batchSize ?? 64, 'batchSize'), 1024));
    this.readSize = Math.max(64, Math.min(positiveInteger(handle.readSize ?? MAX_PACKET, 'readSize'), MAX_PACKET)) + this.headerLength;
    // Drains place packets 8-byte aligned; with a capacity that is a multiple of 8 too, a read
    // that finds readSize bytes of room still ends inside the buffer once rounded up.
    this.#capacity = this.batchSize * 2048 + Math.ceil(this.readSize / 8) * 8 + 8;
    const splitArea = this.offload === 'split' ? this.#capacity * SPLIT_AREA_FACTOR : 0;
    // One buffer for both areas: a batch's packets may lie in either.
    const arena = Buffer.allocUnsafeSlow(this.#capacity + splitArea);
    this.#batch = new QueueBatch(arena, new Uint32Array(this.batchSize), new Uint32Array(this.batchSize), this);
    if (this.offload === 'split') this.#setUpSplit(arena, splitArea);
    this.#reader = new Reader(this.#source(), `${this.name}: another read is already waiting on this queue`);
    const nq = new native.TunQueue(handle.fd);
    try {
      nq.setReadBuffers(arena.subarray(0, this.#capacity), this.#batch.offsets, this.#batch.lengths, this.headerLength, this.readSize);
    } catch (e) {
      nq.release(); // the fd stays the caller's: a queue owns it only once constructed
      throw e;
    }
    this.#native = nq;
  }

  // What the reader reads: the live native queue (null once closed or transferred).
  #source(): ReadSource {
    const queue = this;
    return {
      get poller() { return queue.#native; },
      mayHaveMore: (n) => this.#mayHaveMore(n),
      readError: (e) => toTuntapError(e, `reading from ${this.name}`, explainRead(this.name)),
    };
  }

  #setUpSplit(arena: Buffer, splitArea: number): void {
    const slots = this.batchSize + Math.ceil(splitArea / 256);
    this.#splitter = new Splitter(arena, this.#capacity, slots, this.#batch, this, this.counters);
    this.#split = new QueueBatch(arena, this.#splitter.out.offsets, this.#splitter.out.lengths, NO_HEADERS);
    this.#coalescer = new Coalescer({
      mode: this.mode, headerSize: this.vnetHdrSize, littleEndian: this.vnetLittleEndian,
      verifyChecksums: this.#verifyChecksums, udp: this.#coalesceUdp,
    });
  }

  /**
   * Runs a queue handed over from another thread (see transfer()). The queue owns the fd once
   * this returns; if it throws (a malformed handle), the fd is still the caller's to close.
   */
  static fromHandle(handle: QueueHandle): Queue {
    return new Queue(handle);
  }

  /** Bytes before each packet on the wire: PI header then virtio_net_hdr. */
  get headerLength(): number {
    return (this.packetInfo ? PI_LENGTH : 0) + this.vnetHdrSize;
  }

  get fd(): number { return this.#fd; }
  get closed(): boolean { return this.#native === null; }
  get attached(): boolean { return this.#attached; }
  get transferred(): boolean { return this.#transferred; }

  /** Called by the device when the vnet header size changes. */
  setVnetHdrSize(size: number): void {
    this.vnetHdrSize = size;
    if (this.#splitter) this.#setUpSplit(this.#batch.buffer, this.#batch.buffer.length - this.#capacity);
    if (this.#native) {
      const b = this.#batch;
      this.#native.setReadBuffers(b.buffer.subarray(0, this.#capacity), b.offsets, b.lengths, this.headerLength, this.readSize);
    }
  }

  /** Called by the device when the vnet header's byte order changes. */
  setVnetLittleEndian(on: boolean): void {
    this.vnetLittleEndian = on;
    if (this.#splitter) this.#setUpSplit(this.#batch.buffer, this.#batch.buffer.length - this.#capacity);
  }

  #live(syscall: string): NativeQueue {
    if (!this.#native) throw closedError(this.name, syscall);
    return this.#native;
  }

  // A drain that stopped at a full batch, or for want of room for another packet, may have left
  // packets queued; one that stopped at EAGAIN did not.
  #mayHaveMore(n: number): boolean {
    if (n >= this.batchSize) return true;
    if (n === 0) return false;
    const b = this.#batch;
    const end = (b.offsets[n - 1]! + b.lengths[n - 1]! + 7) & ~7;
    return this.#capacity - end < this.readSize;
  }

  #account(b: QueueBatch, count: number): PacketBatch {
    b.count = count;
    let bytes = 0;
    for (let i = 0; i < count; i++) bytes += b.lengths[i]!;
    this.counters.packetsRead += count;
    this.counters.bytesRead += bytes;
    this.counters.batchesRead++;
    return b;
  }

  // Split mode: the next batch of ordinary packets from the drain (undefined when none is left).
  #nextSplit(): PacketBatch | undefined {
    const splitter = this.#splitter!;
    while (splitter.pending) {
      const out = splitter.next();
      if (out.count > 0) return this.#account(this.#split!, out.count);
    }
    return undefined;
  }

  // A drain of n packets as the batch handed out (split mode: its first batch of ordinary packets).
  #serve(n: number): PacketBatch | undefined {
    if (!this.#splitter) return this.#account(this.#batch, n);
    this.#splitter.load(n);
    return this.#nextSplit();
  }

  /**
   * Waits for at least one packet and returns up to batchSize of them (in split mode, the
   * packets split from up to batchSize), or null once the queue is closed. The batch (and every
   * Buffer taken from it) is valid until the next read.
   */
  readBatch(opts: { signal?: AbortSignal } = {}): Promise<PacketBatch | null> {
    const ready = this.#splitter?.pending ? this.#nextSplit() : undefined;
    return ready ? Promise.resolve(ready) : this.#reader.next((n) => this.#serve(n), opts.signal);
  }

  /**
   * Reads batches into onBatch until the queue closes (onEnd(null)) or a read fails (onEnd(err);
   * an exception thrown by onBatch ends the loop the same way). The callback form of
   * batches(): no promise or generator step per batch, so an idle wake-up runs little code.
   * Each batch is valid until onBatch returns.
   */
  readEach(onBatch: (batch: PacketBatch) => void, onEnd: (err: unknown) => void): void {
    if (!this.#splitter) {
      this.#reader.each((n) => onBatch(this.#account(this.#batch, n)), onEnd);
      return;
    }
    const splitter = this.#splitter;
    const serve = () => {
      for (let b = this.#nextSplit(); b !== undefined; b = this.#nextSplit()) onBatch(b);
    };
    if (!this.#reader.reading) serve();
    this.#reader.each((n) => { splitter.load(n); serve(); }, onEnd);
  }

  /**
   * Reads now, on behalf of the running readEach loop, what the kernel may have queued since
   * the last wake-up (e.g. the reply to a packet just written, which the kernel produces during
   * the write), instead of waiting for the next readiness report. No-op without such a loop or
   * from inside its own callback.
   */
  poke(): void { this.#reader.poke(); }

  /** Async iteration over batches until the queue closes (or the signal aborts). */
  async *batches(opts: { signal?: AbortSignal } = {}): AsyncGenerator<PacketBatch, void, undefined> {
    for (;;) {
      const batch = await this.readBatch(opts);
      if (!batch) return;
      yield batch;
    }
  }

  /** Async iteration over single packets (payload only; valid until the next iteration step). */
  async *packets(opts: { signal?: AbortSignal } = {}): AsyncGenerator<Buffer, void, undefined> {
    for await (const batch of this.batches(opts)) {
      for (let i = 0; i < batch.count; i++) yield batch.packet(i);
    }
  }

  [Symbol.asyncIterator](): AsyncIterator<Buffer> {
    return this.packets();
  }

  // ---- writing ----

  // The head of packet i: PI (protocol from `protocol`, else inferred from the packet's first
  // byte `first` on a TUN) then the virtio_net_hdr.
  #encodeHead(heads: Buffer, i: number, first: number, vnet: Partial<VirtioNetHdr> | undefined, protocol: number | undefined): void {
    let o = i * this.headerLength;
    if (this.packetInfo) {
      encodePacketInfo(heads, o, protocol ?? (this.mode === 'tun' ? (first >> 4 === 6 ? ETH_P.IPV6 : ETH_P.IP) : 0));
      o += PI_LENGTH;
    }
    if (this.vnetHdrSize > 0) encodeVnetHdr(vnet ?? {}, heads, o, this.vnetHdrSize, this.vnetLittleEndian);
  }

  // Heads for `count` packets (first bytes from firstByte(i)); undefined when there are none. The
  // all-zero heads of a vnet device without packet info are one shared buffer, never rewritten.
  #encodeHeads(count: number, firstByte: (i: number) => number, vnet: WriteBatchOptions['vnet'],
    protocols: readonly number[] | undefined): Buffer | undefined {
    const len = this.headerLength;
    if (len === 0) return undefined;
    const need = len * count;
    if (!this.packetInfo && vnet === undefined) {
      if (this.#zeroHeads.length < need) this.#zeroHeads = Buffer.alloc(Math.max(need, this.#zeroHeads.length * 2));
      return this.#zeroHeads;
    }
    if (this.#heads.length < need) this.#heads = Buffer.allocUnsafeSlow(Math.max(need, this.#heads.length * 2));
    const heads = this.#heads;
    const perPacket = Array.isArray(vnet) ? (vnet as readonly (Partial<VirtioNetHdr> | undefined)[]) : undefined;
    const shared = perPacket ? undefined : (vnet as Partial<VirtioNetHdr> | undefined);
    for (let i = 0; i < count; i++) this.#encodeHead(heads, i, firstByte(i), perPacket ? perPacket[i] : shared, protocols?.[i]);
    return heads;
  }

  #waitWritable(nq: NativeQueue, signal: AbortSignal | undefined): Promise<void> {
    this.counters.writeWaits++;
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => { nq.cancel('write'); this.#writeWaiter = null; reject(abortError(signal!)); };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#writeWaiter = () => { signal?.removeEventListener('abort', onAbort); resolve(); };
      nq.waitWritable(() => { this.#writeWaiter = null; signal?.removeEventListener('abort', onAbort); resolve(); });
    });
  }

  // Writes packets [first, total) with writeFrom(nq, i) → how many went out before EAGAIN,
  // waiting for writability in between. strict: a rejected packet throws; otherwise it is
  // counted and skipped. payloadAt(i) is only used to explain a rejection.
  async #writeLoop(total: number, writeFrom: (nq: NativeQueue, i: number) => number, lengthOf: (i: number) => number,
    payloadAt: (i: number) => Uint8Array, signal: AbortSignal | undefined, strict: boolean, first = 0): Promise<number> {
    let i = first;
    let accepted = first;
    let bytes = 0;
    for (let j = 0; j < first; j++) bytes += lengthOf(j);
    try {
      while (i < total) {
        signal?.throwIfAborted();
        const nq = this.#live('write');
        let n: number;
        try {
          n = writeFrom(nq, i);
        } catch (e) {
          const written = (e as { written?: number }).written ?? 0;
          for (let j = i; j < i + written; j++) bytes += lengthOf(j);
          accepted += written;
          i += written;
          const err = toTuntapError(e, `writing to ${this.name}`,
            explainWrite(this.name, this.mode, this.packetInfo, this.vnetHdrSize > 0, payloadAt(i)));
          const code = (err as TuntapError).code;
          if (strict || !(code === 'EINVAL' || code === 'EFAULT' || code === 'EMSGSIZE')) throw err;
          this.counters.writesRejected++;
          i++;
          continue;
        }
        for (let j = i; j < i + n; j++) bytes += lengthOf(j);
        i += n;
        accepted += n;
        if (i < total) await this.#waitWritable(nq, signal);
      }
      this.counters.batchesWritten++;
      return accepted;
    } finally {
      this.counters.packetsWritten += accepted;
      this.counters.bytesWritten += bytes;
    }
  }

  #writeAll(packets: readonly Uint8Array[], heads: Buffer | undefined, signal: AbortSignal | undefined, strict: boolean): Promise<number> {
    const headLength = heads ? this.headerLength : 0;
    return this.#writeLoop(packets.length, (nq, i) => nq.write(packets, i, heads, headLength),
      (i) => packets[i]!.length, (i) => packets[i]!, signal, strict);
  }

  // Writers take turns: order is kept and the reused header buffer is never shared by two
  // writes at once (a write may wait for writability in the middle).
  async #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    while (this.#writeLock) await this.#writeLock;
    let release!: () => void;
    this.#writeLock = new Promise<void>((r) => { release = r; });
    try {
      return await fn();
    } finally {
      this.#writeLock = null;
      release();
    }
  }

  /**
   * Writes ranges [0, count) of `buffer`, each behind its head in `heads` (headLength bytes
   * each) when given. With no write in progress, one native call usually takes the whole batch:
   * then no promise is made (a wake-up's latency is mostly the work done per batch) and the
   * count is returned. Otherwise the rest goes through the ordered loop, with copies of the
   * arrays and heads (the caller may reuse them at once), and `onDefer` is told; what it returns
   * is called once that write has settled. Rejected packets are counted and skipped.
   */
  #send(buffer: Uint8Array, offsets: Uint32Array, lengths: Uint32Array, count: number, heads: Buffer | undefined,
    signal: AbortSignal | undefined, onDefer?: () => () => void): number | Promise<number> {
    const headLength = heads ? this.headerLength : 0;
    let done = -1;
    const nq = this.#native;
    if (this.#writeLock === null && nq !== null && signal === undefined) {
      try {
        done = nq.writeRanges(buffer, offsets, lengths, 0, count, heads, headLength);
      } catch (e) {
        done = (e as { written?: number }).written ?? 0;
      }
      if (done === count) {
        let bytes = 0;
        for (let i = 0; i < count; i++) bytes += lengths[i]!;
        this.counters.packetsWritten += count;
        this.counters.bytesWritten += bytes;
        this.counters.batchesWritten++;
        return count;
      }
    }
    const settled = onDefer?.();
    const o = offsets.slice(0, count);
    const l = lengths.slice(0, count);
    const h = heads === undefined || heads === this.#zeroHeads ? heads : Buffer.from(heads.subarray(0, count * headLength));
    const skip = heads ? 0 : this.headerLength;
    const written = this.#exclusive(() => this.#writeLoop(count, (q, i) => q.writeRanges(buffer, o, l, i, count, h, headLength),
      (i) => l[i]!, (i) => buffer.subarray(o[i]! + skip, o[i]! + l[i]!), signal, false, Math.max(0, done)));
    return settled ? written.finally(settled) : written;
  }

  /**
   * Ordinary packets to write as they are (headers built: PI protocol inferred, an empty
   * virtio_net_hdr), or in split mode coalesced into super-packets first. Calls `send` with
   * what to write; `viaCoalescer` tells it the buffer is the coalescer's (to hold while pending).
   */
  #plain<R>(batch: Batch, opts: WriteBatchOptions, send: (buffer: Uint8Array, offsets: Uint32Array, lengths: Uint32Array,
    count: number, heads: Buffer | undefined, viaCoalescer: boolean) => R): R {
    const { buffer, offsets, count } = batch;
    checkCount(count, offsets, batch.lengths);
    if (this.#coalescer && opts.vnet === undefined) {
      const r = this.#coalescer.coalesce(batch);
      if (r) {
        this.counters.packetsCoalesced += r.merged;
        this.counters.superPacketsWritten += this.#supers(r);
        return send(r.buffer, r.offsets, r.lengths, r.count, undefined, true);
      }
    }
    const heads = this.#encodeHeads(count, (i) => buffer[offsets[i]!] ?? 0, opts.vnet, opts.protocols);
    return send(buffer, offsets, batch.lengths, count, heads, false);
  }

  // Super-packets in a coalesced result: outputs whose header has a GSO type.
  #supers(r: Batch): number {
    let n = 0;
    const typeAt = 1;
    for (let i = 0; i < r.count; i++) if (r.buffer[r.offsets[i]! + typeAt] !== 0) n++;
    return n;
  }

  /**
   * Writes a batch of ordinary packets without a promise to wait on (a tunnel's data path): a
   * write the kernel takes at once creates no promise. Headers are built (the PI protocol
   * inferred, an empty virtio_net_hdr); in split mode packets are coalesced into super-packets
   * first. Packets that could not be written (rejected, or the queue closed) are counted in
   * counters.writesRejected. Returns true when the caller's bytes are free again (the kernel
   * took every packet during the call, or they were copied into super-packets); otherwise the
   * rest is written later from them, and they must stay as they are until then.
   */
  post(batch: Batch): boolean {
    if (batch.count === 0) return true;
    if (this.#coalescer && this.#writeLock === null && this.#native !== null) {
      checkCount(batch.count, batch.offsets, batch.lengths);
      const p = this.#coalescer.coalescePieces(batch);
      if (p) return this.#postGathered(this.#native, p);
    }
    return this.#plain(batch, {}, (buffer, offsets, lengths, count, heads, viaCoalescer) => {
      const r = this.#send(buffer, offsets, lengths, count, heads, undefined, viaCoalescer ? () => this.#coalescer!.hold() : undefined);
      if (typeof r === 'number') return true;
      r.catch(() => { this.counters.writesRejected += count; });
      // The coalescer's copy is the queue's own: the caller's bytes are free already.
      return viaCoalescer;
    });
  }

  // post()'s coalesced batch written gathered: only headers were copied, the payloads are the
  // caller's, so they are referenced only during this call. What the kernel does not take now
  // is joined into the coalescer's own buffer and written in order after it, as #send does.
  // Counted as the copying path counts (coalesced and super-packets at once, the batch when done).
  #postGathered(nq: NativeQueue, p: GroPieces): boolean {
    const c = this.counters;
    c.packetsCoalesced += p.merged;
    c.superPacketsWritten += this.#superPieces(p);
    const n = this.#gatherNow(nq, p.sources, p.pieces, p.ends, p.count);
    if (n > 0) c.writesGathered++;
    const failed = this.#gatherError;
    this.#gatherError = null;
    if (n === p.count && failed === null) {
      c.batchesWritten++;
      return true;
    }
    // The rest (from the first packet not taken; one that failed is tried again there, and
    // rejected with the same error) waits for writability behind nothing else: the lock was free.
    const rest = this.#coalescer!.joinRest(p, n);
    const left = rest.count;
    const r = this.#send(rest.buffer, rest.offsets, rest.lengths, left, undefined, undefined, () => this.#coalescer!.hold());
    if (typeof r !== 'number') r.catch(() => { this.counters.writesRejected += left; });
    return true;
  }

  // Super-packets among gathered outputs: those whose virtio_net_hdr (each output's first piece) has a GSO type.
  #superPieces(p: GroPieces): number {
    let n = 0;
    const typeAt = 1;
    const headers = p.sources[0]!;
    for (let i = 0; i < p.count; i++) if (headers[p.pieces[3 * (i === 0 ? 0 : p.ends[i - 1]!) + 1]! + typeAt] !== 0) n++;
    return n;
  }

  /**
   * Writes a batch of ordinary packets (see post()) and resolves with how many the kernel
   * accepted, waiting for writability when it pushes back (in split mode the count is of the
   * super-packets and packets written). The offsets and lengths may be reused once this returns;
   * the bytes may not, until it resolves.
   */
  writePacked(batch: Batch, opts: WriteBatchOptions = {}): Promise<number> {
    if (batch.count === 0) return Promise.resolve(0);
    return this.#plain(batch, opts, (buffer, offsets, lengths, count, heads, viaCoalescer) => {
      const r = this.#send(buffer, offsets, lengths, count, heads, opts.signal, viaCoalescer ? () => this.#coalescer!.hold() : undefined);
      return typeof r === 'number' ? Promise.resolve(r) : r;
    });
  }

  /** Writes one packet (payload; headers are added from opts). Rejections throw a TuntapError. */
  write(packet: Uint8Array, opts: WriteOptions = {}): Promise<void> {
    return this.#exclusive(async () => {
      const one = this.#one;
      one[0] = packet;
      one.length = 1;
      try {
        const heads = this.#encodeHeads(1, () => packet[0] ?? 0, opts.vnet, opts.protocol === undefined ? undefined : [opts.protocol]);
        await this.#writeAll(one, heads, opts.signal, true);
      } finally {
        one.length = 0;
      }
    });
  }

  /**
   * Writes a batch in one native call, waiting for writability when the kernel pushes back.
   * Packets the kernel rejects (malformed) are counted in counters.writesRejected and skipped;
   * resolves with the number accepted. In split mode, without opts.vnet, the packets are
   * coalesced into super-packets first (the count is then of what the kernel took). The caller
   * may reuse its buffers once it resolves.
   */
  writeBatch(packets: readonly Uint8Array[], opts: WriteBatchOptions = {}): Promise<number> {
    if (packets.length === 0) return Promise.resolve(0);
    if (this.#coalescer && opts.vnet === undefined) {
      const r = this.#coalescer.coalesceViews(packets);
      if (r) {
        this.counters.packetsCoalesced += r.merged;
        this.counters.superPacketsWritten += this.#supers(r);
        const done = this.#send(r.buffer, r.offsets, r.lengths, r.count, undefined, opts.signal, () => this.#coalescer!.hold());
        return typeof done === 'number' ? Promise.resolve(done) : done;
      }
    }
    return this.#exclusive(() => this.#writeAll(packets,
      this.#encodeHeads(packets.length, (i) => packets[i]![0] ?? 0, opts.vnet, opts.protocols), opts.signal, false));
  }

  /**
   * Writes `count` packets lying in one buffer at offsets[i], lengths[i] (e.g. straight from a
   * received batch, without per-packet objects). With `raw`, each range already holds the PI
   * and vnet headers; otherwise headers are added (default ones, or opts.vnet / opts.protocols),
   * and in split mode the packets are coalesced first, as by writePacked. Rejected packets are
   * counted and skipped, as in writeBatch. The caller may reuse `offsets` and `lengths` as soon
   * as this returns; the buffer's bytes must stay as they are until the promise resolves.
   */
  writeRanges(buffer: Uint8Array, offsets: Uint32Array, lengths: Uint32Array, count: number,
    opts: WriteBatchOptions & { raw?: boolean } = {}): Promise<number> {
    if (count === 0) return Promise.resolve(0);
    checkCount(count, offsets, lengths);
    if (opts.raw || this.headerLength === 0) {
      const r = this.#send(buffer, offsets, lengths, count, undefined, opts.signal);
      return typeof r === 'number' ? Promise.resolve(r) : r;
    }
    return this.writePacked({ buffer, offsets, lengths, count }, opts);
  }

  /**
   * writeRanges with `raw`, without a promise to wait on (a tunnel's data path): a write the
   * kernel takes at once creates no promise. Packets that could not be written (rejected, or the
   * queue closed) are counted in counters.writesRejected. Returns true when the kernel took every
   * packet during the call; otherwise the rest is written later and the bytes must stay as they are.
   */
  postRanges(buffer: Uint8Array, offsets: Uint32Array, lengths: Uint32Array, count: number): boolean {
    if (count === 0) return true;
    checkCount(count, offsets, lengths);
    const r = this.#send(buffer, offsets, lengths, count, undefined, undefined);
    if (typeof r === 'number') return true;
    r.catch(() => { this.counters.writesRejected += count; });
    return false;
  }

  /**
   * Writes packets gathered from pieces, each with its PI/vnet header already in its first
   * piece, one writev each, without joining their bytes first: `pieces` holds (source index,
   * offset, length) triples into `sources`, packet i is pieces [ends[i - 1], ends[i]). Only what
   * the kernel takes now is written: returns how many (from the first), fewer when it is full or
   * another write is still pending (then none, so packets keep their order); the caller writes
   * the rest another way. Packets the kernel refuses (EINVAL, EFAULT, EMSGSIZE) are counted in
   * counters.writesRejected and skipped; any other error throws.
   */
  writePieces(sources: readonly Uint8Array[], pieces: Uint32Array, ends: Uint32Array, count: number): number {
    const nq = this.#native;
    if (count === 0 || this.#writeLock !== null || nq === null) return 0;
    const i = this.#gatherNow(nq, sources, pieces, ends, count);
    const failed = this.#gatherError;
    this.#gatherError = null;
    if (failed !== null) throw failed;
    if (i > 0) this.counters.batchesWritten++;
    return i;
  }

  // Writes gathered packets from the first while the kernel takes them, counting them; returns
  // how many went (rejected ones, counted and skipped, included). Stops at EAGAIN; any other
  // error stops it too and is left in #gatherError (the packet it names not counted as gone).
  #gatherNow(nq: NativeQueue, sources: readonly Uint8Array[], pieces: Uint32Array, ends: Uint32Array, count: number): number {
    let i = 0;
    while (i < count) {
      let n: number;
      try {
        n = nq.writePieces(sources, pieces, ends, i, count);
      } catch (e) {
        const written = (e as { written?: number }).written;
        if (written === undefined) { this.#gatherError = e; break; }  // malformed arguments (a TypeError or RangeError)
        this.#countWritten(ends, pieces, i, i + written);
        i += written;
        const err = toTuntapError(e, `writing to ${this.name}`, explainWrite(this.name, this.mode, this.packetInfo, this.vnetHdrSize > 0, NO_BYTES));
        const code = (err as TuntapError).code;
        if (!(code === 'EINVAL' || code === 'EFAULT' || code === 'EMSGSIZE')) { this.#gatherError = err; break; }
        this.counters.writesRejected++;
        i++;
        continue;
      }
      this.#countWritten(ends, pieces, i, i + n);
      i += n;
      if (n === 0 || i < count) break;
    }
    return i;
  }

  #countWritten(ends: Uint32Array, pieces: Uint32Array, from: number, to: number): void {
    let bytes = 0;
    const last = to === 0 ? 0 : ends[to - 1]!;
    for (let k = from === 0 ? 0 : ends[from - 1]!; k < last; k++) bytes += pieces[3 * k + 2]!;
    this.counters.packetsWritten += to - from;
    this.counters.bytesWritten += bytes;
  }

  /** TUNSETQUEUE: re-attach this queue to the device (multi-queue devices). */
  attach(): void {
    const fd = this.#fd;
    this.#live('ioctl(TUNSETQUEUE)');
    call(`attaching queue ${this.index} of ${this.name}`, () => native.tunSetQueue(fd, true), explainControl(this.name, 'TUNSETQUEUE'));
    this.#attached = true;
  }

  /** TUNSETQUEUE: detach this queue; the kernel stops steering packets to it. */
  detach(): void {
    const fd = this.#fd;
    this.#live('ioctl(TUNSETQUEUE)');
    call(`detaching queue ${this.index} of ${this.name}`, () => native.tunSetQueue(fd, false), explainControl(this.name, 'TUNSETQUEUE'));
    this.#attached = false;
  }

  /**
   * Hands this queue to another thread: returns a handle for `Queue.fromHandle()` there. This
   * object stops using the fd (it neither reads nor closes it); the receiver owns it.
   */
  transfer(): QueueHandle {
    const nq = this.#live('transfer');
    if (this.#reader.reading) throw new Error(`${this.name}: cannot transfer a queue while a read is waiting`);
    nq.release();
    this.#native = null;
    this.#transferred = true;
    return {
      fd: this.#fd, name: this.name, mode: this.mode, index: this.index, packetInfo: this.packetInfo,
      vnetHdrSize: this.vnetHdrSize, vnetLittleEndian: this.vnetLittleEndian, batchSize: this.batchSize,
      readSize: this.readSize - this.headerLength,
      ...(this.offload === 'split' ? { offload: 'split', verifyChecksums: this.#verifyChecksums, coalesceUdp: this.#coalesceUdp } : {}),
    };
  }

  /** Lets the process exit while this queue waits for packets (like socket.unref()). */
  unref(): this { this.#native?.unref(); return this; }
  ref(): this { this.#native?.ref(); return this; }

  /** Closes the fd and the poll handle; a waiting read resolves null, a waiting write rejects. */
  async close(): Promise<void> {
    const nq = this.#native;
    if (!nq) return;
    this.#native = null;
    nq.close();
    const writer = this.#writeWaiter;
    this.#writeWaiter = null;
    this.#reader.end();
    writer?.();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
