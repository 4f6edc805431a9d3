// WireGuard's primitives (wireguard.com/protocol): HASH = BLAKE2s-256, MAC = keyed BLAKE2s-128,
// HMAC over BLAKE2s-256, KDF1..3, X25519 DH, AEAD = ChaCha20-Poly1305 and XAEAD =
// XChaCha20-Poly1305. Node's OpenSSL supplies BLAKE2s-256, its HMAC, ChaCha20-Poly1305 and
// X25519; keyed BLAKE2s and HChaCha20 are small enough to carry here.
import {
  createCipheriv, createDecipheriv, createHash, createHmac, createPrivateKey, createPublicKey,
  diffieHellman, randomBytes, timingSafeEqual, type KeyObject,
} from 'node:crypto';

export const KEY_LEN = 32;

// ---- BLAKE2s (RFC 7693), keyed and with any output length 1..32 ----
const IV = Uint32Array.of(0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19);
const SIGMA = [
  [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
  [14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3],
  [11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4],
  [7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8],
  [9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13],
  [2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9],
  [12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11],
  [13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10],
  [6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5],
  [10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0],
].map((r) => Uint8Array.from(r));

const rotr = (x: number, n: number) => (x >>> n) | (x << (32 - n));

function compress(h: Uint32Array, block: Uint8Array, t: number, last: boolean, v: Uint32Array, m: Uint32Array): void {
  for (let i = 0; i < 16; i++) {
    m[i] = block[i * 4]! | (block[i * 4 + 1]! << 8) | (block[i * 4 + 2]! << 16) | (block[i * 4 + 3]! << 24);
  }
  for (let i = 0; i < 8; i++) { v[i] = h[i]!; v[i + 8] = IV[i]!; }
  v[12] ^= t >>> 0;
  v[13] ^= Math.floor(t / 0x1_0000_0000);
  if (last) v[14] = ~v[14]!;
  const g = (a: number, b: number, c: number, d: number, x: number, y: number) => {
    v[a] = v[a]! + v[b]! + x; v[d] = rotr(v[d]! ^ v[a]!, 16);
    v[c] = v[c]! + v[d]!; v[b] = rotr(v[b]! ^ v[c]!, 12);
    v[a] = v[a]! + v[b]! + y; v[d] = rotr(v[d]! ^ v[a]!, 8);
    v[c] = v[c]! + v[d]!; v[b] = rotr(v[b]! ^ v[c]!, 7);
  };
  for (let r = 0; r < 10; r++) {
    const s = SIGMA[r]!;
    g(0, 4, 8, 12, m[s[0]!]!, m[s[1]!]!);
    g(1, 5, 9, 13, m[s[2]!]!, m[s[3]!]!);
    g(2, 6, 10, 14, m[s[4]!]!, m[s[5]!]!);
    g(3, 7, 11, 15, m[s[6]!]!, m[s[7]!]!);
    g(0, 5, 10, 15, m[s[8]!]!, m[s[9]!]!);
    g(1, 6, 11, 12, m[s[10]!]!, m[s[11]!]!);
    g(2, 7, 8, 13, m[s[12]!]!, m[s[13]!]!);
    g(3, 4, 9, 14, m[s[14]!]!, m[s[15]!]!);
  }
  for (let i = 0; i < 8; i++) h[i] = h[i]! ^ v[i]! ^ v[i + 8]!;
}

/** BLAKE2s of the concatenated inputs, `outLen` bytes (1..32), optionally keyed (key ≤ 32 bytes). */
export function blake2s(outLen: number, key: Uint8Array | undefined, ...inputs: Uint8Array[]): Buffer {
  if (outLen < 1 || outLen > 32) throw new RangeError('blake2s: output length must be 1..32');
  const keyLen = key?.length ?? 0;
  if (keyLen > 32) throw new RangeError('blake2s: key longer than 32 bytes');
  const h = IV.slice();
  h[0] = h[0]! ^ 0x01010000 ^ (keyLen << 8) ^ outLen;
  const v = new Uint32Array(16);
  const m = new Uint32Array(16);
  const block = new Uint8Array(64);
  let fill = 0;
  let t = 0;
  const absorb = (data: Uint8Array) => {
    for (let i = 0; i < data.length;) {
      if (fill === 64) { t += 64; compress(h, block, t, false, v, m); fill = 0; }
      const n = Math.min(64 - fill, data.length - i);
      block.set(data.subarray(i, i + n), fill);
      fill += n;
      i += n;
    }
  };
  if (key && keyLen > 0) { block.set(key); fill = 64; }
  for (const input of inputs) absorb(input);
  block.fill(0, fill);
  t += fill;
  compress(h, block, t, true, v, m);
  const out = Buffer.alloc(32);
  for (let i = 0; i < 8; i++) out.writeUInt32LE(h[i]!, i * 4);
  return out.subarray(0, outLen);
}

// ---- WireGuard's hash functions ----
/** HASH(input) = BLAKE2s-256 (OpenSSL's). */
export function hash(...inputs: Uint8Array[]): Buffer {
  const h = createHash('blake2s256');
  for (const i of inputs) h.update(i);
  return h.digest();
}

/** MAC(key, input) = keyed BLAKE2s with 16-byte output. */
export function mac(key: Uint8Array, ...inputs: Uint8Array[]): Buffer {
  return blake2s(16, key, ...inputs);
}

/** HMAC(key, input) over BLAKE2s-256 (OpenSSL's). */
export function hmac(key: Uint8Array, ...inputs: Uint8Array[]): Buffer {
  const h = createHmac('blake2s256', key);
  for (const i of inputs) h.update(i);
  return h.digest();
}

/** KDF_n(key, input): HKDF with HMAC-BLAKE2s, returning n 32-byte outputs. */
export function kdf(n: 1 | 2 | 3, key: Uint8Array, input: Uint8Array): Buffer[] {
  const prk = hmac(key, input);
  const out: Buffer[] = [];
  let prev: Buffer = Buffer.alloc(0);
  for (let i = 1; i <= n; i++) {
    prev = hmac(prk, prev, Uint8Array.of(i));
    out.push(prev);
  }
  return out;
}

// ---- X25519 via node:crypto (raw 32-byte keys wrapped in PKCS#8 / SPKI DER) ----
const PKCS8_X25519 = Buffer.from('302e020100300506032b656e04220420', 'hex');
const SPKI_X25519 = Buffer.from('302a300506032b656e032100', 'hex');

/** A private key as `wg genkey` makes it: 32 random bytes, clamped for Curve25519. */
export function generatePrivateKey(): Buffer {
  return clamp(randomBytes(32));
}

export function clamp(key: Uint8Array): Buffer {
  const k = Buffer.from(key);
  k[0]! &= 248;
  k[31]! &= 127;
  k[31]! |= 64;
  return k;
}

function privateKeyObject(priv: Uint8Array): KeyObject {
  if (priv.length !== 32) throw new RangeError('X25519 private key must be 32 bytes');
  return createPrivateKey({ key: Buffer.concat([PKCS8_X25519, priv]), format: 'der', type: 'pkcs8' });
}

function publicKeyObject(pub: Uint8Array): KeyObject {
  if (pub.length !== 32) throw new RangeError('X25519 public key must be 32 bytes');
  return createPublicKey({ key: Buffer.concat([SPKI_X25519, pub]), format: 'der', type: 'spki' });
}

/** The public key of a private key. */
export function publicKey(priv: Uint8Array): Buffer {
  const der = createPublicKey(privateKeyObject(priv)).export({ format: 'der', type: 'spki' });
  return Buffer.from(der.subarray(der.length - 32));
}

/** A prepared private key: parsing DER once per interface, not once per handshake. */
export class StaticKey {
  readonly private: Buffer;
  readonly public: Buffer;
  private readonly object: KeyObject;
  constructor(priv: Uint8Array) {
    this.private = Buffer.from(priv);
    this.object = privateKeyObject(priv);
    this.public = publicKey(priv);
  }
  dh(pub: Uint8Array): Buffer | undefined {
    return dhObjects(this.object, pub);
  }
}

function dhObjects(priv: KeyObject, pub: Uint8Array): Buffer | undefined {
  try {
    const shared = diffieHellman({ privateKey: priv, publicKey: publicKeyObject(pub) });
    // An all-zero result means a low-order point: the handshake must fail (OpenSSL may also throw).
    return shared.every((b) => b === 0) ? undefined : shared;
  } catch {
    return undefined;
  }
}

/** DH(private, public); undefined if the result is the all-zero point. */
export function dh(priv: Uint8Array, pub: Uint8Array): Buffer | undefined {
  return dhObjects(privateKeyObject(priv), pub);
}

// ---- AEAD (ChaCha20-Poly1305 with a 64-bit counter nonce) ----
function counterNonce(counter: bigint): Buffer {
  const n = Buffer.alloc(12);
  n.writeBigUInt64LE(counter, 4);
  return n;
}

function sealRaw(key: Uint8Array, nonce: Buffer, plain: Uint8Array, aad: Uint8Array): Buffer {
  const c = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 });
  c.setAAD(aad, { plaintextLength: plain.length });
  return Buffer.concat([c.update(plain), c.final(), c.getAuthTag()]);
}

