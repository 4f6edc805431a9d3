// The batched native AEAD must agree byte for byte with node:crypto's chacha20-poly1305.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomFillSync } from 'node:crypto';
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import {
  sealBatch, openBatch, paddedLength, aeadBackend, aeadKeystream, aeadPoly, type AeadBatch, type AeadBackend, type AeadKeystream,
} from '../../src/wireguard/aead.js';
import { addon } from '../../src/native.js';
import { referenceSeal, referenceOpen } from './aead-reference.js';

function makeBatch(packets: Buffer[], keys: Buffer, keyIndex: number[] | null, counters: bigint[], slack: number): AeadBatch {
  const src = Buffer.concat(packets);
  const srcOffsets = new Uint32Array(packets.length);
  const srcLengths = new Uint32Array(packets.length);
  const dstOffsets = new Uint32Array(packets.length);
  let off = 0;
  let doff = 0;
  packets.forEach((p, i) => {
    srcOffsets[i] = off; srcLengths[i] = p.length; off += p.length;
    dstOffsets[i] = doff; doff += p.length + slack;
  });
  return {
    keys, keyIndex: keyIndex ? Uint32Array.from(keyIndex) : null, src, srcOffsets, srcLengths,
    counters: BigUint64Array.from(counters), dst: Buffer.alloc(doff), dstOffsets,
    dstLengths: new Uint32Array(packets.length), count: packets.length,
  };
}

// Every check runs on every implementation: the direct path (ChaCha20 and Poly1305 composed in
// the addon) with its keystream made by native/chacha.cc at each vector width this CPU has and
// by OpenSSL's ChaCha20, groups of packets tagged by our Poly1305 lanes (AVX-512 IFMA) or by
// OpenSSL's Poly1305, and EVP (what a Node built against a shared libcrypto uses).
const bestKeystream = aeadKeystream();
const bestPoly = aeadPoly();
type Variant = 'evp' | `direct/${AeadKeystream}` | 'direct/avx512/poly-openssl';
const variants: Variant[] = ['direct/avx512', 'direct/avx512/poly-openssl', 'direct/avx2', 'direct/portable', 'direct/openssl', 'evp'];

function use(variant: Variant | AeadBackend, t: { skip(msg: string): void }): boolean {
  const [backend, keystream, poly] = variant.split('/') as [AeadBackend, AeadKeystream | undefined, string | undefined];
  if (aeadBackend(backend) !== backend) {
    t.skip(`this node binary does not export OpenSSL's ChaCha20/Poly1305 block functions`);
    return false;
  }
  try {
    aeadKeystream(keystream ?? bestKeystream);
  } catch (e) {
    if (!(e instanceof RangeError)) throw e;
    t.skip(`this CPU lacks ${keystream}`);
    return false;
  }
  aeadPoly(poly === 'poly-openssl' ? 'openssl' : bestPoly);
  return true;
}

function restoreDefaults(): void {
  aeadBackend('direct');
  aeadKeystream(bestKeystream);
  aeadPoly(bestPoly);
}

// RFC 8439 section 2.4.2: its nonce 00000000 0000004a 00000000 is WireGuard's (4 zero bytes, then
// the 64-bit little-endian counter 0x4a000000), and the AEAD's data starts at block 1 as there.
const RFC8439_PLAIN = Buffer.from("Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.");
const RFC8439_CIPHER = Buffer.from(
  '6e2e359a2568f98041ba0728dd0d6981e97e7aec1d4360c20a27afccfd9fae0bf91b65c5524733ab8f593dabcd62b3571639d624e65152ab8f530c359f0861d8' +
  '07ca0dbf500d6a6156a38e088a22b65e52bc514d16ccf806818ce91ab77937365af90bbf74a35be6b40b8eedf2785e42874d', 'hex');

