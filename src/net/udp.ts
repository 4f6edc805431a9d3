// UdpSocket: batched datagram I/O over native/udp.cc. Each readiness wake-up drains up to a
// batch with recvmmsg into one buffer and crosses into JS once; sends go out as one sendmmsg,
// optionally joined into UDP GSO sends; GRO-coalesced receives are split back into datagrams
// here by offsets alone (no copies).
import { addon, positiveInteger } from '../native.js';
import { Reader, type NativePoller } from '../readiness.js';
import type { Batch, PieceBatch } from '../base/batch.js';
import { call, toTuntapError, TuntapError, errnoName, type Explain } from '../errors.js';
import { inNetns, type NetnsRef } from '../netns.js';
import {
  ENDPOINT_SIZE, EndpointTable, addressFamily, decodeEndpoint, encodeEndpoint, endpointKey,
  type Endpoint, type ResolvedEndpoint,
} from './endpoint.js';

interface RecvArea {
  data: Buffer; slotSize: number; batch: number;
  lengths: Uint32Array; segmentSizes: Uint32Array; truncated: Uint32Array;
  endpoints: Uint8Array; drops: Uint32Array;
  /** Where send() leaves [packetsDone, errno, failedPacket, messagesDone] (no array per call). */
  sendResult: Uint32Array;
}

/** The socket: the shared poller calls (read drains into the receive area) plus its own. */
interface NativeSocket extends NativePoller {
  readonly fd: number;
  bind(rec: Uint8Array): void;
  connect(rec: Uint8Array): void;
  localEndpoint(out: Uint8Array): void;
  setIntOption(level: number, name: number, value: number, label: string): void;
  getIntOption(level: number, name: number): number;
  bindToDevice(name: string): void;
  setRecvArea(area: RecvArea): void;
  send(bufs: Uint8Array | readonly Uint8Array[], offsets: Uint32Array | null, lengths: Uint32Array | null,
    start: number, count: number, endpoints: Uint8Array | null, ids: Uint32Array | null, gsoSize: number): void;
  sendPieces(sources: readonly Uint8Array[], pieces: Uint32Array, ends: Uint32Array, start: number, count: number,
    endpoints: Uint8Array | null, ids: Uint32Array | null, gsoSize: number): void;
}
const native = addon as { UdpSocketNative: new (family: number) => NativeSocket };

// Linux socket option numbers (asm-generic).
const SOL_SOCKET = 1;
const SO_REUSEADDR = 2;
const SO_SNDBUF = 7;
const SO_RCVBUF = 8;
const SO_REUSEPORT = 15;
const SO_SNDBUFFORCE = 32;
const SO_RCVBUFFORCE = 33;
const SO_MARK = 36;
const SOL_UDP = 17;
const UDP_GRO = 104;
const IPPROTO_IPV6 = 41;
const IPV6_V6ONLY = 26;
const EAGAIN = 11;

/** The kernel's cap on segments in one UDP GSO send. */
export const MAX_GSO_SEGMENTS = 64;

export interface UdpSocketOptions {
  /** 4 or 6; by default the family of `bind`/`connect`'s address, else 4. */
  family?: 4 | 6;
  /** Local address and port (port 0 or omitted: the kernel picks one). */
  bind?: Partial<Endpoint>;
  /** Default peer: sends without a destination go here and only its datagrams are received. */
  connect?: Endpoint;
  /** Create the socket inside this network namespace. */
  netns?: NetnsRef;
  reuseAddr?: boolean;
  reusePort?: boolean;
  /** IPv6 sockets only: refuse IPv4-mapped peers. */
  ipv6Only?: boolean;
  /** SO_RCVBUF / SO_SNDBUF in bytes; as root the FORCE variants lift the sysctl caps. */
  recvBufferSize?: number;
  sendBufferSize?: number;
  /** SO_MARK: the fwmark routing rules see (lets a proxy's own traffic bypass its tunnel). */
  mark?: number;
  /** SO_BINDTODEVICE: send and receive only through this interface. */
  bindToDevice?: string;
  /** UDP_GRO: the kernel may coalesce equal-size datagrams from one peer; split again here. */
  gro?: boolean;
  /** System-call messages per receive batch (default 64; 16 with gro, each holding up to 64 datagrams). */
  batchSize?: number;
  /** Largest datagram to receive; longer ones are counted as truncated and dropped. Default 4096, 65535 with gro. */
  maxDatagramSize?: number;
}

