// The per-source handshake limiter: wireguard-go's bucket (20 per second, bursts of 5), IPv6
// sources counted per /64, and a table that stays within its limit however many sources come.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HandshakeRateLimiter } from '../../src/wireguard/ratelimiter.js';
import { encodeEndpoint } from '../../src/net/endpoint.js';

const from = (address: string, port = 51820) => encodeEndpoint(address, port);

/** How many of `tries` handshakes at `now` the limiter lets through. */
function allowed(l: HandshakeRateLimiter, rec: Uint8Array, now: number, tries: number): number {
  let n = 0;
  for (let i = 0; i < tries; i++) if (l.allow(rec, 0, now)) n++;
  return n;
}

test('one source: a burst of 5, then 20 per second; other sources have buckets of their own', () => {
  const l = new HandshakeRateLimiter();
  const a = from('198.18.0.1');
  assert.equal(allowed(l, a, 1000, 100), 5);
  assert.equal(allowed(l, a, 1000 + 49, 10), 0, 'a token takes 50 ms');
  assert.equal(allowed(l, a, 1000 + 50, 10), 1);
  // a second of steady flooding: 20 more, not a burst on top
  let n = 0;
  for (let t = 1051; t <= 2050; t++) n += allowed(l, a, t, 5);
  assert.equal(n, 20);
  // another port of the same address is the same source; another address is not
  assert.equal(allowed(l, from('198.18.0.1', 9), 2050, 10), 0);
  assert.equal(allowed(l, from('198.18.0.2'), 2050, 10), 5);
  // after a pause the bucket is full again, but no fuller than the burst
  assert.equal(allowed(l, a, 60_000, 100), 5);
});

test('IPv6 sources share a bucket per /64', () => {
  const l = new HandshakeRateLimiter();
  assert.equal(allowed(l, from('fd00:1:2:3::1'), 0, 3), 3);
  assert.equal(allowed(l, from('fd00:1:2:3:ffff:ffff:ffff:ffff'), 0, 10), 2);
  assert.equal(allowed(l, from('fd00:1:2:4::1'), 0, 10), 5);
  assert.equal(l.size, 2);
});

test('the table has a limit: new sources are refused when it is full, until idle ones are forgotten', () => {
  const l = new HandshakeRateLimiter(20, 5, 100);
  for (let i = 0; i < 300; i++) l.allow(from(`198.18.${i >> 8}.${i & 255}`), 0, 10_000);
  assert.equal(l.size, 100);
  assert.equal(l.allow(from('198.18.9.9'), 0, 10_000), false, 'a new source while full');
  assert.equal(l.allow(from('198.18.0.0'), 0, 10_000), true, 'a known source keeps its bucket');
  // a second later every entry is idle: sweeping forgets them and the table takes new sources
  l.sweep(11_000);
  assert.equal(l.size, 0);
  assert.equal(l.allow(from('198.18.9.9'), 0, 11_000), true);
  // a full table sweeps by itself before it refuses
  for (let i = 0; i < 200; i++) l.allow(from(`198.18.${i >> 8}.${i & 255}`), 0, 11_000);
  assert.equal(l.size, 100);
  assert.equal(l.allow(from('198.18.8.8'), 0, 12_500), true);
  assert.equal(l.size, 1);
});
