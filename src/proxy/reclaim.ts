// Giving back what a burst of connections leaves behind. Each connection's handshake allocates
// for a while (its upstream net.Socket, the handshake's promises and messages) and lives across
// many turns of the loop while thousands of others do the same, so V8 promotes it to the old
// generation, which it collects only once that has grown by tens of MiB. The relay then holds
// no JS object per connection, so that garbage would sit there, and a process with nothing left
// to allocate never reaches the next collection. Asking for a full collection every
// RECLAIM_EVERY connections opened or closed (a few ms with the small live heap left), and once
// more when they stop coming (the last ones of a burst), then returning malloc's free pages,
// keeps a burst's cost near its live objects and lets memory fall back after the connections
// close.
import v8 from 'node:v8';
import vm from 'node:vm';
import { addon } from '../native.js';

/**
 * Keeps V8's young generation at its starting size. V8 doubles it (up to 32 MiB of the
 * process's RSS) while allocation goes on, and shrinks it only when the process goes idle: a
 * burst of connections would leave it grown. The proxy's data path allocates little (the relay
 * is native), so a small young generation costs it nothing measurable. Process-wide: for the
 * service (the CLI), not for a library caller's process.
 */
export function keepYoungGenerationSmall(): void {
  try {
    v8.setFlagsFromString('--semi-space-growth-factor=1');
  } catch {
    // A Node without the flag keeps V8's default.
  }
}

/**
 * What glibc keeps free at the top of each heap before handing it back: its own default, fixed.
 * Left to glibc, the threshold rises to twice the largest block freed (MiBs once V8 or Node
 * freed a large one), and the arenas of V8's worker threads, which malloc_trim() does not
 * shrink, then kept about 1.5-2 MiB each after a burst of connections (+5.5 MiB in all).
 */
export const MALLOC_TRIM_THRESHOLD = 128 * 1024;

const allocator = addon as { setMallocTrimThreshold?: (bytes: number) => boolean };

/**
 * Makes every malloc heap of the process give back its free top above MALLOC_TRIM_THRESHOLD
 * when a block is freed (native/malloc.cc). Process-wide, like keepYoungGenerationSmall: for
 * the service. False where the addon or the C library does not take it.
 */
export function keepMallocHeapsTrimmed(): boolean {
  return allocator.setMallocTrimThreshold?.(MALLOC_TRIM_THRESHOLD) ?? false;
}

/** Connections opened or closed (or NAT entries released) between two collections. */
export const RECLAIM_EVERY = 1000;

/** Calls of due() with nothing noted after which what was noted is collected anyway. */
export const QUIET_CALLS = 2;

// gc() with no argument: in Node 20 (V8 11.3) gc({ type: 'major' }) returns without collecting.
type Collect = () => void;

let collect: Collect | null | undefined;

// V8's gc() function, made available once; null where the flag cannot be set.
function collector(): Collect | null {
  if (collect === undefined) {
    try {
      v8.setFlagsFromString('--expose-gc');
      // A context made after the flag has gc(); the main context keeps its globals as they were.
      collect = vm.runInNewContext('gc') as Collect;
    } catch {
      collect = null;
    }
  }
  return collect;
}

/**
 * Counts connections opened and closed and collects every `every` of them, or fewer once they
 * stop coming or nothing is left open (at most once per call of due()).
 */
export class Reclaimer {
  #count = 0;
  #quietCalls = 0;
  collections = 0;
  constructor(readonly every = RECLAIM_EVERY, private readonly trim: () => void = () => {}) {}

  /** A connection (or `n`) opened or closed. */
  note(n = 1): void {
    if (n <= 0) return;
    this.#count += n;
    this.#quietCalls = 0;
  }

  /**
   * Collects when enough connections came and went since the last time, or when some did and
   * then none for QUIET_CALLS calls, or when some did and `empty` (none is left open). Called
   * from a timer, not per connection.
   */
  due(empty = false): void {
    if (this.#count === 0) return;
    if (this.#count < this.every && !empty && ++this.#quietCalls < QUIET_CALLS) return;
    this.#count = 0;
    this.#quietCalls = 0;
    const gc = collector();
    if (gc) {
      gc();
      this.collections++;
    }
    this.trim();
  }
}
