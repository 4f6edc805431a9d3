// How many handshake messages one source may have processed while the interface is under load:
// a token bucket per source address (wireguard-go's model: 20 per second, bursts of 5), in a
// table with a limit. Only a source that has proven it receives at its address (a valid MAC2)
// reaches the limiter, so a spoofed address cannot spend a real peer's tokens.

/** Handshakes per second one source may have processed under load, and the burst above that. */
export const HANDSHAKES_PER_SECOND = 20;
export const HANDSHAKE_BURST = 5;
/** Sources tracked at once; past this, new sources are refused until entries age out. */
export const MAX_SOURCES = 8192;
/** An entry unused for this long is forgotten (it would be full again by then anyway). */
const FORGET_AFTER_MS = 1000;

interface Bucket { tokens: number; last: number }

export class HandshakeRateLimiter {
  private readonly buckets = new Map<number | string, Bucket>();
  private lastSweep = 0;
  private readonly msPerToken: number;
  private readonly capacity: number;

  constructor(perSecond = HANDSHAKES_PER_SECOND, burst = HANDSHAKE_BURST, private readonly maxSources = MAX_SOURCES) {
    // Tokens are kept in milliseconds of refill: one handshake costs msPerToken.
    this.msPerToken = 1000 / perSecond;
    this.capacity = this.msPerToken * burst;
  }

  /** Sources in the table now. */
  get size(): number { return this.buckets.size; }

  /**
   * Whether the source of the endpoint record at `rec[off..]` (src/net/endpoint.ts layout) may
   * have one more handshake processed at `now` (ms), spending a token if so.
   */
  allow(rec: Uint8Array, off: number, now: number): boolean {
    const key = sourceKey(rec, off);
    const b = this.buckets.get(key);
    if (b === undefined) {
      if (this.buckets.size >= this.maxSources) {
        this.sweep(now);
        if (this.buckets.size >= this.maxSources) return false;
      }
      this.buckets.set(key, { tokens: this.capacity - this.msPerToken, last: now });
      return true;
    }
    b.tokens = Math.min(this.capacity, b.tokens + (now - b.last));
    b.last = now;
    if (b.tokens < this.msPerToken) return false;
    b.tokens -= this.msPerToken;
    return true;
  }

  /** Forgets sources idle for a second (at most once a second; the engine's timer tick calls it). */
  sweep(now: number): void {
    if (now - this.lastSweep < FORGET_AFTER_MS) return;
    this.lastSweep = now;
    for (const [key, b] of this.buckets) if (now - b.last >= FORGET_AFTER_MS) this.buckets.delete(key);
  }
}

/**
 * The bucket a source falls in: its IPv4 address, or the /64 of an IPv6 address (one host
 * usually holds a whole /64, so counting its addresses one by one would let it multiply its
 * rate by as many as it cares to use).
 */
function sourceKey(rec: Uint8Array, off: number): number | string {
  if (rec[off + 18] !== 6) return ((rec[off]! << 24) | (rec[off + 1]! << 16) | (rec[off + 2]! << 8) | rec[off + 3]!) >>> 0;
  let key = '';
  for (let i = 0; i < 8; i++) key += String.fromCharCode(rec[off + i]!);
  return key;
}
