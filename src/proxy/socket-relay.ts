// Relayed connections handed to native code (native/relay.cc): once a connection's handshake is
// done, its two sockets' fds go to one RelaySet that copies their bytes in C++, and the two
// net.Sockets are destroyed. JS hears of a pair only when it finishes (in batches, from the
// set's readiness wait) or when the idle sweep asks which pairs moved bytes; no JS object, Buffer
// or call per chunk remains. What to do with a finished or idle pair (limits, stats, timeouts)
// is the caller's policy.
import type net from 'node:net';
import { addon } from '../native.js';
import { call, toTuntapError } from '../errors.js';
import type { NativePoller } from '../readiness.js';

interface NativeRelaySet extends NativePoller {
  readonly size: number;
  /** Bytes held by all pairs' short writes. */
  readonly held: number;
  add(fdA: number): number;
  attach(id: number, fdB: number, toB?: Uint8Array, toA?: Uint8Array): void;
  drop(id: number, reset?: boolean): [number, number] | undefined;
  bytes(id: number): [number, number] | undefined;
  takeFinished(out: Float64Array): number;
  takeActive(out: Uint32Array): number;
  trim(): boolean;
}
const native = addon as { RelaySet: new (maxPairs: number, heldLimit?: number, chunk?: number, fairShare?: number) => NativeRelaySet };

/** Doubles per finished record: id, bytes a→b, bytes b→a, failed side, errno. */
const RECORD = 5;

/** How a pair ended: both directions passed on their FIN, or one side failed (the other was reset). */
export interface RelayEnd {
  id: number;
  bytesAToB: number;
  bytesBToA: number;
  /** The side whose read or write failed; null when both ended normally. */
  failed: 'a' | 'b' | null;
  errno: number;
}

export interface SocketRelayOptions {
  /** The most pairs relayed at once. */
  maxPairs: number;
  /** Bytes all pairs' short writes may hold before reads shrink to 16 KiB (default 64 MiB). */
  heldLimit?: number;
  onFinished: (end: RelayEnd) => void;
  /** The readiness wait failed (the set no longer relays). */
  onError?: (e: unknown) => void;
}

/** The fd under a net.Socket, or -1 when it has none (destroyed, or not a plain fd). */
function fdOf(sock: net.Socket): number {
  const handle = (sock as unknown as { _handle?: { fd?: number } })._handle;
  return typeof handle?.fd === 'number' ? handle.fd : -1;
}

/** What Node has read from a paused socket and not handed out yet. */
function buffered(sock: net.Socket): Buffer | undefined {
  if (sock.readableLength === 0) return undefined;
  const chunks: Buffer[] = [];
  for (let c = sock.read() as Buffer | null; c !== null; c = sock.read() as Buffer | null) chunks.push(c);
  return chunks.length === 0 ? undefined : Buffer.concat(chunks);
}

export class SocketRelay {
  #set: NativeRelaySet | null;
  #finished = new Float64Array(RECORD * 256);
  #active = new Uint32Array(4096);
  /** Bytes read from side A before a pair's side B came (rare: a client that spoke first). */
  #early = new Map<number, Buffer>();

  constructor(private readonly opts: SocketRelayOptions) {
    this.#set = call('creating the relay', () => new native.RelaySet(opts.maxPairs, opts.heldLimit));
    this.#set.unref();
    this.#set.waitReadable((err) => {
      if (err) {
        this.opts.onError?.(toTuntapError(err, 'relaying connections'));
        return;
      }
      this.#collect();
    }, true);
  }

  get size(): number { return this.#set?.size ?? 0; }
  /** Bytes the pairs hold from short writes now. */
  get held(): number { return this.#set?.held ?? 0; }

  /** Whether the relay can take `sock` now: open, on a plain fd, with nothing of Node's left to write. */
  static canTake(sock: net.Socket): boolean {
    return !sock.destroyed && sock.writableLength === 0 && fdOf(sock) >= 0;
  }

  /**
   * Takes side A of a pair and destroys its net.Socket (the connection lives on in the set's
   * duplicate; nothing is relayed until complete()). Bytes Node had read from it are kept for
   * side B. Returns the pair's id; throws a TuntapError (`a` is then left as it was).
   */
  begin(a: net.Socket): number {
    const set = this.#live();
    const early = buffered(a);
    const id = call('relaying a connection', () => set.add(fdOf(a)));
    if (early) this.#early.set(id, early);
    a.destroy();
    return id;
  }

  /**
   * Takes side B and starts relaying; bytes Node had read from either side go to the other
   * first. On a TuntapError `b` is left as it was and the pair stays (drop it).
   */
  complete(id: number, b: net.Socket): void {
    const set = this.#live();
    const fromB = buffered(b);
    call('relaying a connection', () => set.attach(id, fdOf(b), this.#early.get(id), fromB));
    this.#early.delete(id);
    b.destroy();
  }

  /** begin(a) and complete(id, b) at once. */
  adopt(a: net.Socket, b: net.Socket): number {
    const id = this.begin(a);
    try {
      this.complete(id, b);
    } catch (e) {
      this.drop(id, true);
      throw e;
    }
    return id;
  }

  #live(): NativeRelaySet {
    if (this.#set === null) throw new Error('the relay is closed');
    return this.#set;
  }

  /** Closes a pair (with `reset`, both sides get a RST); its byte counts, or undefined if it is gone. */
  drop(id: number, reset = false): { bytesAToB: number; bytesBToA: number } | undefined {
    this.#early.delete(id);
    const counts = this.#set?.drop(id, reset);
    return counts && { bytesAToB: counts[0], bytesBToA: counts[1] };
  }

  bytes(id: number): { bytesAToB: number; bytesBToA: number } | undefined {
    const counts = this.#set?.bytes(id);
    return counts && { bytesAToB: counts[0], bytesBToA: counts[1] };
  }

  /** Calls `mark` with each pair that moved bytes since the last call. */
  takeActive(mark: (id: number) => void): void {
    const set = this.#set;
    if (set === null) return;
    for (;;) {
      const n = set.takeActive(this.#active);
      for (let i = 0; i < n; i++) mark(this.#active[i]!);
      if (n < this.#active.length) return;
    }
  }

  /** Hands free heap memory back to the system (worth it after many pairs closed). */
  trim(): void { this.#set?.trim(); }

  #collect(): void {
    const set = this.#set;
    if (set === null) return;
    const out = this.#finished;
    for (;;) {
      const n = set.takeFinished(out);
      for (let i = 0; i < n; i++) {
        const r = i * RECORD;
        const side = out[r + 3]!;
        this.opts.onFinished({
          id: out[r]!, bytesAToB: out[r + 1]!, bytesBToA: out[r + 2]!,
          failed: side === 0 ? 'a' : side === 1 ? 'b' : null, errno: out[r + 4]!,
        });
      }
      if (n * RECORD < out.length || this.#set === null) return;
    }
  }

  /** Closes every pair, the epoll fd and its poll handle. */
  close(): void {
    const set = this.#set;
    this.#set = null;
    this.#early.clear();
    set?.close();
  }
}
