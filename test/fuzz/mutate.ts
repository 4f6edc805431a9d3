// Mutators: how a valid input becomes a hostile one. Bytes get bit flips, byte and word sets,
// length-field tweaks, truncation, extension, insertion, deletion and splicing with another
// corpus entry; text gets the same at the level of tokens and lines, with a dictionary of
// values each parser is likely to trip on.
import type { Rng } from './rng.js';

const INTERESTING_8 = [0x00, 0x01, 0x02, 0x04, 0x10, 0x3f, 0x40, 0x7f, 0x80, 0xc0, 0xfe, 0xff];
const INTERESTING_16 = [0x0000, 0x0001, 0x0010, 0x00ff, 0x0100, 0x7fff, 0x8000, 0xfffe, 0xffff];
const INTERESTING_32 = [0, 1, 0x7fffffff, 0x80000000, 0xfffffffc, 0xfffffffd, 0xffffffff, 0x10000, 0xffff];

/** Byte-level mutation into one reused scratch buffer (inputs never exceed `maxLength`). */
export class ByteMutator {
  private readonly scratch: Uint8Array;
  private length = 0;

  constructor(readonly maxLength: number) {
    this.scratch = new Uint8Array(maxLength);
  }

  /** Random bytes of a random length; `firstBytes` gives plausible first bytes (version nibbles, types). */
  random(rng: Rng, firstBytes?: readonly number[]): Uint8Array {
    const len = rng.below(Math.min(this.maxLength, 256) + 1);
    const out = new Uint8Array(len);
    for (let i = 0; i < len; i++) out[i] = rng.byte();
    if (len > 0 && firstBytes && rng.oneIn(2)) out[0] = rng.pick(firstBytes);
    return out;
  }

  /** One to four mutations of `base`; `corpus` supplies splicing partners. */
  mutate(rng: Rng, base: Uint8Array, corpus: readonly Uint8Array[]): Uint8Array {
    this.length = Math.min(base.length, this.maxLength);
    this.scratch.set(base.subarray(0, this.length));
    const rounds = 1 + rng.below(4);
    for (let r = 0; r < rounds; r++) this.step(rng, corpus);
    return this.scratch.slice(0, this.length);
  }

  private step(rng: Rng, corpus: readonly Uint8Array[]): void {
    const b = this.scratch;
    const len = this.length;
    const at = rng.below(len);
    switch (rng.below(13)) {
      case 0: if (len > 0) b[at]! ^= 1 << rng.below(8); break;
      case 1: if (len > 0) b[at] = rng.byte(); break;
      case 2: if (len > 0) b[at] = rng.pick(INTERESTING_8); break;
      case 3: this.writeWord(at, 2, rng.pick(INTERESTING_16), rng.oneIn(2)); break;
      case 4: this.writeWord(at, 4, rng.pick(INTERESTING_32), rng.oneIn(2)); break;
      case 5: this.tweakLength(rng, at); break;
      case 6: this.length = rng.below(len + 1); break;
      case 7: this.insert(len, this.randomRun(rng)); break;
      case 8: this.insert(at, this.randomRun(rng)); break;
      case 9: this.remove(at, 1 + rng.below(Math.max(1, Math.min(32, len - at)))); break;
      case 10: { // copy a run of the input over another place in it
        const from = rng.below(len);
        const n = 1 + rng.below(Math.max(1, Math.min(64, len - from, len - at)));
        if (len > 0) b.copyWithin(at, from, from + n);
        break;
      }
      case 11: this.splice(rng, corpus, at); break;
      default: // a 16-bit length field set to what is left after it, give or take a little
        this.writeWord(at, 2, Math.max(0, len - at + rng.below(9) - 4), rng.oneIn(2));
    }
  }

  private writeWord(at: number, size: 2 | 4, value: number, littleEndian: boolean): void {
    if (at + size > this.length) return;
    for (let i = 0; i < size; i++) {
      const shift = 8 * (littleEndian ? i : size - 1 - i);
      this.scratch[at + i] = (value >>> shift) & 0xff;
    }
  }

  /** Adds a small signed delta to a 1-, 2- or 4-byte field read as either byte order. */
  private tweakLength(rng: Rng, at: number): void {
    const size = rng.pick([1, 2, 4] as const);
    if (at + size > this.length) return;
    const little = rng.oneIn(2);
    let v = 0;
    for (let i = 0; i < size; i++) v += this.scratch[at + i]! * 2 ** (8 * (little ? i : size - 1 - i));
    const delta = (1 + rng.below(16)) * (rng.oneIn(2) ? 1 : -1);
    const wrapped = (v + delta + 2 ** (8 * size)) % 2 ** (8 * size);
    if (size === 1) this.scratch[at] = wrapped;
    else this.writeWord(at, size, wrapped, little);
  }

  private randomRun(rng: Rng): Uint8Array {
    const run = new Uint8Array(1 + rng.below(rng.oneIn(8) ? 512 : 32));
    const fill = rng.oneIn(3) ? rng.byte() : -1;
    for (let i = 0; i < run.length; i++) run[i] = fill >= 0 ? fill : rng.byte();
    return run;
  }

  private insert(at: number, run: Uint8Array): void {
    const room = Math.min(run.length, this.maxLength - this.length);
    if (room <= 0) return;
    this.scratch.copyWithin(at + room, at, this.length);
    this.scratch.set(run.subarray(0, room), at);
    this.length += room;
  }

