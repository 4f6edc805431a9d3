// WireGuard's primitives against published vectors and independent implementations. Keyed
// BLAKE2s and XChaCha20-Poly1305 come from @noble; the vectors stay, as a check of how we call them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { hchacha } from '@noble/ciphers/chacha.js';
import {
  blake2s, mac, hash, hmac, kdf, xaeadSeal, xaeadOpen, aeadSeal, aeadOpen, dh, publicKey,
  generatePrivateKey, keyFromBase64, keyToBase64, StaticKey, generateEphemeral,
} from '../../src/wireguard/crypto.js';

const hex = (s: string) => Buffer.from(s, 'hex');
const seq = (n: number) => Buffer.from(Array.from({ length: n }, (_, i) => i & 0xff));

test('keyed BLAKE2s matches the BLAKE2 reference KAT and Python hashlib', () => {
  const key = seq(32);
  // blake2s-kat.txt (key = 00..1f): messages of length 0 and 1
  assert.equal(blake2s(32, key).toString('hex'), '48a8997da407876b3d79c0d92325ad3b89cbb754d86ab71aee047ad345fd2c49');
  assert.equal(blake2s(32, key, seq(1)).toString('hex'), '40d15fee7c328830166ac3f918650f807e7e01e177258cdc0a39b11f598066f1');
  // hashlib.blake2s(data, key=..., digest_size=...) around the 64-byte block boundary
  const vectors: Array<[number, string, string, string]> = [
    [63, 'c65382513f07460da39833cb666c5ed82e61b9e998f4b0c4287cee56c3cc9bcd', '2151a1ac11ef2763a427614c612b3de0', '3d0034e3e070ced4c8555cc592d019af6155b086'],
    [64, '8975b0577fd35566d750b362b0897a26c399136df07bababbde6203ff2954ed4', 'dd55c51c98f8ab96ed272882941f0b6a', '68c18b80dd398444aa9fd4272ecfa8e71b31ee8a'],
    [65, '21fe0ceb0052be7fb0f004187cacd7de67fa6eb0938d927677f2398c132317a8', '9018c671bb7e94a6d540a91765bbecad', '20eb8eee0c703a44779298f35f92da38f2b4f0bf'],
    [128, '0c311f38c35a4fb90d651c289d486856cd1413df9b0677f53ece2cd9e477c60a', '24548ecbf479d44b545512c39a847b95', 'fb7b50db11a7a2acecf57aa08636df85eeaac736'],
    [200, '13c88480a5d00d6c8c7ad2110d76a82d9b70f4fa6696d4e5dd42a066dcaf9920', 'b8d300fa7937e4d1e67c8468df4c9a43', '35ef51251df08437c4d5c7ecd7662b56d0a3f07c'],
  ];
  for (const [n, keyed32, keyed16, unkeyed20] of vectors) {
    const data = seq(n);
    assert.equal(blake2s(32, key, data).toString('hex'), keyed32, `keyed-32 len ${n}`);
    assert.equal(mac(key.subarray(0, 16), data).toString('hex'), keyed16, `MAC len ${n}`);
    assert.equal(blake2s(20, undefined, data).toString('hex'), unkeyed20, `unkeyed-20 len ${n}`);
    // split input gives the same digest as one piece
    assert.equal(blake2s(32, key, data.subarray(0, n >> 1), data.subarray(n >> 1)).toString('hex'), keyed32);
  }
  // unkeyed 256-bit output agrees with OpenSSL's blake2s256
  for (const n of [0, 3, 64, 1000]) {
    const d = randomBytes(n);
    assert.deepEqual(blake2s(32, undefined, d), createHash('blake2s256').update(d).digest());
    assert.deepEqual(hash(d), blake2s(32, undefined, d));
  }
});

// RFC 7693 Appendix E: the self-test's deterministic inputs (a Fibonacci-like sequence).
function rfc7693Sequence(len: number, seed: number): Buffer {
  const out = Buffer.alloc(len);
  let a = Math.imul(0xdead4bad, seed) >>> 0;
  let b = 1;
  for (let i = 0; i < len; i++) {
    const t = (a + b) >>> 0;
    a = b;
    b = t;
    out[i] = t >>> 24;
  }
  return out;
}

test('BLAKE2s matches RFC 7693: "abc" (Appendix B) and the self-test grand hash (Appendix E)', () => {
  assert.equal(blake2s(32, undefined, Buffer.from('abc')).toString('hex'),
    '508c5e8c327c14e2e1a72ba34eeb452f37458b209ed63a294d999b4c86675982');
  const digests: Buffer[] = [];
  for (const outLen of [16, 20, 28, 32]) {
    for (const inLen of [0, 3, 64, 65, 255, 1024]) {
      const input = rfc7693Sequence(inLen, inLen);
      digests.push(blake2s(outLen, undefined, input));
      digests.push(blake2s(outLen, rfc7693Sequence(outLen, outLen), input));
    }
  }
  assert.equal(blake2s(32, undefined, ...digests).toString('hex'),
    '6a411f08ce25adcdfb02aba641451cec53c598b24f4fc787fbdc88797f4c1dfe');
});

