// Sliding replay window over message counters (RFC 6479 style): a ring of 32-bit words, so
// advancing the window clears whole words instead of shifting bits.
const WORD_BITS = 32;
const WORDS = 128; // 4096 bits of ring; one word is kept free so the window never wraps onto itself
export const REPLAY_WINDOW = (WORDS - 1) * WORD_BITS; // 4064 counters behind the newest

export class ReplayWindow {
  private readonly bits = new Uint32Array(WORDS);
  /** Highest counter accepted so far (-1: none yet). */
  private last = -1;

  /** True when `counter` is neither too old nor seen before. Does not record it. */
  check(counter: number): boolean {
    if (counter > this.last) return true;
    if (this.last - counter >= REPLAY_WINDOW) return false;
    const word = Math.floor(counter / WORD_BITS) % WORDS;
    return (this.bits[word]! & (1 << (counter % WORD_BITS))) === 0;
  }

  /** Records `counter` if acceptable; returns false for replays and too-old counters. */
  accept(counter: number): boolean {
    if (counter < 0 || !Number.isSafeInteger(counter)) return false;
    if (counter > this.last) {
      const newWord = Math.floor(counter / WORD_BITS);
      const lastWord = this.last < 0 ? -1 : Math.floor(this.last / WORD_BITS);
      const advance = Math.min(newWord - lastWord, WORDS);
      for (let i = 1; i <= advance; i++) this.bits[(lastWord + i) % WORDS] = 0;
      this.last = counter;
    } else if (this.last - counter >= REPLAY_WINDOW) {
      return false;
    }
    const word = Math.floor(counter / WORD_BITS) % WORDS;
    const bit = 1 << (counter % WORD_BITS);
    if (this.bits[word]! & bit) return false;
    this.bits[word] = this.bits[word]! | bit;
    return true;
  }
}
