import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ReplayWindow, REPLAY_WINDOW } from '../../src/wireguard/replay.js';

test('replay window accepts each counter once, in any order inside the window', () => {
  const w = new ReplayWindow();
  assert.ok(w.accept(0));
  assert.ok(!w.accept(0));
  assert.ok(w.accept(5));
  assert.ok(w.accept(3));
  assert.ok(!w.accept(3));
  assert.ok(w.accept(1));
  assert.ok(w.check(2));
  assert.ok(!w.check(5));
  assert.ok(REPLAY_WINDOW >= 2048);
});

test('replay window rejects counters older than the window and survives big jumps', () => {
  const w = new ReplayWindow();
  assert.ok(w.accept(10_000));
  assert.ok(w.accept(10_000 - REPLAY_WINDOW + 1));
  assert.ok(!w.accept(10_000 - REPLAY_WINDOW));
  assert.ok(!w.accept(10_000 - REPLAY_WINDOW - 500));
  assert.ok(w.accept(1_000_000)); // jump far ahead clears the ring
  assert.ok(w.accept(1_000_000 - 1));
  assert.ok(w.accept(1_000_000 - 64));
  assert.ok(!w.accept(1_000_000 - 64));
  assert.ok(!w.accept(-1));
  assert.ok(!w.accept(2 ** 60));
});

test('replay window matches a brute-force model on random traffic', () => {
  const w = new ReplayWindow();
  const seen = new Set<number>();
  let max = -1;
  let x = 12345;
  for (let i = 0; i < 50_000; i++) {
    // 32-bit arithmetic: in doubles the product loses its low bits and x % 9000 takes few values.
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    const c = Math.max(0, i * 3 + ((x >>> 8) % 9000) - 6000);
    const expect = !seen.has(c) && (c > max || max - c < REPLAY_WINDOW);
    assert.equal(w.accept(c), expect, `counter ${c} (max ${max})`);
    if (expect) { seen.add(c); max = Math.max(max, c); }
  }
});