for (const backend of variants) {
  test(`${backend}: the RFC 8439 ChaCha20 test vector (2.4.2), alone and among other packets`, (t) => {
    if (!use(backend, t)) return;
    const key = Buffer.from(Array.from({ length: 32 }, (_, i) => i));
    // Alone, then as the third of four packets (other keys' and counters' blocks in the same lanes).
    for (const at of [0, 2]) {
      const packets = at === 0 ? [RFC8439_PLAIN] : [randomBytes(700), randomBytes(64), RFC8439_PLAIN, randomBytes(1420)];
      const keys = Buffer.concat([key, randomBytes(32)]);
      const keyIndex = packets.map((_, i) => (i === at ? 0 : 1));
      const counters = packets.map((_, i) => (i === at ? 0x4a000000n : BigInt(i + 1)));
      const b = makeBatch(packets, keys, keyIndex, counters, 16);
      assert.equal(sealBatch(b), packets.length);
      const got = b.dst.subarray(b.dstOffsets[at], b.dstOffsets[at]! + RFC8439_PLAIN.length);
      assert.equal(Buffer.from(got).toString('hex'), RFC8439_CIPHER.toString('hex'), `packet ${at}`);
    }
  });

  // Batches whose packets' keystream blocks share vector passes: random lengths (a packet's
  // blocks often straddle two passes), four keys, random counters.
  test(`${backend}: random batches of mixed keys, counters and lengths match createCipheriv, seal and open`, (t) => {
    if (!use(backend, t)) return;
    const keys = randomBytes(32 * 4);
    for (let round = 0; round < 6; round++) {
      const n = 1 + Math.floor(Math.random() * 48);
      const packets = Array.from({ length: n }, () => randomBytes(Math.floor(Math.random() * (round % 2 ? 2200 : 300))));
      const keyIndex = packets.map(() => Math.floor(Math.random() * 4));
      const counters = packets.map(() => randomBytes(8).readBigUInt64LE());
      const b = makeBatch(packets, keys, keyIndex, counters, 16);
      assert.equal(sealBatch(b), n);
      const sealed = packets.map((p, i) => {
        const key = keys.subarray(keyIndex[i]! * 32, keyIndex[i]! * 32 + 32);
        const got = Buffer.from(b.dst.subarray(b.dstOffsets[i], b.dstOffsets[i]! + b.dstLengths[i]!));
        assert.ok(got.equals(referenceSeal(key, counters[i]!, p)), `round ${round}, packet ${i} of ${n} (${p.length} bytes)`);
        return got;
      });
      const o = makeBatch(sealed, keys, keyIndex, counters, 0);
      const ok = new Uint8Array(n);
      assert.equal(openBatch(o, ok), n);
      packets.forEach((p, i) => assert.ok(Buffer.from(o.dst.subarray(o.dstOffsets[i], o.dstOffsets[i]! + o.dstLengths[i]!)).equals(p),
        `round ${round}, open ${i}`));
    }
  });

  // The direct path makes the next packets' keystreams ahead; a counter that the previous
  // packet's output overwrote (the arrays may alias dst) must be read again, not the old one used.
  test(`${backend}: a counter overwritten by the previous packet's output is the one its packet uses`, (t) => {
    if (!use(backend, t)) return;
    const key = randomBytes(32);
    const plains = [randomBytes(600), randomBytes(300)];
    const buf = Buffer.alloc(4096);
    // dst: packet 0 at 0 (616 bytes out), packet 1 at 1024; the counters at 512, inside packet 0's output.
    const counters = new Uint32Array(buf.buffer, buf.byteOffset + 512, 4);
    counters.set([7, 0, 9, 0]);
    const b: AeadBatch = {
      keys: key, keyIndex: null, src: Buffer.concat(plains), srcOffsets: Uint32Array.of(0, 600), srcLengths: Uint32Array.of(600, 300),
      counters, dst: buf, dstOffsets: Uint32Array.of(0, 1024), dstLengths: new Uint32Array(2), count: 2,
    };
    assert.equal(sealBatch(b), 2);
    assert.ok(buf.subarray(0, 616).equals(referenceSeal(key, 7n, plains[0]!)), 'packet 0');
    const used = buf.readBigUInt64LE(520); // what packet 0's ciphertext left where packet 1's counter was
    assert.notEqual(used, 9n);
    assert.ok(buf.subarray(1024, 1024 + 316).equals(referenceSeal(key, used, plains[1]!)), 'packet 1 sealed under the counter it had when its turn came');
  });


  test(`${backend}: sealBatch matches createCipheriv for many sizes, keys and counters`, (t) => {
    if (!use(backend, t)) return;
    const keys = randomBytes(32 * 3);
    const sizes = [0, 1, 15, 16, 17, 63, 64, 100, 1280, 1420, 1500, 9000, 65000];
    const packets = sizes.map((n) => randomBytes(n));
    const keyIndex = sizes.map((_, i) => i % 3);
    const counters = sizes.map((_, i) => (i === 5 ? 0xffff_ffff_ffff_fffen : BigInt(i * 7919)));
    const b = makeBatch(packets, keys, keyIndex, counters, 16);
    assert.equal(sealBatch(b), packets.length);
    packets.forEach((p, i) => {
      const key = keys.subarray(keyIndex[i]! * 32, keyIndex[i]! * 32 + 32);
      const got = Buffer.from(b.dst.subarray(b.dstOffsets[i], b.dstOffsets[i]! + b.dstLengths[i]!));
      assert.equal(b.dstLengths[i], p.length + 16);
      assert.ok(got.equals(referenceSeal(key, counters[i]!, p)), `packet ${i} (${p.length} bytes)`);
    });
  });

  test(`${backend}: sealBatch pads like WireGuard: to 16 bytes, never past the MTU`, (t) => {
    if (!use(backend, t)) return;
    assert.equal(paddedLength(0, 1420), 0);
    assert.equal(paddedLength(1, 1420), 16);
    assert.equal(paddedLength(1419, 1420), 1420);
    assert.equal(paddedLength(1420, 1420), 1420);
    assert.equal(paddedLength(1500, 1420), 1500);
    const key = randomBytes(32);
    const packets = [randomBytes(1), randomBytes(33), randomBytes(1415)];
    const b = makeBatch(packets, key, null, [1n, 2n, 3n], 64);
    sealBatch(b, 1420);
    packets.forEach((p, i) => {
      const padded = Buffer.concat([p, Buffer.alloc(paddedLength(p.length, 1420) - p.length)]);
      const got = Buffer.from(b.dst.subarray(b.dstOffsets[i], b.dstOffsets[i]! + b.dstLengths[i]!));
      assert.ok(got.equals(referenceSeal(key, BigInt(i + 1), padded)), `padded packet ${i}`);
    });
  });

  test(`${backend}: openBatch authenticates reference ciphertexts and flags forgeries per packet`, (t) => {
    if (!use(backend, t)) return;
    const keys = randomBytes(64);
    const plains = [randomBytes(0), randomBytes(40), randomBytes(1420), randomBytes(500), randomBytes(77)];
    const counters = [0n, 1n, 2n, 3n, 4n];
    const keyIndex = [0, 1, 0, 1, 0];
    const sealed = plains.map((p, i) => referenceSeal(keys.subarray(keyIndex[i]! * 32, keyIndex[i]! * 32 + 32), counters[i]!, p));
    sealed[1]![5] ^= 0x01;                   // bit flip in ciphertext
    sealed[3]![sealed[3]!.length - 1] ^= 0x80; // bit flip in tag
    const withShort = [...sealed, Buffer.alloc(7)]; // shorter than a tag
    const b = makeBatch(withShort, keys, [...keyIndex, 0], [...counters, 5n], 0);
    const ok = new Uint8Array(withShort.length);
    assert.equal(openBatch(b, ok), 3);
    assert.deepEqual([...ok], [1, 0, 1, 0, 1, 0]);
    for (const i of [0, 2, 4]) {
      assert.equal(b.dstLengths[i], plains[i]!.length);
      assert.ok(Buffer.from(b.dst.subarray(b.dstOffsets[i], b.dstOffsets[i]! + b.dstLengths[i]!)).equals(plains[i]!));
    }
    // wrong counter (nonce) fails too
    const wrong = makeBatch([sealed[0]!], keys, null, [9n], 0);
    assert.equal(openBatch(wrong, new Uint8Array(1)), 0);
  });

  test(`${backend}: seal then open round-trips in place`, (t) => {
    if (!use(backend, t)) return;
    const key = randomBytes(32);
    const plain = randomBytes(1000);
    const buf = Buffer.alloc(1100);
    plain.copy(buf, 0);
    const b: AeadBatch = {
      keys: key, keyIndex: null, src: buf, srcOffsets: Uint32Array.of(0), srcLengths: Uint32Array.of(1000),
      counters: BigUint64Array.of(42n), dst: buf, dstOffsets: Uint32Array.of(0), dstLengths: new Uint32Array(1), count: 1,
    };
    sealBatch(b);
    assert.ok(buf.subarray(0, 1016).equals(referenceSeal(key, 42n, plain)));
    const o: AeadBatch = { ...b, srcLengths: Uint32Array.of(1016), dstLengths: new Uint32Array(1) };
    const ok = new Uint8Array(1);
    assert.equal(openBatch(o, ok), 1);
    assert.ok(buf.subarray(0, 1000).equals(plain));
    assert.ok(referenceOpen(key, 42n, referenceSeal(key, 42n, plain)).equals(plain));
  });

  // The direct path seals straight from the input when the two do not overlap; when they do it
  // lays the packet out in the output first. (EVP refuses some overlaps: OpenSSL's rule.)
  test(`${backend}: a seal whose output overlaps its input a few bytes off matches createCipheriv`, (t) => {
    if (backend === 'evp') { t.skip('EVP refuses partly overlapping buffers'); return; }
    if (!use(backend, t)) return;
    const key = randomBytes(32);
    for (const shift of [-16, -5, 3, 16]) {
      const plain = randomBytes(999);
      const buf = Buffer.alloc(1200);
      const srcAt = 100;
      plain.copy(buf, srcAt);
      const b: AeadBatch = {
        keys: key, keyIndex: null, src: buf, srcOffsets: Uint32Array.of(srcAt), srcLengths: Uint32Array.of(999),
        counters: BigUint64Array.of(7n), dst: buf, dstOffsets: Uint32Array.of(srcAt + shift), dstLengths: new Uint32Array(1), count: 1,
      };
      assert.equal(sealBatch(b, 1420), 1);
      const padded = Buffer.concat([plain, Buffer.alloc(9)]);
      assert.equal(b.dstLengths[0], 1024);
      assert.ok(buf.subarray(srcAt + shift, srcAt + shift + 1024).equals(referenceSeal(key, 7n, padded)), `shift ${shift}`);
    }
  });

  test(`${backend}: every length from 0 to 300 and around block edges matches createCipheriv, seal and open`, (t) => {
    if (!use(backend, t)) return;
    const key = randomBytes(32);
    // Also around where the direct path's one keystream call per packet ends (1984 bytes of
    // data, then ChaCha20 straight on the rest) and where it asks for a longer keystream (257..512).
    const sizes = [...Array.from({ length: 301 }, (_, i) => i), 448, 449, 511, 512, 513, 1023, 1024, 1025, 1420,
      1983, 1984, 1985, 2047, 2048, 2049, 4095, 4096, 4097];
    const packets = sizes.map((n) => randomBytes(n));
    const counters = sizes.map((_, i) => BigInt(i) * 0x1_0000_0001n);
    const b = makeBatch(packets, key, null, counters, 16);
    assert.equal(sealBatch(b), packets.length);
    const sealed = packets.map((_, i) => Buffer.from(b.dst.subarray(b.dstOffsets[i], b.dstOffsets[i]! + b.dstLengths[i]!)));
    sealed.forEach((c, i) => assert.ok(c.equals(referenceSeal(key, counters[i]!, packets[i]!)), `${sizes[i]} bytes`));
    const o = makeBatch(sealed, key, null, counters, 0);
    const ok = new Uint8Array(sealed.length);
    assert.equal(openBatch(o, ok), sealed.length);
    packets.forEach((p, i) => assert.ok(Buffer.from(o.dst.subarray(o.dstOffsets[i], o.dstOffsets[i]! + o.dstLengths[i]!)).equals(p), `${sizes[i]} bytes`));
  });
}
restoreDefaults();

