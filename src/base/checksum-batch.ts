// Transport checksums of many segments, summed in one pass once a batch is laid out: a split
// records where each segment's checksum covers and where it goes, and finish() sums every range
// with one call (a batched native primitive on the data path, the JavaScript sum elsewhere).
import { put16 } from './bytes.js';
import { fold, sum16 } from './checksum.js';

/**
 * Sums ranges of one buffer: for i < count, sums[i] becomes the folded, uncomplemented
 * one's-complement sum of sums[i] and buffer[starts[i] .. ends[i]).
 */
export type RangeSummer = (buffer: Uint8Array, starts: Uint32Array, ends: Uint32Array, sums: Uint32Array, count: number) => void;

/** The RangeSummer in JavaScript. */
export const sumRanges: RangeSummer = (buffer, starts, ends, sums, count) => {
  for (let i = 0; i < count; i++) sums[i] = fold(sum16(buffer, starts[i]!, ends[i]!, sums[i]!));
};

/** Checksums still to compute over one buffer, each a range, a starting sum and a field. */
export class DeferredChecksums {
  count = 0;
  private starts = new Uint32Array(64);
  private ends = new Uint32Array(64);
  private sums = new Uint32Array(64);
  private fields = new Uint32Array(64);
  /** 1 for UDP, whose computed 0 is sent as 0xffff (0 means "no checksum"). */
  private udp = new Uint8Array(64);

  /** The checksum over buffer[start..end) starting from `initial` (a pseudo-header sum) goes to the 16-bit field at `field`. */
  add(start: number, end: number, initial: number, field: number, udp: boolean): void {
    if (this.count === this.starts.length) this.grow();
    const i = this.count++;
    this.starts[i] = start; this.ends[i] = end; this.sums[i] = initial; this.fields[i] = field; this.udp[i] = udp ? 1 : 0;
  }

  /** Computes every recorded checksum over `buffer` and writes it to its field; then starts empty. */
  finish(buffer: Uint8Array, summer: RangeSummer = sumRanges): void {
    const n = this.count;
    this.count = 0;
    if (n === 0) return;
    summer(buffer, this.starts, this.ends, this.sums, n);
    for (let i = 0; i < n; i++) {
      const c = ~this.sums[i]! & 0xffff;
      put16(buffer, this.fields[i]!, c === 0 && this.udp[i] ? 0xffff : c);
    }
  }

  /** Forgets what was recorded (a batch given up). */
  reset(): void { this.count = 0; }

  private grow(): void {
    const n = this.starts.length * 2;
    const widen = (a: Uint32Array) => { const b = new Uint32Array(n); b.set(a); return b; };
    this.starts = widen(this.starts); this.ends = widen(this.ends); this.sums = widen(this.sums); this.fields = widen(this.fields);
    const udp = new Uint8Array(n); udp.set(this.udp); this.udp = udp;
  }
}
