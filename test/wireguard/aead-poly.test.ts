// The Poly1305 lanes (native/poly1305_lanes.cc: eight messages side by side, AVX-512 IFMA) must
// give OpenSSL's tags byte for byte: RFC 8439's vectors, including those written to catch a
// wrong final reduction, random keys and lengths against OpenSSL's Poly1305 in mixed groups,
// and the AEAD's groups (packets tagged together) against createCipheriv, with forgeries among
// authentic packets and buffers in place or overlapping.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomInt } from 'node:crypto';
import { sealBatch, openBatch, aeadPoly, aeadBackend, type AeadBatch } from '../../src/wireguard/aead.js';
import { addon } from '../../src/native.js';
import { referenceSeal } from './aead-reference.js';

type PolyUse = 'lanes' | 'openssl';
const poly = addon as unknown as {
  aeadPoly1305(use: PolyUse, keys: Uint8Array, data: Uint8Array, offsets: Uint32Array, lengths: Uint32Array, tags: Uint8Array): number;
};

const hasLanes = (() => {
  try {
    aeadPoly('lanes');
    return true;
  } catch (e) {
    if (e instanceof RangeError) return false;
    throw e;
  }
})();
const direct = aeadBackend() === 'direct';
const skipReason = !direct ? 'this node binary does not export OpenSSL\'s Poly1305 block functions'
  : !hasLanes ? 'this CPU lacks AVX-512 IFMA' : undefined;

/** Tags of messages (each with its own key) by `use`, all in one call (groups of eight). */
function tags(use: PolyUse, messages: Buffer[], keys: Buffer[]): Buffer[] {
  const data = Buffer.concat(messages);
  const offsets = new Uint32Array(messages.length);
  let at = 0;
  messages.forEach((m, i) => { offsets[i] = at; at += m.length; });
  const out = Buffer.alloc(16 * messages.length);
  assert.equal(poly.aeadPoly1305(use, Buffer.concat(keys), data, offsets, Uint32Array.from(messages, (m) => m.length), out), messages.length);
  return messages.map((_, i) => out.subarray(16 * i, 16 * i + 16));
}

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const IETF = Buffer.from('Any submission to the IETF intended by the Contributor for publication as all or part of an IETF ' +
  'Internet-Draft or RFC and any statement made within the context of an IETF activity is considered an "IETF ' +
  'Contribution". Such statements include oral statements in IETF sessions, as well as written and electronic ' +
  'communications made at any time or place, which are addressed to');
const JABBERWOCKY = Buffer.from("'Twas brillig, and the slithy toves\nDid gyre and gimble in the wabe:\nAll mimsy were the borogoves,\nAnd the mome raths outgrabe.");

