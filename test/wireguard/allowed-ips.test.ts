import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AllowedIps } from '../../src/wireguard/allowed-ips.js';
import { formatIP } from '../../src/addr.js';

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

test('cached lookups agree with a brute-force longest-prefix match, through inserts and removals', () => {
  // A seeded generator, so a failure can be replayed.
  let seed = 0x5eed;
  const rand = () => { seed ^= seed << 13; seed ^= seed >>> 17; seed ^= seed << 5; return seed >>> 0; }; // xorshift32
  const t = new AllowedIps<number>();
  const prefixes: Array<{ family: 4 | 6; bytes: Uint8Array; length: number; value: number }> = [];
  const covers = (p: { family: 4 | 6; bytes: Uint8Array; length: number }, family: 4 | 6, a: Uint8Array) => {
    if (p.family !== family) return false;
    for (let bit = 0; bit < p.length; bit++) {
      const m = 0x80 >> (bit & 7);
      if ((p.bytes[bit >> 3]! & m) !== (a[bit >> 3]! & m)) return false;
    }
    return true;
  };
  const expected = (family: 4 | 6, a: Uint8Array) => {
    let best: { length: number; value: number } | undefined;
    for (const p of prefixes) if (covers(p, family, a) && (!best || p.length >= best.length)) best = p;
    return best?.value;
  };
  // Addresses from a small pool, so the same ones come back (cache hits) and slots collide.
  const pool: Array<{ family: 4 | 6; bytes: Uint8Array }> = [];
  for (let i = 0; i < 600; i++) {
    const family: 4 | 6 = rand() & 1 ? 4 : 6;
    const bytes = new Uint8Array(family === 4 ? 4 : 16);
    bytes[0] = family === 4 ? 198 : 0xfd;
    // Few distinct bytes: shared prefixes. IPv6 addresses share their first 32 bits, so cache
    // slots hold different addresses that only differ further on.
    for (let j = family === 4 ? 1 : 4; j < bytes.length; j++) bytes[j] = rand() & 3;
    pool.push({ family, bytes });
  }
  for (let round = 0; round < 120; round++) {
    const base = pool[rand() % pool.length]!;
    const max = base.family === 4 ? 32 : 128;
    const length = 8 + (rand() % (max - 7));
    const bytes = Uint8Array.from(base.bytes);
    for (let bit = length; bit < max; bit++) bytes[bit >> 3]! &= ~(0x80 >> (bit & 7));
    const value = round;
    const cidr = `${formatIP(bytes)}/${length}`;
    if (rand() % 4 === 0 && prefixes.length > 0) {
      // remove a random existing prefix instead
      const k = rand() % prefixes.length;
      const p = prefixes[k]!;
      assert.ok(t.remove(`${formatIP(p.bytes)}/${p.length}`));
      prefixes.splice(k, 1);
    } else {
      const same = prefixes.findIndex((p) => p.family === base.family && p.length === length && formatIP(p.bytes) === formatIP(bytes));
      if (same >= 0) prefixes.splice(same, 1); // re-inserting moves the prefix to the new value
      t.insert(cidr, value);
      prefixes.push({ family: base.family, bytes, length, value });
    }
    // Enough lookups between two changes that addresses repeat (hits) and share slots.
    for (let q = 0; q < 400; q++) {
      const a = pool[rand() % pool.length]!;
      assert.equal(t.lookup(a.family, a.bytes), expected(a.family, a.bytes), `round ${round}: ${formatIP(a.bytes)}`);
    }
  }
});
