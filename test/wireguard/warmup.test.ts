// The JIT warm-up: its synthetic traffic really crosses the data path (handshake, seal, open,
// route, and the TUN queue's own split and coalesce code), so the code it compiles is the code real
// packets run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { exercise, warmDataPath } from '../../src/wireguard/warmup.js';

test('warm-up traffic is sealed, opened and delivered in full, and the pass stays cheap', () => {
  const r = exercise(96);
  assert.ok(r.sent > 96, `sent ${r.sent}`);
  assert.equal(r.delivered, r.sent, 'every routed warm-up packet reached the other engine');
  assert.equal(r.dropped, 0, 'no authentication, replay or routing drops besides the deliberate no-route packets');
  assert.ok(r.superPacketsSplit > 0, `the queue's Splitter split TSO super-packets: ${JSON.stringify(r)}`);
  assert.ok(r.packetsCoalesced > 0, `the queue's Coalescer merged delivered segments: ${JSON.stringify(r)}`);
  const t = performance.now();
  warmDataPath();
  assert.ok(performance.now() - t < 3000, 'the warm-up at interface open takes well under a few seconds');
});