/** Where `sendBatch` sends: the connected peer, one endpoint, one per datagram, or table ids. */
export type Destination =
  | undefined
  | Endpoint
  | readonly Endpoint[]
  | { table: EndpointTable; ids: Uint32Array };

export interface SendOptions {
  /**
   * Join consecutive datagrams to one destination into UDP GSO sends (one system-call message,
   * split by the kernel): every datagram of a group but the last must have the segment size.
   * A number fixes that size; 'auto' takes each group's size from its first datagram.
   */
  gsoSize?: number | 'auto';
  /** Throw on a per-datagram error (unreachable, refused, too big) instead of counting it. */
  strict?: boolean;
}

export interface UdpStats {
  /** Datagrams received and handed to JS (after GRO split). */
  received: number;
  /** Datagrams handed to the kernel. */
  sent: number;
  /** Receive system calls that returned data, and send system calls. */
  recvCalls: number;
  sendCalls: number;
  /** Messages the kernel took: fewer than `sent` when UDP GSO joined datagrams. */
  sendMessages: number;
  /** Times a send waited for POLLOUT because the socket's send buffer was full (backpressure). */
  writeWaits: number;
  /** Datagrams longer than maxDatagramSize, dropped. */
  truncated: number;
  /** Datagrams dropped on a per-datagram send error; the last such error. */
  sendErrors: number;
  lastSendError?: TuntapError;
  /** The kernel's count of datagrams dropped because the receive queue was full (SO_RXQ_OVFL). */
  kernelDrops: number;
  /** ICMP errors the kernel reported for earlier sends (port unreachable, ...), and the last one's code. */
  peerErrors: number;
  lastPeerError?: string;
}

const explainSocket: Explain = (code) => ({
  EADDRINUSE: 'the address and port are already in use',
  EADDRNOTAVAIL: 'that address is not assigned to any interface in this network namespace',
  EAFNOSUPPORT: 'the address family does not match the socket (IPv4 vs IPv6)',
  ENODEV: 'no such interface',
  ENETUNREACH: 'no route to that network',
  EHOSTUNREACH: 'no route to that host',
  ECONNREFUSED: 'the peer refused the datagram (nothing listens on that port)',
  EMSGSIZE: 'the datagram is larger than the path allows',
  EBADF: 'the socket is closed',
  EIO: 'the kernel could not segment this GSO send (checksum offload or segment size)',
} as Record<string, string>)[code];

/**
 * One received batch. Memory is valid until the iterator's next() is called (copy with
 * Buffer.from to keep a datagram longer).
 */
export class DatagramBatch implements Batch, Iterable<Buffer> {
  /** Datagrams in this batch (each GRO run already split). */
  count = 0;
  /** System-call messages that carried them (≤ count when GRO coalesced). */
  messages = 0;

  constructor(
    readonly buffer: Buffer,
    /** Start of datagram i in buffer. */
    readonly offsets: Uint32Array,
    /** Length of datagram i. */
    readonly lengths: Uint32Array,
    /** Message index (into the endpoint records) of datagram i. */
    readonly sources: Uint16Array,
    /** The source endpoint record of each message (24 bytes each). */
    readonly endpoints: Uint8Array,
  ) {}

  /** Zero-copy view of datagram i. */
  datagram(i: number): Buffer {
    const at = this.offsets[i]!;
    return this.buffer.subarray(at, at + this.lengths[i]!);
  }

  /** Byte offset of datagram i's source record in `endpoints`. */
  endpointOffset(i: number): number { return this.sources[i]! * ENDPOINT_SIZE; }

  /** Datagram i's source as address/port/family (formats a string; use endpointKey on hot paths). */
  endpoint(i: number): ResolvedEndpoint { return decodeEndpoint(this.endpoints, this.endpointOffset(i)); }

  /** A compact map key of datagram i's source (number for IPv4). */
  endpointKey(i: number): number | string { return endpointKey(this.endpoints, this.endpointOffset(i)); }

  /** Source port of datagram i. */
  port(i: number): number {
    const at = this.endpointOffset(i);
    return (this.endpoints[at + 16]! << 8) | this.endpoints[at + 17]!;
  }

  *[Symbol.iterator](): Iterator<Buffer> {
    for (let i = 0; i < this.count; i++) yield this.datagram(i);
  }
}

function closedError(what: string): TuntapError {
  return new TuntapError('udp socket', 9, `${what}: the socket is closed (EBADF)`);
}