function openRaw(key: Uint8Array, nonce: Buffer, sealed: Uint8Array, aad: Uint8Array): Buffer | undefined {
  if (sealed.length < 16) return undefined;
  try {
    const d = createDecipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 });
    d.setAuthTag(sealed.subarray(sealed.length - 16));
    d.setAAD(aad, { plaintextLength: sealed.length - 16 });
    return Buffer.concat([d.update(sealed.subarray(0, sealed.length - 16)), d.final()]);
  } catch {
    return undefined;
  }
}

/** AEAD(key, counter, plain, aad). */
export function aeadSeal(key: Uint8Array, counter: bigint, plain: Uint8Array, aad: Uint8Array): Buffer {
  return sealRaw(key, counterNonce(counter), plain, aad);
}

/** Inverse of aeadSeal; undefined when authentication fails. */
export function aeadOpen(key: Uint8Array, counter: bigint, sealed: Uint8Array, aad: Uint8Array): Buffer | undefined {
  return openRaw(key, counterNonce(counter), sealed, aad);
}

// ---- XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha): HChaCha20 subkey + ChaCha20-Poly1305 ----
/** HChaCha20(key, 16-byte nonce) → 32-byte subkey. */
export function hchacha20(key: Uint8Array, nonce16: Uint8Array): Buffer {
  const s = new Uint32Array(16);
  s[0] = 0x61707865; s[1] = 0x3320646e; s[2] = 0x79622d32; s[3] = 0x6b206574;
  const kv = new DataView(key.buffer, key.byteOffset, 32);
  const nv = new DataView(nonce16.buffer, nonce16.byteOffset, 16);
  for (let i = 0; i < 8; i++) s[4 + i] = kv.getUint32(i * 4, true);
  for (let i = 0; i < 4; i++) s[12 + i] = nv.getUint32(i * 4, true);
  const rotl = (x: number, n: number) => (x << n) | (x >>> (32 - n));
  const qr = (a: number, b: number, c: number, d: number) => {
    s[a] = s[a]! + s[b]!; s[d] = rotl(s[d]! ^ s[a]!, 16);
    s[c] = s[c]! + s[d]!; s[b] = rotl(s[b]! ^ s[c]!, 12);
    s[a] = s[a]! + s[b]!; s[d] = rotl(s[d]! ^ s[a]!, 8);
    s[c] = s[c]! + s[d]!; s[b] = rotl(s[b]! ^ s[c]!, 7);
  };
  for (let i = 0; i < 10; i++) {
    qr(0, 4, 8, 12); qr(1, 5, 9, 13); qr(2, 6, 10, 14); qr(3, 7, 11, 15);
    qr(0, 5, 10, 15); qr(1, 6, 11, 12); qr(2, 7, 8, 13); qr(3, 4, 9, 14);
  }
  const out = Buffer.alloc(32);
  for (let i = 0; i < 4; i++) out.writeUInt32LE(s[i]!, i * 4);
  for (let i = 0; i < 4; i++) out.writeUInt32LE(s[12 + i]!, 16 + i * 4);
  return out;
}