test('out-of-bounds offsets and bad arguments throw instead of touching memory', () => {
  const key = randomBytes(32);
  const base = (): AeadBatch => ({
    keys: key, keyIndex: null, src: Buffer.alloc(100), srcOffsets: Uint32Array.of(90), srcLengths: Uint32Array.of(20),
    counters: BigUint64Array.of(0n), dst: Buffer.alloc(200), dstOffsets: Uint32Array.of(0), dstLengths: new Uint32Array(1), count: 1,
  });
  assert.throws(() => sealBatch(base()), RangeError);
  assert.throws(() => sealBatch({ ...base(), srcOffsets: Uint32Array.of(0), dstOffsets: Uint32Array.of(190) }), RangeError);
  assert.throws(() => sealBatch({ ...base(), srcOffsets: Uint32Array.of(0), count: 2 }), RangeError);
  assert.throws(() => sealBatch({ ...base(), srcOffsets: Uint32Array.of(0), keyIndex: Uint32Array.of(1) }), RangeError);
  assert.throws(() => sealBatch({ ...base(), keys: Buffer.alloc(31) }), TypeError);
  assert.throws(() => openBatch({ ...base(), srcOffsets: Uint32Array.of(0) }, new Uint8Array(0)), TypeError);
});

// The key of the last batch must not stay in the heap once the call returns: the EVP context
// used to keep it until the next batch (now reset with OPENSSL_clear_free), and the direct path
// must keep no heap scratch at all. The key is made in place, its JS copy zeroed after sealing,
// and then the process's anonymous writable mappings are searched for it. The search never holds
// the key as one piece: it looks for the first 8 bytes and compares the other three words as
// numbers. The stack is not searched here: the JS calls that run before the search overwrite the
// native frames the AEAD used, so that part is the stack test below.
function keyInMemory(words: bigint[]): boolean {
  const first = Buffer.alloc(8);
  first.writeBigUInt64LE(words[0]!);
  const fd = openSync('/proc/self/mem', 'r');
  const chunk = Buffer.allocUnsafeSlow(16 << 20);
  try {
    for (const line of readFileSync('/proc/self/maps', 'utf8').split('\n')) {
      const m = /^([0-9a-f]+)-([0-9a-f]+) rw.p \S+ \S+ \S+\s*(.*)$/.exec(line);
      if (!m || m[3] === '[stack]' || m[3]!.startsWith('/')) continue;
      const start = parseInt(m[1]!, 16);
      const end = parseInt(m[2]!, 16);
      if (end - start > 1 << 30) continue; // sanitizer shadow and reservations, not the heap
      for (let at = start; at < end; at += chunk.length - 24) {
        let n: number;
        try { n = readSync(fd, chunk, 0, Math.min(chunk.length, end - at), at); } catch { break; }
        for (let i = chunk.indexOf(first); i >= 0 && i + 32 <= n; i = chunk.indexOf(first, i + 1)) {
          if (chunk.readBigUInt64LE(i + 8) === words[1] && chunk.readBigUInt64LE(i + 16) === words[2]
            && chunk.readBigUInt64LE(i + 24) === words[3]) return true;
        }
      }
    }
    return false;
  } finally {
    closeSync(fd);
  }
}

