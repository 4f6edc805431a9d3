// native/checksum.cc: the batched Internet checksum agrees with the JavaScript one on every
// alignment and length, and refuses ranges, counts and arrays that do not fit (the hostile
// sweep in hostile.test.ts also covers it; here the boundaries are named one by one).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checksumRanges } from '../../src/native.js';
import { sumRanges } from '../../src/base/checksum-batch.js';

test('checksumRanges equals the JavaScript sum for every start alignment, odd and even lengths, and starting sums', () => {
  const buf = new Uint8Array(4096 + 64);
  let x = 12345;
  for (let i = 0; i < buf.length; i++) { x = (Math.imul(x, 1103515245) + 12345) >>> 0; buf[i] = x >>> 24; }
  buf.fill(0xff, 100, 1600); // long runs of 0xffff words exercise the carries
  const starts: number[] = []; const ends: number[] = []; const sums: number[] = [];
  for (let start = 0; start < 9; start++) {
    for (const len of [0, 1, 2, 3, 5, 15, 16, 17, 63, 64, 65, 1398, 1399, 4000]) {
      starts.push(start + 97); ends.push(start + 97 + len); sums.push((start * 7919 + len * 104729) % 0x1fffff);
    }
  }
  const n = starts.length;
  const native = Uint32Array.from(sums);
  const js = Uint32Array.from(sums);
  checksumRanges(buf, Uint32Array.from(starts), Uint32Array.from(ends), native, n);
  sumRanges(buf, Uint32Array.from(starts), Uint32Array.from(ends), js, n);
  assert.deepEqual([...native], [...js]);
  for (const s of native) assert.ok(s <= 0xffff, 'folded to 16 bits');
});

test('checksumRanges equals the JavaScript sum over ranges past the vector sum\'s lane flush (128 KiB of 0xffff words)', () => {
  // The AVX2 sum keeps 16-bit words in 32-bit lanes and widens them every 128 KiB: all-ones
  // words carry the most (2 MiB of them would overflow a lane never widened), and ranges of
  // every length around the 32-byte step and the flush check the vector part and the scalar
  // tail meet at the right byte.
  const buf = new Uint8Array(2200 * 1024).fill(0xff);
  let x = 99;
  for (let i = 200 * 1024; i < 300 * 1024; i++) { x = (Math.imul(x, 1103515245) + 12345) >>> 0; buf[i] = x >>> 24; }
  const starts: number[] = []; const ends: number[] = [];
  for (const start of [0, 1, 2, 31, 33]) {
    for (const len of [62, 63, 64, 65, 95, 96, 97, 128 * 1024 - 1, 128 * 1024, 128 * 1024 + 33, 256 * 1024 + 7, 290 * 1024]) {
      starts.push(start); ends.push(start + len);
    }
    starts.push(start); ends.push(start + 2150 * 1024);
  }
  const n = starts.length;
  const native = new Uint32Array(n).fill(0xfffe);
  const js = new Uint32Array(n).fill(0xfffe);
  checksumRanges(buf, Uint32Array.from(starts), Uint32Array.from(ends), native, n);
  sumRanges(buf, Uint32Array.from(starts), Uint32Array.from(ends), js, n);
  assert.deepEqual([...native], [...js]);
});

test('checksumRanges refuses what does not fit, before writing any sum', () => {
  const buf = new Uint8Array(100);
  const sums = Uint32Array.of(7, 7);
  const call = (starts: number[], ends: number[], count: number, b: Uint8Array = buf) =>
    checksumRanges(b, Uint32Array.from(starts), Uint32Array.from(ends), sums, count);
  assert.throws(() => call([0, 0], [100, 101], 2), RangeError, 'end past the buffer');
  assert.throws(() => call([0, 60], [100, 50], 2), RangeError, 'start after end');
  assert.throws(() => call([0, 0xffffffff], [100, 0xffffffff], 2), RangeError, 'far past the end');
  assert.throws(() => call([0], [100], 2), RangeError, 'count larger than the arrays');
  assert.throws(() => call([0, 0], [10, 10], 3), RangeError, 'count larger than sums');
  assert.throws(() => call([0, 0], [10, 10], -1), RangeError);
  assert.throws(() => call([0, 0], [10, 10], 1.5), RangeError);
  assert.deepEqual([...sums], [7, 7], 'nothing written by a refused call');
  assert.throws(() => checksumRanges(buf, new Uint16Array(2) as unknown as Uint32Array, Uint32Array.of(1, 1), sums, 2), TypeError);
  assert.throws(() => checksumRanges([1, 2] as unknown as Uint8Array, Uint32Array.of(0), Uint32Array.of(1), sums, 1), TypeError);
  // A detached buffer has no bytes: only empty ranges fit it.
  const gone = new Uint8Array(16);
  structuredClone(gone.buffer, { transfer: [gone.buffer] });
  assert.throws(() => call([0, 0], [1, 1], 1, gone), RangeError);
  call([0, 0], [0, 0], 2, gone);
  assert.deepEqual([...sums], [7, 7]);
});