// The first 32 bytes of A.3 #10 and #11.
const A3_10_11 = 'e33594d7505e43b9' + '00'.repeat(8) + '3394d7505e4379cd' + '01'.padEnd(16, '0');
// RFC 8439 section 2.5.2 and appendix A.3 (#5 to #11 exercise the last reduction: h just at or
// above p, carries through all-ones limbs, an s that wraps).
const VECTORS: Array<{ name: string; key: Buffer; msg: Buffer; tag: string }> = [
  { name: '2.5.2', key: hex('85d6be7857556d337f4452fe42d506a80103808afb0db2fd4abff6af4149f51b'), msg: Buffer.from('Cryptographic Forum Research Group'), tag: 'a8061dc1305136c6c22b8baf0c0127a9' },
  { name: 'A.3 #1', key: Buffer.alloc(32), msg: Buffer.alloc(64), tag: '00000000000000000000000000000000' },
  { name: 'A.3 #2', key: Buffer.concat([Buffer.alloc(16), hex('36e5f6b5c5e06070f0efca96227a863e')]), msg: IETF, tag: '36e5f6b5c5e06070f0efca96227a863e' },
  { name: 'A.3 #3', key: Buffer.concat([hex('36e5f6b5c5e06070f0efca96227a863e'), Buffer.alloc(16)]), msg: IETF, tag: 'f3477e7cd95417af89a6b8794c310cf0' },
  { name: 'A.3 #4', key: hex('1c9240a5eb55d38af333888604f6b5f0473917c1402b80099dca5cbc207075c0'), msg: JABBERWOCKY, tag: '4541669a7eaaee61e708dc7cbcc5eb62' },
  { name: 'A.3 #5', key: hex('02'.padEnd(64, '0')), msg: hex('ff'.repeat(16)), tag: '03000000000000000000000000000000' },
  { name: 'A.3 #6', key: hex('02'.padEnd(32, '0') + 'ff'.repeat(16)), msg: hex('02'.padEnd(32, '0')), tag: '03000000000000000000000000000000' },
  { name: 'A.3 #7', key: hex('01'.padEnd(64, '0')), msg: hex('ff'.repeat(16) + 'f0' + 'ff'.repeat(15) + '11'.padEnd(32, '0')), tag: '05000000000000000000000000000000' },
  { name: 'A.3 #8', key: hex('01'.padEnd(64, '0')), msg: hex('ff'.repeat(16) + 'fb' + 'fe'.repeat(15) + '01'.repeat(16)), tag: '00000000000000000000000000000000' },
  { name: 'A.3 #9', key: hex('02'.padEnd(64, '0')), msg: hex('fd' + 'ff'.repeat(15)), tag: 'faffffffffffffffffffffffffffffff' },
  { name: 'A.3 #10', key: hex('01'.padEnd(16, '0') + '04'.padEnd(48, '0')), msg: hex(A3_10_11 + '00'.repeat(16) + '01'.padEnd(32, '0')), tag: '14000000000000005500000000000000' },
  { name: 'A.3 #11', key: hex('01'.padEnd(16, '0') + '04'.padEnd(48, '0')), msg: hex(A3_10_11 + '00'.repeat(16)), tag: '13000000000000000000000000000000' },
];

test('Poly1305 lanes: RFC 8439 vectors (2.5.2, A.3 #1-#11), alone, eight at once and among random messages', { skip: skipReason }, () => {
  assert.equal(IETF.length, 375);
  for (const v of VECTORS) {
    for (const use of ['lanes', 'openssl'] as const) {
      assert.equal(tags(use, [v.msg], [v.key])[0]!.toString('hex'), v.tag, `${v.name} alone (${use})`);
    }
  }
  // All twelve in one call: a group of eight and one of four, every lane a different length.
  const all = tags('lanes', VECTORS.map((v) => v.msg), VECTORS.map((v) => v.key));
  VECTORS.forEach((v, i) => assert.equal(all[i]!.toString('hex'), v.tag, `${v.name} in a group`));
  // Each vector in every lane position, the other lanes longer, shorter and empty.
  for (const v of VECTORS) {
    for (let lane = 0; lane < 8; lane++) {
      const messages = Array.from({ length: 8 }, (_, i) => (i === lane ? v.msg : randomBytes([0, 15, 16, 400, 1500][i % 5]!)));
      const keys = messages.map((_, i) => (i === lane ? v.key : randomBytes(32)));
      assert.equal(tags('lanes', messages, keys)[lane]!.toString('hex'), v.tag, `${v.name} in lane ${lane}`);
    }
  }
});

