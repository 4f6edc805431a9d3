// Copying a relayed connection's bytes between its two sockets. How much one direction may queue
// in the writing socket before the reading one pauses (its allowance) starts small and doubles
// each time the allowance fills, up to RELAY_MAX_ALLOWANCE, while the whole proxy's extra grants
// stay within a budget: thousands of quiet connections cost little, a bulk transfer still gets
// a few 64 KiB reads in flight.
import type net from 'node:net';
import type { Reclaimer } from './reclaim.js';

/** What a direction may queue before it has shown it needs more (one 64 KiB read). */
export const RELAY_INITIAL_ALLOWANCE = 64 * 1024;
/** The most one direction may queue. */
export const RELAY_MAX_ALLOWANCE = 256 * 1024;

/** Bytes of allowance above the initial one granted across all connections, within `limit`. */
export class RelayBudget {
  granted = 0;
  constructor(readonly limit = 256 * 1024 * 1024) {}

  /** Grants up to `want` more bytes; returns what was granted. */
  take(want: number): number {
    const given = Math.max(0, Math.min(want, this.limit - this.granted));
    this.granted += given;
    return given;
  }

  give(bytes: number): void {
    this.granted -= bytes;
  }
}

/**
 * Copies `from` into `to` with backpressure and passes on the FIN: what pipe() does, at half
 * of pipe()'s memory per connection. Each chunk sets `activity.active` (an idle sweep clears
 * it: one timer for all connections instead of one per socket, re-armed on every chunk) and
 * is counted by `reclaimer`, which frees the memory of chunks already relayed.
 * Returns a function that hands the direction's extra allowance back to `budget` (call it once
 * the connection is gone).
 */
export function forward(from: net.Socket, to: net.Socket, budget: RelayBudget,
  opts: { activity?: { active: boolean }; reclaimer?: Reclaimer } = {}): () => void {
  let allowance = RELAY_INITIAL_ALLOWANCE;
  let extra = 0;
  const { activity, reclaimer } = opts;
  from.on('data', (chunk: Buffer) => {
    if (activity) activity.active = true;
    to.write(chunk);
    reclaimer?.relayed(chunk.length);
    if (to.writableLength >= allowance) from.pause();
  });
  // Emitted once `to` has written out all it held, after a write found it over its stream
  // high-water mark (Node's 16 KiB default, below any allowance), so after every pause above.
  to.on('drain', () => {
    if (!from.isPaused()) return;
    if (allowance < RELAY_MAX_ALLOWANCE) {
      const more = budget.take(Math.min(allowance, RELAY_MAX_ALLOWANCE - allowance));
      allowance += more;
      extra += more;
    }
    from.resume();
  });
  from.once('end', () => { if (!to.destroyed) to.end(); });
  return () => { budget.give(extra); extra = 0; };
}