  private remove(at: number, n: number): void {
    if (at >= this.length) return;
    this.scratch.copyWithin(at, at + n, this.length);
    this.length = Math.max(at, this.length - n);
  }

  /** Joins this input with part of another: its tail after our head, or a chunk of it inserted. */
  private splice(rng: Rng, corpus: readonly Uint8Array[], at: number): void {
    if (corpus.length === 0) return;
    const other = rng.pick(corpus);
    if (rng.oneIn(2)) {
      const from = rng.below(other.length + 1);
      const tail = other.subarray(from, from + this.maxLength - at);
      this.scratch.set(tail, at);
      this.length = at + tail.length;
    } else {
      const from = rng.below(other.length);
      this.insert(at, other.subarray(from, from + 1 + rng.below(64)));
    }
  }
}

/** Values that break number parsing, framing, escaping and length limits in text formats. */
const GENERIC_TOKENS = [
  '', '0', '1', '-1', '00', '-0', '1.5', '1e3', '0x10', '0x', '0xffffffff', '0x1ffffffff', '65535', '65536',
  '4294967295', '4294967296', '9007199254740993', 'NaN', 'Infinity', ' ', '\t', '=', '==', '#', ',', ':', '::',
  '[', ']', '/', '%', '\0', '\r', '\n', '\r\n', '\\', '"', "'", 'true', 'false', 'é', '\u2028', '\ud800', '😀',
  'A'.repeat(300),
];

const TOKEN = /\r?\n|[A-Za-z0-9_]+|[ \t]+|[^A-Za-z0-9_\s]|\s/gu;
const ODD_CHARS = ['\0', '\r', '\n', '\t', '\x7f', '\x1b', ' ', '=', '#', ':', '[', ']', '%', '/', 'é', '\u2028', '\ud800', '\uffff'];

/** Token- and line-level mutation of text. */
export class TextMutator {
  constructor(private readonly dictionary: readonly string[], readonly maxLength = 16384) {}

  /** Dictionary words and odd values joined by the separators config formats use. */
  random(rng: Rng): string {
    const n = 1 + rng.below(24);
    let s = '';
    for (let i = 0; i < n; i++) {
      s += rng.oneIn(3) ? rng.pick(GENERIC_TOKENS) : rng.pick(this.dictionary);
      s += rng.pick(['=', '\n', ' ', ' = ', ':', '', '\n\n']);
    }
    return s.slice(0, this.maxLength);
  }

  mutate(rng: Rng, base: string, corpus: readonly string[]): string {
    let tokens: string[] = base.match(TOKEN) ?? [];
    const rounds = 1 + rng.below(4);
    for (let r = 0; r < rounds; r++) tokens = this.step(rng, tokens, corpus);
    return tokens.join('').slice(0, this.maxLength);
  }

  private word(rng: Rng): string {
    return rng.oneIn(3) ? rng.pick(GENERIC_TOKENS) : rng.pick(this.dictionary);
  }

  private step(rng: Rng, t: string[], corpus: readonly string[]): string[] {
    const at = rng.below(t.length);
    switch (rng.below(12)) {
      case 0: t.splice(at, 1); return t;
      case 1: t.splice(at, 0, t[at] ?? ''); return t;
      case 2: { const j = rng.below(t.length); [t[at], t[j]] = [t[j]!, t[at]!]; return t; }
      case 3: t[at] = this.word(rng); return t;
      case 4: t.splice(at, 0, this.word(rng)); return t;
      case 5: { // a number nudged by a little, anything else replaced by an odd value
        const n = Number(t[at]);
        t[at] = t[at] !== undefined && /^\d+$/.test(t[at]!) ? String(n + rng.below(5) - 2) : rng.pick(GENERIC_TOKENS);
        return t;
      }
      case 6: { // one character of a token replaced by an odd one
        const w = t[at] ?? '';
        const i = rng.below(w.length + 1);
        t[at] = w.slice(0, i) + rng.pick(ODD_CHARS) + w.slice(i + 1);
        return t;
      }
      case 7: t.length = rng.below(t.length + 1); return t;
      case 8: t[at] = (t[at] ?? '').repeat(2 + rng.below(rng.oneIn(4) ? 400 : 8)); return t;
      default: return this.lineStep(rng, t, corpus);
    }
  }

  /** Whole lines deleted, repeated, swapped, taken from another corpus entry, or given another value. */
  private lineStep(rng: Rng, t: string[], corpus: readonly string[]): string[] {
    const lines = t.join('').split('\n');
    const at = rng.below(lines.length);
    const kind = rng.below(5);
    if (kind === 4) {
      // "key = value" and "Header: value" lines keep their key and get a value from the dictionary.
      const line = lines[at] ?? '';
      const sep = /=|: /.exec(line);
      if (sep) lines[at] = line.slice(0, sep.index + sep[0].length) + this.word(rng);
    } else if (kind === 0) lines.splice(at, 1);
    else if (kind === 1) lines.splice(at, 0, lines[at] ?? '');
    else if (kind === 2) { const j = rng.below(lines.length); [lines[at], lines[j]] = [lines[j]!, lines[at]!]; }
    else if (corpus.length > 0) {
      const other = rng.pick(corpus).split('\n');
      lines.splice(at, 0, other[rng.below(other.length)]!);
    }
    return lines.join('\n').match(TOKEN) ?? [];
  }
}