for (const backend of ['direct', 'evp'] as const) {
  test(`${backend}: no copy of the last batch's key is left in the heap after the call`, (t) => {
    if (!use(backend, t)) return;
    const keys = Buffer.alloc(4096); // off the V8 heap from the start: no stray copy of it there
    randomFillSync(keys, 0, 32);
    const key = keys.subarray(0, 32);
    const words = [0, 8, 16, 24].map((o) => keys.readBigUInt64LE(o));
    const b = makeBatch([randomBytes(100), randomBytes(1400)], key, null, [1n, 2n], 16);
    assert.equal(sealBatch(b), 2);
    const sealed = Buffer.from(b.dst.subarray(b.dstOffsets[0], b.dstOffsets[0]! + b.dstLengths[0]!));
    assert.equal(openBatch(makeBatch([sealed], key, null, [1n], 0), new Uint8Array(1)), 1);
    keys.fill(0);
    assert.equal(keyInMemory(words), false, 'the key was found in memory after the batch');
    restoreDefaults();
  });
}

// The direct AEAD keeps its key words, ChaCha lanes, Poly1305 state and keystream on the native
// stack. The addon's test hook (native/aead_residue.cc) clears the stack below it, makes the
// same call JS makes with these arguments, and searches the 128 KiB that call could use for: the
// key in a row (key words, a ChaCha state), the key's words one vector row apart (a pass's
// lanes), a data block of the batch's keystream or a whole block 0, the second half of block 0
// (Poly1305's s, kept in its state), and block 0's clamped r as the Poly1305 lanes keep it (44-bit
// limbs, in a row or a vector row apart). Nothing may be found, at every width, sealing and opening.
type Residue = { result: number; keyCopies: number; keyLaneCopies: number; keystreamCopies: number; polyKeyCopies: number; polyLimbCopies: number };
const hook = addon as unknown as Record<'aeadSealResidue' | 'aeadOpenResidue', (...args: unknown[]) => Residue>;
const batchArgs = (b: AeadBatch) => [b.keys, b.keyIndex, b.src, b.srcOffsets, b.srcLengths, b.counters, b.dst, b.dstOffsets, b.dstLengths, b.count];

