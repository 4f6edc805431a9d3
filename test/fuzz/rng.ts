// The fuzzer's only source of randomness: a seeded xorshift32, so every input a job makes
// follows from its seed and a failure reproduces from the seed printed with it.

export class Rng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0 || 0x9e3779b9;  // xorshift never leaves zero
  }

  next(): number {
    let x = this.state;
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    this.state = x;
    return x;
  }

  /** 0 .. n-1 (0 when n is 0). */
  below(n: number): number {
    return n <= 0 ? 0 : this.next() % n;
  }

  /** True once in `n` calls on average. */
  oneIn(n: number): boolean {
    return this.below(n) === 0;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.below(items.length)]!;
  }

  byte(): number {
    return this.next() & 0xff;
  }
}

/**
 * The seed of one target's stream within a job: the job seed mixed with the target's name, so a
 * target run alone (`npm run fuzz -- dns`) sees the same inputs it sees in the whole job.
 */
export function targetSeed(seed: number, name: string): number {
  let h = 0x811c9dc5;  // FNV-1a
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193) >>> 0;
  return (h ^ seed) >>> 0;
}