test('Poly1305 lanes: random keys and lengths 0..1500 in mixed groups match OpenSSL\'s Poly1305', { skip: skipReason }, () => {
  const ones = Buffer.alloc(1500, 0xff);
  for (let round = 0; round < 60; round++) {
    const count = 1 + randomInt(40);
    const messages = Array.from({ length: count }, (_, i) => {
      const len = round % 3 === 0 ? randomInt(1501) : [0, 1, 15, 16, 17, 31, 32, 33, 64, 1420, 1440, 1500][randomInt(12)]!;
      // Some all-ones messages and keys: every limb at its top, the carries longest.
      return (round + i) % 5 === 0 ? ones.subarray(0, len) : randomBytes(len);
    });
    const keys = messages.map((_, i) => ((round + i) % 7 === 0 ? Buffer.alloc(32, 0xff) : randomBytes(32)));
    const lanes = tags('lanes', messages, keys);
    const openssl = tags('openssl', messages, keys);
    messages.forEach((m, i) => assert.equal(lanes[i]!.toString('hex'), openssl[i]!.toString('hex'), `round ${round}, message ${i} (${m.length} bytes)`));
  }
});

test('aeadPoly1305 refuses bad arguments instead of reading past them', { skip: skipReason }, () => {
  const keys = randomBytes(64);
  const data = Buffer.alloc(100);
  const out = Buffer.alloc(32);
  const call = (...args: unknown[]) => (poly.aeadPoly1305 as (...a: unknown[]) => number)(...args);
  assert.throws(() => call('lanes', keys, data, Uint32Array.of(90), Uint32Array.of(20), out), RangeError, 'message past data');
  assert.throws(() => call('lanes', keys, data, Uint32Array.of(0xffff_fff0), Uint32Array.of(0x20), out), RangeError, 'offset + length wraps');
  assert.throws(() => call('lanes', keys, data, Uint32Array.of(0, 0, 0), Uint32Array.of(1, 1, 1), out), RangeError, 'more messages than keys and tags');
  assert.throws(() => call('lanes', keys, data, Uint32Array.of(0, 0), Uint32Array.of(1), out), RangeError, 'fewer lengths than offsets');
  assert.throws(() => call('lanes', keys.subarray(0, 31), data, Uint32Array.of(0), Uint32Array.of(1), out), RangeError, 'short key');
  assert.throws(() => call('lanes', keys, data, Uint32Array.of(0), Uint32Array.of(1), Buffer.alloc(15)), RangeError, 'short tags');
  assert.throws(() => call('lanes', keys, data, [0], Uint32Array.of(1), out), TypeError, 'offsets not a Uint32Array');
  assert.throws(() => call('vector', keys, data, Uint32Array.of(0), Uint32Array.of(1), out), TypeError, 'unknown implementation');
  assert.throws(() => call('lanes', keys, 7, Uint32Array.of(0), Uint32Array.of(1), out), TypeError, 'data not bytes');
  assert.throws(() => (aeadPoly as (u: string) => string)('fast'), TypeError);
  // Tags written over the messages and keys they come from: computed first, then stored.
  const shared = randomBytes(128);
  const want = tags('openssl', [shared.subarray(32, 96)], [Buffer.from(shared.subarray(0, 32))])[0]!;
  assert.equal(call('lanes', shared.subarray(0, 32), shared, Uint32Array.of(32), Uint32Array.of(64), shared.subarray(40, 56)), 1);
  assert.ok(shared.subarray(40, 56).equals(want));
});

// ---- the AEAD's groups ----

const keyOf = (keys: Buffer, i: number) => keys.subarray(32 * i, 32 * i + 32);

// Packets laid out one after the other in src, outputs in dst at `slack` bytes more each.
function batchOf(packets: Buffer[], keys: Buffer, keyIndex: number[], counters: bigint[], slack: number): AeadBatch {
  const srcOffsets = new Uint32Array(packets.length);
  const dstOffsets = new Uint32Array(packets.length);
  let s = 0;
  let d = 0;
  packets.forEach((p, i) => { srcOffsets[i] = s; s += p.length; dstOffsets[i] = d; d += p.length + slack; });
  return {
    keys, keyIndex: Uint32Array.from(keyIndex), src: Buffer.concat(packets), srcOffsets, srcLengths: Uint32Array.from(packets, (p) => p.length),
    counters: BigUint64Array.from(counters), dst: Buffer.alloc(d), dstOffsets, dstLengths: new Uint32Array(packets.length), count: packets.length,
  };
}

