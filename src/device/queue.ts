// One queue of a TUN/TAP device: batched reads and writes over a non-blocking fd.
//
// Reads are pulled: nothing is read until the consumer asks for the next batch, so a slow
// consumer leaves packets in the kernel's queue (bounded by the device's txqueuelen), whose
// overflow the kernel counts as tx_dropped. A batch's memory is reused: it is valid until the
// next read on the same queue.
import { call, toTuntapError, TuntapError } from '../errors.js';
import { constants } from 'node:os';
import { MAX_PACKET } from './constants.js';
import { explainControl, explainRead, explainWrite } from './explain.js';
import { native, type NativeQueue } from './native.js';
import { positiveInteger } from '../native.js';
import { Reader, type ReadSource } from '../readiness.js';
import { decodePacketInfo, encodePacketInfo, PI_LENGTH, protocolOfIpPacket, type PacketInfo } from '../base/pi.js';
import { decodeVnetHdr, encodeVnetHdr, type VirtioNetHdr } from '../base/vnet.js';
import type { Batch as PackedBatch } from '../base/batch.js';

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
}

export interface PacketBatch extends PackedBatch {
  /** Number of packets; memory is valid until the next read on this queue. */
  readonly count: number;
  /** All packets of the batch, back to back (with their PI/vnet headers before each). */
  readonly buffer: Buffer;
  /** Start of packet i's payload (after the PI and vnet headers). */
  readonly offsets: Uint32Array;
  /** Payload length of packet i. */
  readonly lengths: Uint32Array;
  /** Bytes before each payload (PI header + vnet header). */
  readonly headerLength: number;
  packet(i: number): Buffer;
  /** Packet i with its PI/vnet headers, as the kernel delivered it (for raw forwarding). */
  raw(i: number): Buffer;
  vnet(i: number): VirtioNetHdr | undefined;
  info(i: number): PacketInfo | undefined;
  [Symbol.iterator](): IterableIterator<Buffer>;
}

export interface QueueCounters {
  packetsRead: number; bytesRead: number; batchesRead: number;
  packetsWritten: number; bytesWritten: number; batchesWritten: number;
  /** Packets the kernel refused in writeBatch (counted and skipped). */
  writesRejected: number;
  /** Times a writer waited for the fd to become writable (backpressure). */
  writeWaits: number;
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

class Batch implements PacketBatch {
  count = 0;
  constructor(
    readonly buffer: Buffer,
    readonly offsets: Uint32Array,
    readonly lengths: Uint32Array,
    private readonly queue: Queue,
  ) {}

  packet(i: number): Buffer {
    if (i < 0 || i >= this.count) throw new RangeError(`packet ${i} is outside the batch of ${this.count}`);
    const start = this.offsets[i]!;
    return this.buffer.subarray(start, start + this.lengths[i]!);
  }

  get headerLength(): number {
    return this.queue.headerLength;
  }

  raw(i: number): Buffer {
    if (i < 0 || i >= this.count) throw new RangeError(`packet ${i} is outside the batch of ${this.count}`);
    const start = this.offsets[i]!;
    return this.buffer.subarray(start - this.queue.headerLength, start + this.lengths[i]!);
  }

  vnet(i: number): VirtioNetHdr | undefined {
    const size = this.queue.vnetHdrSize;
    if (size === 0 || i < 0 || i >= this.count) return undefined;
    return decodeVnetHdr(this.buffer, this.offsets[i]! - size, size, this.queue.vnetLittleEndian);
  }