/** What a send takes: datagrams in one buffer (with offsets and lengths), an Array, or pieces. */
type SendData = Uint8Array | readonly Uint8Array[] | PieceBatch;

function isPieceBatch(d: SendData): d is PieceBatch {
  return !(d instanceof Uint8Array) && !Array.isArray(d);
}

/** A queued send's own copy of the piece list (the caller may reuse its arrays). */
function copyPieceList(b: PieceBatch): PieceBatch {
  const pieces = b.count === 0 ? 0 : b.ends[b.count - 1]!;
  return { sources: [...b.sources], pieces: b.pieces.slice(0, 3 * pieces), ends: b.ends.slice(0, b.count), count: b.count };
}

interface SendPlan { rec: Uint8Array | null; ids: Uint32Array | null; gso: number; strict: boolean }
const SENT: Promise<void> = Promise.resolve();

export class UdpSocket implements AsyncIterable<DatagramBatch>, AsyncDisposable {
  readonly family: 4 | 6;
  readonly stats: UdpStats = { received: 0, sent: 0, recvCalls: 0, sendCalls: 0, sendMessages: 0, writeWaits: 0, truncated: 0, sendErrors: 0, kernelDrops: 0, peerErrors: 0 };
  private sock: NativeSocket | null;
  private readonly area: RecvArea;
  private readonly batch: DatagramBatch;
  private readonly maxSplit: number;
  private readonly reader: Reader;
  private writeChain: Promise<void> = Promise.resolve();
  private writesQueued = 0;
  private writeWaiters = new Set<(e?: unknown) => void>();
  private lastDest: { address: string; port: number; rec: Uint8Array } | null = null;

  /** Opens a socket (synchronously, inside `opts.netns` when given) and applies the options. */
  static open(opts: UdpSocketOptions = {}): UdpSocket {
    return opts.netns !== undefined ? inNetns(opts.netns, () => new UdpSocket(opts)) : new UdpSocket(opts);
  }

  private constructor(opts: UdpSocketOptions) {
    const guess = opts.bind?.address !== undefined ? addressFamily(opts.bind.address)
      : opts.connect !== undefined ? addressFamily(opts.connect.address) : undefined;
    this.family = opts.family ?? guess ?? 4;
    // A GRO message can hold 64 datagrams in a 64 KiB slot, so fewer slots keep memory modest.
    const batchSize = Math.max(1, Math.min(positiveInteger(opts.batchSize ?? (opts.gro ? 16 : 64), 'batchSize'), 1024));
    const slotSize = Math.max(64, Math.min(positiveInteger(opts.maxDatagramSize ?? (opts.gro ? 65535 : 4096), 'maxDatagramSize'), 65535));
    this.area = {
      data: Buffer.allocUnsafeSlow(batchSize * slotSize), slotSize, batch: batchSize,
      lengths: new Uint32Array(batchSize), segmentSizes: new Uint32Array(batchSize),
      truncated: new Uint32Array(batchSize), endpoints: new Uint8Array(batchSize * ENDPOINT_SIZE),
      drops: new Uint32Array(3), sendResult: new Uint32Array(4),
    };
    const sock = call(`opening a UDP/IPv${this.family} socket`, () => new native.UdpSocketNative(this.family), explainSocket);
    this.sock = sock;
    try {
      this.configure(sock, opts);
      sock.setRecvArea(this.area);
    } catch (e) {
      sock.close();
      this.sock = null;
      throw e;
    }
    // A GRO message of slotSize bytes holds at most slotSize/1 datagrams in theory; the kernel
    // caps a GRO run at 64 segments, which bounds the split arrays.
    this.maxSplit = opts.gro ? batchSize * MAX_GSO_SEGMENTS : batchSize;
    this.batch = new DatagramBatch(this.area.data, new Uint32Array(this.maxSplit), new Uint32Array(this.maxSplit),
      new Uint16Array(this.maxSplit), this.area.endpoints);
    const socket = this;
    this.reader = new Reader({
      get poller() { return socket.sock; },
      // A short drain emptied the socket: wait for readiness rather than spend a system call on EAGAIN.
      mayHaveMore: (n) => n >= this.area.batch,
      readError: (e) => toTuntapError(e, 'receiving datagrams', explainSocket),
    }, 'UdpSocket: another receive is already waiting (only one receive may wait at a time)');
  }