for (const backend of variants) {
  test(`${backend}: sealing and opening leave no key, keystream or Poly1305 key on the stack they used`, (t) => {
    if (!use(backend, t)) return;
    // One short packet (one pass, mostly empty lanes), one long, two sharing a pass, five 64-byte
    // packets (ten blocks in a pass), one past the read-ahead (ChaCha20_ctr32 does the rest),
    // two keys in one batch, and groups the Poly1305 lanes tag (eight short packets under two
    // keys, eight long ones, three of mixed lengths).
    const shapes: { lengths: number[]; keys: number }[] = [
      { lengths: [100], keys: 1 }, { lengths: [1400], keys: 1 }, { lengths: [100, 1400], keys: 1 },
      { lengths: [64, 64, 64, 64, 64], keys: 1 }, { lengths: [3000], keys: 1 }, { lengths: [200, 1420, 64], keys: 2 },
      { lengths: Array(8).fill(64), keys: 2 }, { lengths: Array(8).fill(1420), keys: 1 }, { lengths: [48, 64, 80], keys: 1 },
    ];
    for (const { lengths, keys: nkeys } of shapes) {
      const keys = Buffer.alloc(4096);
      randomFillSync(keys, 0, 32 * nkeys);
      const key = keys.subarray(0, 32 * nkeys);
      const keyIndex = lengths.map((_, i) => i % nkeys);
      const counters = lengths.map(() => randomBytes(8).readBigUInt64LE());
      const b = makeBatch(lengths.map((n) => randomBytes(n)), key, keyIndex, counters, 16);
      const sealed = hook.aeadSealResidue(...batchArgs(b), null);
      const what = `${lengths.join(',')} B, ${nkeys} key(s)`;
      assert.equal(sealed.result, lengths.length, `sealed, ${what}`);
      assert.deepEqual({ ...sealed, result: 0 }, { ...sealed, result: 0, keyCopies: 0, keyLaneCopies: 0, keystreamCopies: 0, polyKeyCopies: 0, polyLimbCopies: 0 },
        `sealing ${what} left copies on the stack`);
      const ciphertexts = lengths.map((_, i) => Buffer.from(b.dst.subarray(b.dstOffsets[i], b.dstOffsets[i]! + b.dstLengths[i]!)));
      const o = makeBatch(ciphertexts, key, keyIndex, counters, 0);
      const opened = hook.aeadOpenResidue(...batchArgs(o), new Uint8Array(lengths.length));
      assert.equal(opened.result, lengths.length, `opened, ${what}`);
      assert.deepEqual({ ...opened, result: 0 }, { ...opened, result: 0, keyCopies: 0, keyLaneCopies: 0, keystreamCopies: 0, polyKeyCopies: 0, polyLimbCopies: 0 },
        `opening ${what} left copies on the stack`);
      keys.fill(0);
    }
    restoreDefaults();
  });
}
