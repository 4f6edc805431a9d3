// The one readiness loop. Every native object that waits on an fd (a TUN/TAP queue, a UDP
// socket, a netlink event socket) is a poller with one convention (native/poller.h): read()
// drains what is queued and returns a count, waitReadable(cb, persistent) calls cb(err, count)
// after a wake-up drained something. A Reader turns that into the two ways a layer offers
// reads: a promise per batch (next), or a callback per batch (each), which costs no promise or
// generator step per wake-up. Both read again at once while drains come back full, at most
// SYNC_DRAINS times in a row, then go through the event loop so timers and other I/O still run.

/** The calls every native poller answers (TunQueue, UdpSocketNative, NetlinkWatcher). */
export interface NativePoller {
  /** Drains what is queued now: a count, 0 when nothing is; throws an errno Error on failure. */
  read(): number;
  /** cb(err, count) after a wake-up drained something; with `persistent`, until cancel('read'). */
  waitReadable(cb: (err: Error | null, count: number) => void, persistent?: boolean): void;
  /** cb(err) once the fd takes writes again. */
  waitWritable(cb: (err: Error | null) => void): void;
  cancel(which: 'read' | 'write'): void;
  ref(): void;
  unref(): void;
  close(): void;
}

/** What a Reader reads for: the owner of a native poller. */
export interface ReadSource {
  /** The poller while the source is open; null once it closed. */
  readonly poller: NativePoller | null;
  /**
   * Whether a drain of `count` may have left more queued (it stopped at a full batch). A short
   * drain waits for readiness, which reports at once anything left, instead of spending a system
   * call on hearing EAGAIN.
   */
  mayHaveMore(count: number): boolean;
  /** The typed error for a failed read (errors that are not the kernel's pass through). */
  readError(e: unknown): unknown;
}

/** Drains served in a row without a trip through the event loop. */
export const SYNC_DRAINS = 8;

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException('The operation was aborted', 'AbortError');
}

export class Reader {
  #streak = 0;
  #busy = false;
  /** Ends the running wait or loop: set while one runs (close() calls it through closed()). */
  #end: ((err: unknown) => void) | null = null;
  #poke: (() => void) | null = null;
  #inCallback = false;

  /** `busy` is the message of the error a second reader gets. */
  constructor(private readonly source: ReadSource, private readonly busy: string) {}

  /** A read (next or each) is running. */
  get reading(): boolean { return this.#busy; }

  /**
   * The next batch: `serve(count)` turns a drain into it, or returns undefined when the drain
   * gave nothing to hand out (then the reader reads on). Resolves null once the source closed.
   * One promise per batch, already settled when a drain at once found something. The signal
   * aborts a wait (rejecting with its reason) and leaves the source open.
   */
  next<T>(serve: (count: number) => T | undefined, signal?: AbortSignal): Promise<T | null> {
    const poller = this.source.poller;
    if (poller === null) return Promise.resolve(null);
    if (this.#busy) return Promise.reject(new Error(this.busy));
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    try {
      while (this.#streak < SYNC_DRAINS) {
        const n = poller.read();
        if (n <= 0) break;
        this.#streak++;
        const batch = serve(n);
        if (batch !== undefined) return Promise.resolve(batch);
      }
    } catch (e) {
      return Promise.reject(this.source.readError(e));
    }
    this.#streak = 0;
    this.#busy = true;
    return new Promise<T | null>((resolve, reject) => {
      const done = (err: unknown, batch: T | null | undefined) => {
        if (!this.#busy) return;
        this.#busy = false;
        this.#end = null;
        signal?.removeEventListener('abort', onAbort);
        if (err) reject(err);
        else if (batch === undefined) resolve(this.next(serve, signal));
        else resolve(batch);
      };
      const onAbort = () => {
        this.source.poller?.cancel('read');
        done(abortReason(signal!), null);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#end = () => done(null, null);
      poller.waitReadable((err, count) => {
        if (err) { done(this.source.readError(err), null); return; }
        let batch: T | undefined;
        try {
          batch = serve(count);
        } catch (e) {
          done(e, null);
          return;
        }
        done(null, batch);
      });
    });
  }

  /**
   * Calls onCount with each drain's count until the source closes (onEnd(null)) or a read
   * fails (onEnd(err); an exception thrown by onCount ends the loop the same way). The native
   * wait is armed once and calls back on every wake-up until the loop ends.
   */
  each(onCount: (count: number) => void, onEnd: (err: unknown) => void): void {
    if (this.source.poller === null) { onEnd(null); return; }
    if (this.#busy) throw new Error(this.busy);
    this.#busy = true;
    let ended = false;
    let armed = false;
    const finish = (err: unknown) => {
      if (ended) return;
      ended = true;
      this.#busy = false;
      this.#end = null;
      this.#poke = null;
      if (armed) this.source.poller?.cancel('read');
      onEnd(err);
    };
    // Serves the drain the wake-up made, then more read at once while they come back full, then
    // waits for readiness again.
    const run = (n: number) => {
      try {
        for (let streak = 0; ; streak++) {
          if (n > 0) {
            this.#inCallback = true;
            try { onCount(n); } finally { this.#inCallback = false; }
          }
          const poller = this.source.poller;
          if (poller === null || ended) { finish(null); return; }
          if (streak >= SYNC_DRAINS || !this.source.mayHaveMore(n)) break;
          n = poller.read();
          if (n <= 0) break;
        }
      } catch (e) {
        finish(this.source.readError(e));
        return;
      }
      if (!armed) {
        armed = true;
        this.source.poller!.waitReadable(wake, true);
      }
    };
    const wake = (err: Error | null, count: number) => {
      if (ended) return;
      if (err) finish(this.source.readError(err));
      else if (this.source.poller === null) finish(null);
      else run(count);
    };
    this.#end = finish;
    this.#poke = () => {
      const poller = this.source.poller;
      if (ended || poller === null || this.#inCallback) return;
      let n: number;
      try {
        n = poller.read();
      } catch (e) {
        finish(this.source.readError(e));
        return;
      }
      if (n > 0) run(n);
    };
    run(0);
  }

  /**
   * Reads now, on behalf of the running each() loop, what may have been queued since its last
   * wake-up, instead of waiting for the next readiness report. No-op without such a loop or from
   * inside its own callback.
   */
  poke(): void { this.#poke?.(); }

  /** Ends a waiting next() (it resolves null) or a running each() (onEnd(null)): owners call it when they close. */
  end(): void { this.#end?.(null); }
}