  private configure(sock: NativeSocket, opts: UdpSocketOptions): void {
    const set = (level: number, name: number, value: number, label: string, what: string) =>
      call(what, () => sock.setIntOption(level, name, value, `setsockopt(${label})`), explainSocket);
    if (opts.reuseAddr) set(SOL_SOCKET, SO_REUSEADDR, 1, 'SO_REUSEADDR', 'allowing address reuse');
    if (opts.reusePort) set(SOL_SOCKET, SO_REUSEPORT, 1, 'SO_REUSEPORT', 'allowing port reuse');
    if (opts.ipv6Only !== undefined) {
      if (this.family !== 6) throw new TypeError('ipv6Only applies to IPv6 sockets only');
      set(IPPROTO_IPV6, IPV6_V6ONLY, opts.ipv6Only ? 1 : 0, 'IPV6_V6ONLY', 'restricting the socket to IPv6');
    }
    if (opts.recvBufferSize !== undefined) this.setRecvBufferSize(opts.recvBufferSize, sock);
    if (opts.sendBufferSize !== undefined) this.setSendBufferSize(opts.sendBufferSize, sock);
    if (opts.mark !== undefined) set(SOL_SOCKET, SO_MARK, opts.mark, 'SO_MARK', `setting fwmark ${opts.mark}`);
    if (opts.bindToDevice !== undefined) {
      const dev = opts.bindToDevice;
      call(`binding the socket to interface ${dev}`, () => sock.bindToDevice(dev), explainSocket);
    }
    if (opts.gro) set(SOL_UDP, UDP_GRO, 1, 'UDP_GRO', 'enabling UDP GRO');
    if (opts.bind !== undefined || opts.connect === undefined) {
      const address = opts.bind?.address ?? (this.family === 6 ? '::' : '0.0.0.0');
      const port = opts.bind?.port ?? 0;
      call(`binding UDP socket to ${address} port ${port}`, () => sock.bind(encodeEndpoint(address, port)), explainSocket);
    }
    if (opts.connect !== undefined) {
      const { address, port } = opts.connect;
      call(`connecting UDP socket to ${address} port ${port}`, () => sock.connect(encodeEndpoint(address, port)), explainSocket);
    }
  }

  private live(what: string): NativeSocket {
    if (this.sock === null) throw closedError(what);
    return this.sock;
  }

  get closed(): boolean { return this.sock === null; }

  /** The socket's file descriptor (-1 once closed). */
  get fd(): number { return this.sock?.fd ?? -1; }

  /** The bound local address and port. */
  get localEndpoint(): ResolvedEndpoint {
    const rec = new Uint8Array(ENDPOINT_SIZE);
    const sock = this.live('reading the local address');
    call('reading the local address', () => sock.localEndpoint(rec), explainSocket);
    return decodeEndpoint(rec);
  }

  /** Connects (or re-connects) to a default peer. */
  connect(peer: Endpoint): void {
    const sock = this.live('connecting');
    call(`connecting UDP socket to ${peer.address} port ${peer.port}`, () => sock.connect(encodeEndpoint(peer.address, peer.port)), explainSocket);
  }

  private setBuffer(size: number, force: number, plain: number, label: string, sock: NativeSocket): void {
    try {
      sock.setIntOption(SOL_SOCKET, force, size, `setsockopt(${label}FORCE)`);
    } catch (e) {
      // Without CAP_NET_ADMIN the FORCE variant is refused; the plain one is capped by sysctl.
      if ((e as { errno?: number }).errno !== 1) throw toTuntapError(e, `setting ${label} to ${size}`, explainSocket);
      call(`setting ${label} to ${size}`, () => sock.setIntOption(SOL_SOCKET, plain, size, `setsockopt(${label})`), explainSocket);
    }
  }

  /** SO_RCVBUF (the kernel doubles it for bookkeeping; read back with recvBufferSize). */
  setRecvBufferSize(bytes: number, sock = this.live('setting SO_RCVBUF')): void {
    this.setBuffer(bytes, SO_RCVBUFFORCE, SO_RCVBUF, 'SO_RCVBUF', sock);
  }

  setSendBufferSize(bytes: number, sock = this.live('setting SO_SNDBUF')): void {
    this.setBuffer(bytes, SO_SNDBUFFORCE, SO_SNDBUF, 'SO_SNDBUF', sock);
  }