// Each check runs with the lanes and with OpenSSL's Poly1305 (the path every packet took before).
for (const use of ['lanes', 'openssl'] as const) {
  test(`AEAD (${use}): mixed groups of lengths and keys, a forgery among authentic packets, seal and open`, { skip: skipReason }, () => {
    aeadPoly(use);
    try {
      const keys = randomBytes(32 * 3);
      for (let round = 0; round < 12; round++) {
        const n = 2 + randomInt(30);
        const lengths = Array.from({ length: n }, () => (round % 2 ? randomInt(1501) : [0, 16, 48, 64, 80, 1420][randomInt(6)]!));
        const packets = lengths.map((l) => randomBytes(l));
        const keyIndex = packets.map(() => randomInt(3));
        const counters = packets.map(() => randomBytes(8).readBigUInt64LE());
        const b = batchOf(packets, keys, keyIndex, counters, 16);
        assert.equal(sealBatch(b), n);
        const sealed = packets.map((p, i) => {
          const got = Buffer.from(b.dst.subarray(b.dstOffsets[i], b.dstOffsets[i]! + b.dstLengths[i]!));
          assert.ok(got.equals(referenceSeal(keyOf(keys, keyIndex[i]!), counters[i]!, p)), `round ${round}, seal ${i} of ${n} (${p.length} B)`);
          return got;
        });
        // Forge some: a flipped ciphertext bit, a flipped tag bit, a wrong key, a wrong counter.
        const forged = new Set<number>();
        const openKeys = [...keyIndex];
        const openCounters = [...counters];
        for (let f = 0; f < 1 + randomInt(3); f++) {
          const i = randomInt(n);
          if (forged.has(i)) continue; // a second change could undo the first (a counter flipped back)
          forged.add(i);
          const kind = randomInt(4);
          if (kind === 0 && sealed[i]!.length > 16) sealed[i]![randomInt(sealed[i]!.length - 16)] ^= 1 << randomInt(8);
          else if (kind === 1) sealed[i]![sealed[i]!.length - 1 - randomInt(16)] ^= 1 << randomInt(8);
          else if (kind === 2) openKeys[i] = (openKeys[i]! + 1) % 3;
          else openCounters[i] = openCounters[i]! ^ 1n;
        }
        const o = batchOf(sealed, keys, openKeys, openCounters, 0);
        o.dst.fill(0xa5);
        const ok = new Uint8Array(n).fill(7);
        assert.equal(openBatch(o, ok), n - forged.size);
        packets.forEach((p, i) => {
          const out = o.dst.subarray(o.dstOffsets[i], o.dstOffsets[i]! + p.length);
          if (forged.has(i)) {
            assert.equal(ok[i], 0, `round ${round}, forgery ${i} refused`);
            assert.equal(o.dstLengths[i], 0);
            assert.ok(out.every((x) => x === 0xa5), `round ${round}: forgery ${i}'s plaintext was written`);
          } else {
            assert.equal(ok[i], 1, `round ${round}, packet ${i} authentic`);
            assert.equal(o.dstLengths[i], p.length);
            assert.ok(Buffer.from(out).equals(p), `round ${round}, open ${i}`);
          }
        });
      }
    } finally {
      aeadPoly(hasLanes ? 'lanes' : 'openssl');
    }
  });

  test(`AEAD (${use}): in place, outputs over the next packet's input, counters inside an output: as one packet at a time`, { skip: skipReason }, () => {
    aeadPoly(use);
    try {
      const keys = randomBytes(64);
      // In place: every packet sealed where its plaintext is (room for the tag after it), then
      // opened in place.
      const lengths = [64, 64, 1420, 80, 64, 1420, 1420, 1420, 1420, 1420, 64];
      const slot = 1500;
      const buf = Buffer.alloc(slot * lengths.length);
      const plains = lengths.map((l, i) => { const p = randomBytes(l); p.copy(buf, i * slot); return p; });
      const offsets = Uint32Array.from(lengths, (_, i) => i * slot);
      const keyIndex = Uint32Array.from(lengths, (_, i) => i % 2);
      const counters = BigUint64Array.from(lengths, (_, i) => BigInt(i) * 977n);
      const b: AeadBatch = { keys, keyIndex, src: buf, srcOffsets: offsets, srcLengths: Uint32Array.from(lengths), counters,
        dst: buf, dstOffsets: offsets, dstLengths: new Uint32Array(lengths.length), count: lengths.length };
      assert.equal(sealBatch(b), lengths.length);
      plains.forEach((p, i) => assert.ok(buf.subarray(i * slot, i * slot + p.length + 16).equals(referenceSeal(keyOf(keys, i % 2), counters[i]!, p)), `in place ${i}`));
      const o: AeadBatch = { ...b, srcLengths: Uint32Array.from(lengths, (l) => l + 16), dstLengths: new Uint32Array(lengths.length) };
      const ok = new Uint8Array(lengths.length);
      assert.equal(openBatch(o, ok), lengths.length);
      plains.forEach((p, i) => assert.ok(buf.subarray(i * slot, i * slot + p.length).equals(p), `opened in place ${i}`));

      // Two layouts where the packets depend on the order they are sealed in: packed back to
      // back and sealed 8 bytes further on (each output runs over the start of the next
      // packet's plaintext), and the counters kept inside the first packet's output. The bytes
      // must be what sealing them one at a time, in order, gives.
      const layouts = {
        'outputs over the next input': (area: Buffer, srcOffsets: Uint32Array) =>
          ({ dstOffsets: srcOffsets.map((o) => o + 8), counters: BigUint64Array.from(srcOffsets, (_, i) => BigInt(i)) }),
        'counters inside an output': (area: Buffer) => {
          const counters = new BigUint64Array(area.buffer, area.byteOffset + 600 + 16, 8);
          counters.set(Array.from({ length: 8 }, (_, i) => BigInt(i + 1)));
          return { dstOffsets: Uint32Array.from({ length: 8 }, (_, i) => 600 + 100 * i), counters };
        },
      };
      for (const [name, layout] of Object.entries(layouts)) {
        const make = (): { b: AeadBatch; area: Buffer } => {
          const area = Buffer.alloc(64 * 8 + 1500);
          const srcOffsets = Uint32Array.from({ length: 8 }, (_, i) => 64 * i);
          srcOffsets.forEach((o, i) => area.fill(i + 1, o, o + 64));
          const { dstOffsets, counters } = layout(area, srcOffsets);
          return { area, b: { keys, keyIndex: null, src: area, srcOffsets, srcLengths: new Uint32Array(8).fill(64), counters,
            dst: area, dstOffsets, dstLengths: new Uint32Array(8), count: 8 } };
        };
        const grouped = make();
        assert.equal(sealBatch(grouped.b), 8);
        const oneByOne = make();
        const b1 = oneByOne.b;
        for (let i = 0; i < 8; i++) {
          const at = (a: Uint32Array) => a.subarray(i, i + 1);
          assert.equal(sealBatch({ ...b1, srcOffsets: at(b1.srcOffsets), srcLengths: at(b1.srcLengths), dstOffsets: at(b1.dstOffsets),
            dstLengths: at(b1.dstLengths), counters: (b1.counters as BigUint64Array).subarray(i, i + 1), count: 1 }), 1);
        }
        assert.ok(grouped.area.equals(oneByOne.area), `${name}: sealed as a batch, the bytes differ from one packet at a time`);
      }
    } finally {
      aeadPoly(hasLanes ? 'lanes' : 'openssl');
    }
  });
}
