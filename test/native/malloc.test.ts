// native/malloc.cc: setMallocTrimThreshold takes a byte count glibc's mallopt can hold and
// refuses anything else with a typed error before it reaches the C library.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { addon } from '../../src/native.js';

const { setMallocTrimThreshold } = addon as { setMallocTrimThreshold: (bytes: unknown) => boolean };

// Under the ASan build (scripts/test-asan.mjs preloads it) the allocator is ASan's, whose
// mallopt takes nothing: the call must still check its argument and answer false.
const glibcAllocator = !process.env.ASAN_OPTIONS;

test('setMallocTrimThreshold takes 0 to INT_MAX bytes', () => {
  for (const bytes of [0, 1, 128 * 1024, 2 ** 31 - 1]) assert.equal(setMallocTrimThreshold(bytes), glibcAllocator);
  // The proxy's value last: the rest of this process runs with it.
  assert.equal(setMallocTrimThreshold(128 * 1024), glibcAllocator);
});

test('setMallocTrimThreshold refuses what is not a byte count mallopt can hold', () => {
  for (const bytes of [-1, 2 ** 31, 2 ** 53, -(2 ** 63), 1.5, NaN, Infinity, -Infinity]) {
    assert.throws(() => setMallocTrimThreshold(bytes), RangeError, String(bytes));
  }
  for (const bytes of ['131072', undefined, null, {}, [1], 10n, Symbol('x')]) {
    assert.throws(() => setMallocTrimThreshold(bytes), TypeError, String(bytes));
  }
});