  info(i: number): PacketInfo | undefined {
    if (!this.queue.packetInfo || i < 0 || i >= this.count) return undefined;
    return decodePacketInfo(this.buffer, this.offsets[i]! - this.queue.headerLength);
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

export class Queue implements AsyncIterable<Buffer>, AsyncDisposable {
  readonly name: string;
  readonly mode: 'tun' | 'tap';
  readonly index: number;
  readonly packetInfo: boolean;
  vnetHdrSize: number;
  vnetLittleEndian: boolean;
  readonly batchSize: number;
  readonly readSize: number;
  readonly counters: QueueCounters = {
    packetsRead: 0, bytesRead: 0, batchesRead: 0,
    packetsWritten: 0, bytesWritten: 0, batchesWritten: 0, writesRejected: 0, writeWaits: 0,
  };

  #fd: number;
  #native: NativeQueue | null;
  #batch: Batch;
  /** Bytes of the read buffer. */
  #capacity: number;
  readonly #reader: Reader;
  #attached = true;
  #transferred = false;
  #writeWaiter: (() => void) | null = null;
  #heads: Buffer = Buffer.alloc(0);
  #one: Uint8Array[] = [];
  #writeLock: Promise<void> | null = null;

  constructor(handle: QueueHandle) {
    this.#fd = handle.fd;
    this.name = handle.name;
    this.mode = handle.mode;
    this.index = handle.index;
    this.packetInfo = handle.packetInfo;
    this.vnetHdrSize = handle.vnetHdrSize;
    this.vnetLittleEndian = handle.vnetLittleEndian ?? true;
    this.batchSize = Math.max(1, Math.min(positiveInteger(handle.batchSize ?? 64, 'batchSize'), 1024));
    this.readSize = Math.max(64, Math.min(positiveInteger(handle.readSize ?? MAX_PACKET, 'readSize'), MAX_PACKET)) + this.headerLength;
    // Drains place packets 8-byte aligned; with a capacity that is a multiple of 8 too, a read
    // that finds readSize bytes of room still ends inside the buffer once rounded up.
    const capacity = this.batchSize * 2048 + Math.ceil(this.readSize / 8) * 8 + 8;
    this.#capacity = capacity;
    this.#batch = new Batch(Buffer.allocUnsafeSlow(capacity), new Uint32Array(this.batchSize), new Uint32Array(this.batchSize), this);
    this.#reader = new Reader(this.#source(), `${this.name}: another read is already waiting on this queue`);
    const nq = new native.TunQueue(handle.fd);
    try {
      nq.setReadBuffers(this.#batch.buffer, this.#batch.offsets, this.#batch.lengths, this.headerLength, this.readSize);
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

  // A drain that stopped at a full batch, or for want of room for another packet, may have left
  // packets queued; one that stopped at EAGAIN did not.
  #mayHaveMore(n: number): boolean {
    if (n >= this.batchSize) return true;
    if (n === 0) return false;
    const b = this.#batch;
    const end = (b.offsets[n - 1]! + b.lengths[n - 1]! + 7) & ~7;
    return this.#capacity - end < this.readSize;
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

  #bindBuffers(): void {
    const b = this.#batch;
    this.#native!.setReadBuffers(b.buffer, b.offsets, b.lengths, this.headerLength, this.readSize);
  }

  /** Called by the device when the vnet header size changes. */
  setVnetHdrSize(size: number): void {
    this.vnetHdrSize = size;
    if (this.#native) this.#bindBuffers();
  }

  #live(syscall: string): NativeQueue {
    if (!this.#native) throw closedError(this.name, syscall);
    return this.#native;
  }

  #account(count: number): PacketBatch {
    const b = this.#batch;
    b.count = count;
    let bytes = 0;
    for (let i = 0; i < count; i++) bytes += b.lengths[i]!;
    this.counters.packetsRead += count;
    this.counters.bytesRead += bytes;
    this.counters.batchesRead++;
    return b;
  }

  /**
   * Waits for at least one packet and returns up to batchSize of them, or null once the queue
   * is closed. The batch (and every Buffer taken from it) is valid until the next read.
   */
  async readBatch(opts: { signal?: AbortSignal } = {}): Promise<PacketBatch | null> {
    const n = await this.#reader.next(opts.signal);
    return n < 0 || !this.#native ? null : this.#account(n);
  }

  /**
   * Reads batches into onBatch until the queue closes (onEnd(null)) or a read fails (onEnd(err);
   * an exception thrown by onBatch ends the loop the same way). The callback form of
   * batches(): no promise or generator step per batch, so an idle wake-up runs little code.
   * Each batch is valid until onBatch returns.
   */
  readEach(onBatch: (batch: PacketBatch) => void, onEnd: (err: unknown) => void): void {
    this.#reader.each((n) => onBatch(this.#account(n)), onEnd);
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

  #encodeHeads(packets: readonly Uint8Array[], vnet: WriteBatchOptions['vnet'], protocols: readonly number[] | undefined): Buffer | undefined {
    const len = this.headerLength;
    if (len === 0) return undefined;
    const need = len * packets.length;
    if (this.#heads.length < need) this.#heads = Buffer.allocUnsafeSlow(Math.max(need, this.#heads.length * 2));
    const heads = this.#heads;
    const perPacket = Array.isArray(vnet) ? (vnet as readonly (Partial<VirtioNetHdr> | undefined)[]) : undefined;
    const shared = perPacket ? undefined : (vnet as Partial<VirtioNetHdr> | undefined);
    for (let i = 0; i < packets.length; i++) {
      let o = i * len;
      if (this.packetInfo) {
        const protocol = protocols?.[i] ?? (this.mode === 'tun' ? protocolOfIpPacket(packets[i]!) : 0);
        encodePacketInfo(heads, o, protocol);
        o += PI_LENGTH;
      }
      if (this.vnetHdrSize > 0) encodeVnetHdr((perPacket ? perPacket[i] : shared) ?? {}, heads, o, this.vnetHdrSize, this.vnetLittleEndian);
    }
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

  // Writes packets [0, total) with writeFrom(nq, i) → how many went out before EAGAIN, waiting
  // for writability in between. strict: a rejected packet throws; otherwise it is counted and
  // skipped. payloadAt(i) is only used to explain a rejection.
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

  /** Writes one packet (payload; headers are added from opts). Rejections throw a TuntapError. */
  write(packet: Uint8Array, opts: WriteOptions = {}): Promise<void> {
    return this.#exclusive(async () => {
      const one = this.#one;
      one[0] = packet;
      one.length = 1;
      try {
        const heads = this.#encodeHeads(one, opts.vnet, opts.protocol === undefined ? undefined : [opts.protocol]);
        await this.#writeAll(one, heads, opts.signal, true);
      } finally {
        one.length = 0;
      }
    });
  }

  /**
   * Writes a batch in one native call, waiting for writability when the kernel pushes back.
   * Packets the kernel rejects (malformed) are counted in counters.writesRejected and skipped;
   * resolves with the number accepted. The caller may reuse its buffers once it resolves.
   */
  writeBatch(packets: readonly Uint8Array[], opts: WriteBatchOptions = {}): Promise<number> {
    if (packets.length === 0) return Promise.resolve(0);
    return this.#exclusive(() => this.#writeAll(packets, this.#encodeHeads(packets, opts.vnet, opts.protocols), opts.signal, false));
  }

  /**
   * Writes `count` packets lying in one buffer at offsets[i], lengths[i] (e.g. straight from a
   * received batch, without per-packet objects). With `raw`, each range already holds the PI
   * and vnet headers; otherwise default headers (or opts.vnet / opts.protocols) are added.
   * Rejected packets are counted and skipped, as in writeBatch. The caller may reuse `offsets`
   * and `lengths` as soon as this returns (they are copied if the write has to wait); the
   * buffer's bytes must stay as they are until the promise resolves.
   */
  writeRanges(buffer: Uint8Array, offsets: Uint32Array, lengths: Uint32Array, count: number,
    opts: WriteBatchOptions & { raw?: boolean } = {}): Promise<number> {
    if (count === 0) return Promise.resolve(0);
    if (count > offsets.length || count > lengths.length) throw new RangeError('count exceeds offsets or lengths');
    // Without headers to add, the ranges are written as they are: first in one synchronous call
    // (see #writeRawNow), and what it leaves in the ordered loop.
    if (opts.raw || this.headerLength === 0) {
      const n = opts.signal ? -1 : this.#writeRawNow(buffer, offsets, lengths, count);
      return n === count ? Promise.resolve(count) : this.#writeRawRest(buffer, offsets, lengths, count, n, opts.signal);
    }
    offsets = offsets.slice(0, count);
    lengths = lengths.slice(0, count);
    return this.#exclusive(() => {
      const views: Uint8Array[] = [];
      if (this.packetInfo && this.mode === 'tun' && !opts.protocols) {
        for (let i = 0; i < count; i++) views.push(buffer.subarray(offsets[i]!, offsets[i]! + 1));
      } else {
        views.length = count;
        views.fill(buffer);
      }
      const heads = this.#encodeHeads(views, opts.vnet, opts.protocols);
      const headLength = this.headerLength;
      return this.#writeLoop(count, (nq, i) => nq.writeRanges(buffer, offsets, lengths, i, count, heads, headLength),
        (i) => lengths[i]!, (i) => buffer.subarray(offsets[i]!, offsets[i]! + lengths[i]!), opts.signal, false);
    });
  }

  /**
   * writeRanges with `raw`, without a promise to wait on (a tunnel's data path): a write the
   * kernel takes at once creates no promise. Packets that could not be written (rejected, or the
   * queue closed) are counted in counters.writesRejected. Returns true when the kernel took every
   * packet during the call; otherwise the rest is written later and the bytes must stay as they are.
   */
  postRanges(buffer: Uint8Array, offsets: Uint32Array, lengths: Uint32Array, count: number): boolean {
    if (count === 0) return true;
    if (count > offsets.length || count > lengths.length) throw new RangeError('count exceeds offsets or lengths');
    const n = this.#writeRawNow(buffer, offsets, lengths, count);
    if (n === count) return true;
    this.#writeRawRest(buffer, offsets, lengths, count, n).catch(() => { this.counters.writesRejected += count - Math.max(n, 0); });
    return false;
  }

  // With no write in progress, one native call usually takes the whole batch: then no promise
  // chain is built (a wake-up's latency is mostly the work done per batch). Returns how many
  // packets the kernel took (-1: not tried, a write is in progress or the queue is closed).
  #writeRawNow(buffer: Uint8Array, offsets: Uint32Array, lengths: Uint32Array, count: number): number {
    const nq = this.#native;
    if (this.#writeLock !== null || nq === null) return -1;
    let n: number;
    try {
      n = nq.writeRanges(buffer, offsets, lengths, 0, count, undefined, 0);
    } catch (e) {
      n = (e as { written?: number }).written ?? 0;
    }
    if (n === count) {
      let bytes = 0;
      for (let i = 0; i < count; i++) bytes += lengths[i]!;
      this.counters.packetsWritten += count;
      this.counters.bytesWritten += bytes;
      this.counters.batchesWritten++;
    }
    return n;
  }

  // The rest of a raw write, from packet `from` (-1: from the start, in turn after earlier
  // writes): a short write or a rejected packet continues in the ordered loop. The offsets are
  // copied, so the caller may reuse its arrays at once.
  #writeRawRest(buffer: Uint8Array, offsets: Uint32Array, lengths: Uint32Array, count: number, from: number,
    signal?: AbortSignal): Promise<number> {
    const o = offsets.slice(0, count);
    const l = lengths.slice(0, count);
    const skip = this.headerLength;
    return this.#exclusive(() => this.#writeLoop(count, (q, i) => q.writeRanges(buffer, o, l, i, count, undefined, 0),
      (i) => l[i]!, (i) => buffer.subarray(o[i]! + skip, o[i]! + l[i]!), signal, false, Math.max(0, from)));
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