  get recvBufferSize(): number { return this.live('reading SO_RCVBUF').getIntOption(SOL_SOCKET, SO_RCVBUF); }
  get sendBufferSize(): number { return this.live('reading SO_SNDBUF').getIntOption(SOL_SOCKET, SO_SNDBUF); }
  get mark(): number { return this.live('reading SO_MARK').getIntOption(SOL_SOCKET, SO_MARK); }

  setMark(mark: number): void {
    const sock = this.live('setting SO_MARK');
    call(`setting fwmark ${mark}`, () => sock.setIntOption(SOL_SOCKET, SO_MARK, mark, 'setsockopt(SO_MARK)'), explainSocket);
  }

  bindToDevice(name: string): void {
    const sock = this.live('binding to a device');
    call(`binding the socket to interface ${name}`, () => sock.bindToDevice(name), explainSocket);
  }

  // ---- receive ----

  /** Lays the n drained messages out as datagrams: drops truncated ones, splits GRO runs. */
  private fill(n: number): DatagramBatch {
    const a = this.area;
    const b = this.batch;
    const offsets = b.offsets;
    const lengths = b.lengths;
    const source = b.sources;
    let count = 0;
    for (let i = 0; i < n; i++) {
      const len = a.lengths[i]!;
      if (a.truncated[i]) { this.stats.truncated++; continue; }
      const base = i * a.slotSize;
      const seg = a.segmentSizes[i]!;
      if (seg === 0) {
        offsets[count] = base; lengths[count] = len; source[count] = i; count++;
        continue;
      }
      for (let at = 0; at < len && count < this.maxSplit; at += seg) {
        offsets[count] = base + at; lengths[count] = Math.min(seg, len - at); source[count] = i; count++;
      }
    }
    b.count = count;
    b.messages = n;
    this.stats.received += count;
    this.stats.recvCalls++;
    this.stats.kernelDrops = a.drops[0]!;
    this.notePeerErrors();
    return b;
  }

  private notePeerErrors(): void {
    const seen = this.area.drops[1]!;
    if (seen !== this.stats.peerErrors) {
      this.stats.peerErrors = seen;
      this.stats.lastPeerError = errnoName(this.area.drops[2]!);
    }
  }

  /**
   * Receives the next batch: null once closed. The previous batch's memory is reused. An abort
   * stops the wait (rejecting with the signal's reason) and leaves the socket open.
   */
  receive(opts: { signal?: AbortSignal } = {}): Promise<DatagramBatch | null> {
    return this.reader.next((n) => this.fill(n), opts.signal);
  }

  /**
   * Receives batches into onBatch until the socket closes (onEnd(null)) or a receive fails
   * (onEnd(err); an exception thrown by onBatch ends the loop the same way). The callback form
   * of batches(): no promise or generator step per batch, so an idle wake-up runs little code.
   * Each batch is valid until onBatch returns; empty batches (all truncated) are skipped.
   */
  receiveEach(onBatch: (batch: DatagramBatch) => void, onEnd: (err: unknown) => void): void {
    this.reader.each((n) => {
      const batch = this.fill(n);
      if (batch.count > 0) onBatch(batch);
    }, onEnd);
  }

  /** Batches until the socket closes or `signal` aborts (which ends the iteration, socket open). */
  async *batches(opts: { signal?: AbortSignal } = {}): AsyncGenerator<DatagramBatch> {
    const { signal } = opts;
    while (!signal?.aborted) {
      let batch: DatagramBatch | null;
      try {
        batch = await this.receive({ signal });
      } catch (e) {
        if (signal?.aborted && e === signal.reason) return;
        throw e;
      }
      if (batch === null) return;
      if (batch.count > 0) yield batch;
    }
  }

  [Symbol.asyncIterator](): AsyncIterator<DatagramBatch> {
    return this.batches();
  }

  // ---- send ----

  private destination(to: Destination, count: number): { rec: Uint8Array | null; ids: Uint32Array | null } {
    if (to === undefined) return { rec: null, ids: null };
    if ('table' in to) {
      if (to.ids.length < count) throw new RangeError(`sendBatch: ${count} datagrams but ${to.ids.length} destination ids`);
      return { rec: to.table.bytes, ids: to.ids };
    }
    if (Array.isArray(to)) {
      const list = to as readonly Endpoint[];
      if (list.length < count) throw new RangeError(`sendBatch: ${count} datagrams but ${list.length} destinations`);
      const table = new EndpointTable();
      const ids = new Uint32Array(count);
      for (let i = 0; i < count; i++) ids[i] = table.add(list[i]!.address, list[i]!.port);
      return { rec: table.bytes, ids };
    }
    const one = to as Endpoint;
    const last = this.lastDest;
    if (last !== null && last.address === one.address && last.port === one.port) return { rec: last.rec, ids: null };
    const rec = encodeEndpoint(one.address, one.port);
    this.lastDest = { address: one.address, port: one.port, rec };
    return { rec, ids: null };
  }