test('HMAC-BLAKE2s and KDF follow RFC 2104 / HKDF', () => {
  // HMAC computed by hand from the definition, with our own BLAKE2s
  const key = randomBytes(32);
  const msg = randomBytes(77);
  const k = Buffer.concat([key, Buffer.alloc(32)]);
  const ipad = Buffer.from(k.map((b) => b ^ 0x36));
  const opad = Buffer.from(k.map((b) => b ^ 0x5c));
  const manual = blake2s(32, undefined, opad, blake2s(32, undefined, ipad, msg));
  assert.deepEqual(hmac(key, msg), manual);
  const [t1, t2, t3] = kdf(3, key, msg);
  const prk = hmac(key, msg);
  assert.deepEqual(t1, hmac(prk, Uint8Array.of(1)));
  assert.deepEqual(t2, hmac(prk, t1!, Uint8Array.of(2)));
  assert.deepEqual(t3, hmac(prk, t2!, Uint8Array.of(3)));
  assert.deepEqual(kdf(1, key, msg)[0], t1);
});

// Little-endian 32-bit words of a byte string, as noble's hchacha takes them.
const words = (b: Buffer) => Uint32Array.from({ length: b.length / 4 }, (_, i) => b.readUInt32LE(i * 4));

test('HChaCha20 and XChaCha20-Poly1305 match draft-irtf-cfrg-xchacha-03', () => {
  const subkey = new Uint32Array(8);
  hchacha(words(Buffer.from('expand 32-byte k')), words(seq(32)), words(hex('000000090000004a0000000031415927')), subkey);
  assert.equal(Buffer.from(subkey.buffer).toString('hex'), '82413b4227b27bfed30e42508a877d73a0f9e4d58a74a853c12ec41326d3ecdc');
  const key = hex('808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f');
  const nonce = hex('404142434445464748494a4b4c4d4e4f5051525354555657');
  const aad = hex('50515253c0c1c2c3c4c5c6c7');
  const plain = Buffer.from("Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.");
  const expected = 'bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b4522f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff921f9664c97637da9768812f615c68b13b52e'
    + 'c0875924c1c7987947deafd8780acf49';
  const sealed = xaeadSeal(key, nonce, plain, aad);
  assert.equal(sealed.toString('hex'), expected);
  assert.deepEqual(xaeadOpen(key, nonce, sealed, aad), plain);
  sealed[3] ^= 1;
  assert.equal(xaeadOpen(key, nonce, sealed, aad), undefined);
  assert.equal(xaeadOpen(key, nonce, sealed.subarray(0, 15), aad), undefined);
});

test('AEAD with counter nonces round-trips and rejects a wrong counter or aad', () => {
  const key = randomBytes(32);
  const s = aeadSeal(key, 7n, Buffer.from('hello'), Buffer.from('ad'));
  assert.deepEqual(aeadOpen(key, 7n, s, Buffer.from('ad')), Buffer.from('hello'));
  assert.equal(aeadOpen(key, 8n, s, Buffer.from('ad')), undefined);
  assert.equal(aeadOpen(key, 7n, s, Buffer.from('xx')), undefined);
  assert.equal(aeadOpen(key, 7n, s.subarray(0, 10), Buffer.from('ad')), undefined);
});

test('X25519 matches RFC 7748 and the `wg` tool; low-order points are refused', () => {
  const alice = hex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a');
  const bob = hex('5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb');
  assert.equal(publicKey(alice).toString('hex'), '8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a');
  assert.equal(publicKey(bob).toString('hex'), 'de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f');
  const ab = dh(alice, publicKey(bob));
  assert.ok(ab);
  assert.deepEqual(ab, dh(bob, publicKey(alice)));
  assert.deepEqual(new StaticKey(alice).dh(publicKey(bob)), ab);
  assert.equal(dh(alice, Buffer.alloc(32)), undefined); // the zero point has low order
  // an ephemeral key pair (its private half never leaves OpenSSL) agrees with a static key
  const ephemeral = generateEphemeral();
  assert.deepEqual(dh(ephemeral.private, publicKey(bob)), new StaticKey(bob).dh(ephemeral.public));
  const priv = generatePrivateKey();
  assert.equal(priv[0]! & 7, 0);
  assert.equal(priv[31]! & 0xc0, 0x40);
  const b64 = keyToBase64(priv);
  const wgPub = execFileSync('wg', ['pubkey'], { input: `${b64}\n`, encoding: 'utf8' }).trim();
  assert.equal(keyToBase64(publicKey(keyFromBase64(b64))), wgPub);
  assert.throws(() => keyFromBase64('abc'), /44 characters/);
});
