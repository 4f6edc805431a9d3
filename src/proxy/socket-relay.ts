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

  /**
   * Whether `adopt` can take the two sockets now: both open, on plain fds, with nothing of
   * Node's left to write.
   */
  static canAdopt(a: net.Socket, b: net.Socket): boolean {
    return !a.destroyed && !b.destroyed && a.writableLength === 0 && b.writableLength === 0 && fdOf(a) >= 0 && fdOf(b) >= 0;
  }

  /**
   * Relays between `a` and `b` natively and destroys both net.Sockets (their connections live on
   * in the set's duplicates). Bytes Node had already read from one go to the other first.
   * Returns the pair's id; throws a TuntapError (then `a` is left as it was when the first fd
   * could not be taken, else both sockets are destroyed and the relay resets `a`'s connection).
   */
  adopt(a: net.Socket, b: net.Socket): number {
    const set = this.#set;
    if (set === null) throw new Error('the relay is closed');
    const fromA = buffered(a), fromB = buffered(b);
    // One socket at a time, each closed as soon as its duplicate exists: a handover needs one
    // spare fd, not two (the set keeps one for a process at its open-files limit).
    const id = call('relaying a connection', () => set.add(fdOf(a)));
    a.destroy();
    try {
      call('relaying a connection', () => set.attach(id, fdOf(b), fromA, fromB));
    } catch (e) {
      set.drop(id, true);
      b.destroy();
      throw e;
    }
    b.destroy();
    return id;
  }

  /** Closes a pair (with `reset`, both sides get a RST); its byte counts, or undefined if it is gone. */
  drop(id: number, reset = false): { bytesAToB: number; bytesBToA: number } | undefined {
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
    set?.close();
  }
}