function xNonce(nonce24: Uint8Array): Buffer {
  const n = Buffer.alloc(12);
  n.set(nonce24.subarray(16, 24), 4);
  return n;
}

/** XAEAD(key, 24-byte nonce, plain, aad). */
export function xaeadSeal(key: Uint8Array, nonce24: Uint8Array, plain: Uint8Array, aad: Uint8Array): Buffer {
  return sealRaw(hchacha20(key, nonce24.subarray(0, 16)), xNonce(nonce24), plain, aad);
}

export function xaeadOpen(key: Uint8Array, nonce24: Uint8Array, sealed: Uint8Array, aad: Uint8Array): Buffer | undefined {
  return openRaw(hchacha20(key, nonce24.subarray(0, 16)), xNonce(nonce24), sealed, aad);
}

/** Constant-time comparison of equal-length byte strings. */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

// ---- keys as text (base64 of 32 bytes, like `wg`) ----
export function keyToBase64(key: Uint8Array): string {
  return Buffer.from(key).toString('base64');
}

/** Parses a base64 key; throws with a useful sentence when it is not 32 bytes of standard base64. */
export function keyFromBase64(text: string): Buffer {
  const t = text.trim();
  if (!/^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/.test(t)) {
    throw new Error('a key must be 44 characters of base64 encoding 32 bytes (as `wg genkey` prints)');
  }
  return Buffer.from(t, 'base64');
}
