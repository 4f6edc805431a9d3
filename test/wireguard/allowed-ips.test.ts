import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AllowedIps } from '../../src/wireguard/allowed-ips.js';

test('longest prefix wins for IPv4 and IPv6, and host bits are ignored on insert', () => {
  const t = new AllowedIps<string>();
  t.insert('0.0.0.0/0', 'default');
  t.insert('198.18.0.0/15', 'A');
  t.insert('198.18.5.7/24', 'B'); // stored as 198.18.5.0/24
  t.insert('198.18.5.9/32', 'C');
  t.insert('fd00::/8', 'A6');
  t.insert('fd00:1::/32', 'B6');
  assert.equal(t.lookupAddress('198.18.5.9'), 'C');
  assert.equal(t.lookupAddress('198.18.5.10'), 'B');
  assert.equal(t.lookupAddress('198.19.255.255'), 'A');
  assert.equal(t.lookupAddress('10.0.0.1'), 'default');
  assert.equal(t.lookupAddress('fd00:1::5'), 'B6');
  assert.equal(t.lookupAddress('fd00:2::5'), 'A6');
  assert.equal(t.lookupAddress('fe80::1'), undefined);
  assert.deepEqual(t.entries('B').map((e) => e.cidr), ['198.18.5.0/24']);
  // lookup straight from a packet buffer at an offset
  const pkt = Buffer.from([0, 0, 198, 18, 5, 9]);
  assert.equal(t.lookup(4, pkt, 2), 'C');
});

test('re-inserting a prefix moves it to the new owner; removal falls back to shorter prefixes', () => {
  const t = new AllowedIps<string>();
  t.insert('198.18.1.0/24', 'A');
  t.insert('198.18.1.0/24', 'B');
  assert.equal(t.lookupAddress('198.18.1.1'), 'B');
  assert.deepEqual(t.entries('A'), []);
  t.insert('198.18.0.0/16', 'A');
  assert.ok(t.remove('198.18.1.0/24'));
  assert.equal(t.lookupAddress('198.18.1.1'), 'A');
  t.removeValue('A');
  assert.equal(t.lookupAddress('198.18.1.1'), undefined);
  assert.ok(!t.remove('198.18.1.0/24'));
});