  private waitWritable(sock: NativeSocket): Promise<void> {
    return new Promise((resolve, reject) => {
      const done = (e?: unknown) => { this.writeWaiters.delete(done); if (e) reject(e); else resolve(); };
      this.writeWaiters.add(done);
      sock.waitWritable((err) => { done(err ? toTuntapError(err, 'waiting to send', explainSocket) : undefined); });
    });
  }

  private sendPlan(count: number, to: Destination, opts: SendOptions): SendPlan {
    const { rec, ids } = this.destination(to, count);
    const gso = opts.gsoSize === 'auto' ? -1 : opts.gsoSize ?? 0;
    if (opts.gsoSize !== 'auto' && (!Number.isInteger(gso) || gso < 0 || gso > 65535)) throw new RangeError(`invalid gsoSize ${opts.gsoSize}`);
    return { rec, ids, gso, strict: opts.strict === true };
  }

  // One send system call from `start`: returns where the next call starts, or -(start + 1)
  // when the socket buffer is full and the caller must wait for POLLOUT first.
  private sendStep(bufs: SendData, offsets: Uint32Array | null, lengths: Uint32Array | null,
    start: number, count: number, plan: SendPlan): number {
    const sock = this.live('sending datagrams');
    const { rec, ids } = plan;
    try {
      if (isPieceBatch(bufs)) sock.sendPieces(bufs.sources, bufs.pieces, bufs.ends, start, count, rec, ids, plan.gso);
      else sock.send(bufs, offsets, lengths, start, count - start, rec, ids, plan.gso);
    } catch (e) {
      throw toTuntapError(e, 'sending datagrams', explainSocket);
    }
    this.stats.sendCalls++;
    const result = this.area.sendResult;
    const done = result[0]!;
    const err = result[1]!;
    const failed = result[2]!;
    this.stats.sendMessages += result[3]!;
    const first = start;
    start += done;
    if (err === 0) { this.stats.sent += done; return start; }
    if (err === EAGAIN) {
      this.stats.sent += done;
      this.stats.writeWaits++;
      return -(start + 1);
    }
    // Packets before `failed` went out; the failed message's packets are dropped.
    this.stats.sent += failed - first;
    const target = rec === null ? 'the connected peer' : decodeEndpoint(rec, (ids ? ids[failed]! : 0) * ENDPOINT_SIZE).address;
    const error = new TuntapError('sendmmsg', err,
      `sending a datagram to ${target}: ${explainSocket(errnoName(err)) ?? 'failed'} (sendmmsg: ${errnoName(err)})`);
    if (plan.strict) throw error;
    this.stats.sendErrors += first + done - failed;
    this.stats.lastSendError = error;
    return start;
  }

  private async sendLoop(bufs: SendData, offsets: Uint32Array | null, lengths: Uint32Array | null,
    start: number, count: number, plan: SendPlan, waitFirst: boolean): Promise<void> {
    if (waitFirst) await this.waitWritable(this.live('sending datagrams'));
    while (start < count) {
      const next = this.sendStep(bufs, offsets, lengths, start, count, plan);
      if (next >= 0) { start = next; continue; }
      start = -next - 1;
      await this.waitWritable(this.live('sending datagrams'));
    }
  }

  // With nothing queued the datagrams go to the kernel now, without any promise machinery when
  // it takes them all (the usual case: a wake-up's latency is mostly the work done per batch);
  // what a full socket leaves goes through the ordered asynchronous loop.
  private startSend(bufs: SendData, offsets: Uint32Array | null, lengths: Uint32Array | null,
    count: number, to: Destination, opts: SendOptions): Promise<void> {
    let start = 0;
    // Set when this call already sent (a send waiting in the queue plans when its turn comes).
    let plan: SendPlan | null = null;
    if (this.writesQueued === 0) {
      try {
        plan = this.sendPlan(count, to, opts);
        while (start < count) {
          const next = this.sendStep(bufs, offsets, lengths, start, count, plan);
          if (next < 0) { start = -next - 1; break; }
          start = next;
        }
      } catch (e) {
        return Promise.reject(e);
      }
      if (start >= count) return SENT;
    }
    // The caller may reuse its offset and length arrays once this returns: the queued send keeps copies.
    const o = offsets?.slice(0, count) ?? null;
    const l = lengths?.slice(0, count) ?? null;
    const started = plan;
    const data = isPieceBatch(bufs) ? copyPieceList(bufs) : bufs;
    return this.enqueue(() => this.sendLoop(data, o, l, start, count, started ?? this.sendPlan(count, to, opts), started !== null));
  }

  private enqueue(job: () => Promise<void>): Promise<void> {
    // Sends keep their order: a batch waiting for POLLOUT holds back the ones after it. With
    // nothing queued the send starts now, so the kernel has the datagrams before this returns
    // unless the socket is full.
    const run = () => {
      this.writesQueued++;
      return job().finally(() => { this.writesQueued--; });
    };
    const next = this.writesQueued === 0 ? run() : this.writeChain.then(run, run);
    this.writeChain = next.catch(() => undefined);
    return next;
  }

  /**
   * Sends datagrams in as few system calls as possible (sendmmsg; with gsoSize, UDP GSO). Resolves
   * once the kernel took them all, waiting for POLLOUT when the socket buffer is full; keep the
   * datagrams' bytes unchanged until then. Per-datagram failures (unreachable, refused, too
   * big) are counted in stats.sendErrors unless opts.strict; a closed socket rejects (EBADF).
   */
  sendBatch(datagrams: readonly Uint8Array[], to?: Destination, opts: SendOptions = {}): Promise<void> {
    return this.startSend(datagrams, null, null, datagrams.length, to, opts);
  }

  /**
   * Like sendBatch, for datagrams laid out in one buffer (a received or device batch, zero-copy).
   * The offsets and lengths arrays may be reused once this returns; the bytes may not, until it resolves.
   */
  sendPacked(batch: Batch, to?: Destination, opts: SendOptions = {}): Promise<void> {
    return this.startSend(batch.buffer, batch.offsets, batch.lengths, batch.count, to, opts);
  }

  /**
   * Like sendPacked, for datagrams gathered from pieces (a tunnel's headers in one buffer, each
   * payload where it was read): datagram i is sent from its pieces as one iovec list, UDP GSO
   * joining datagrams as for sendPacked. The piece arrays may be reused once this returns; the
   * sources' bytes may not, until it resolves.
   */
  sendGathered(batch: PieceBatch, to?: Destination, opts: SendOptions = {}): Promise<void> {
    return this.startSend(batch, null, null, batch.count, to, opts);
  }

  /**
   * sendPacked without a promise to wait on, for senders that do not wait (a tunnel's data
   * path): a send the kernel takes at once creates no promise at all. Per-datagram failures are
   * counted in stats.sendErrors as always; a send that fails as a whole (socket closed) is
   * counted there too, with lastSendError. Returns true when the kernel took the datagrams during
   * the call; otherwise they go out later and the bytes must stay as they are until then.
   */
  post(batch: Batch, to?: Destination, opts: SendOptions = {}): boolean {
    const p = this.startSend(batch.buffer, batch.offsets, batch.lengths, batch.count, to, opts);
    if (p === SENT) return true;
    p.catch((e: unknown) => this.countFailedSend(e, batch.count));
    return false;
  }

  private countFailedSend(e: unknown, count: number): void {
    this.stats.sendErrors += count;
    const err = toTuntapError(e, 'sending datagrams', explainSocket);
    if (err instanceof TuntapError) this.stats.lastSendError = err;
  }

  send(datagram: Uint8Array, to?: Endpoint): Promise<void> {
    return this.sendBatch([datagram], to);
  }

  // ---- close ----

  /** Closes the socket: pending receives end (null / iteration ends), pending sends reject. */
  async close(): Promise<void> {
    const sock = this.sock;
    if (sock === null) return;
    this.sock = null;
    sock.close();
    this.reader.end();
    for (const waiter of [...this.writeWaiters]) waiter(closedError('sending datagrams'));
  }

  async [Symbol.asyncDispose](): Promise<void> { await this.close(); }
}

/** Opens a batched UDP socket; see UdpSocketOptions. */
export function openUdp(opts: UdpSocketOptions = {}): UdpSocket {
  return UdpSocket.open(opts);
}
