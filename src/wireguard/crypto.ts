// WireGuard's primitives (wireguard.com/protocol): HASH = BLAKE2s-256, MAC = keyed BLAKE2s-128,
// HMAC over BLAKE2s-256, KDF1..3, X25519 DH, AEAD = ChaCha20-Poly1305 and XAEAD =
// XChaCha20-Poly1305. Node's OpenSSL supplies BLAKE2s-256, its HMAC, ChaCha20-Poly1305 and
// X25519; what it lacks (keyed BLAKE2s, XChaCha20-Poly1305) comes from the audited @noble
// libraries rather than code of our own.
import { blake2s as nobleBlake2s } from '@noble/hashes/blake2.js';
import { xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import {
  createCipheriv, createDecipheriv, createHash, createHmac, createPrivateKey, createPublicKey,
  diffieHellman, generateKeyPairSync, randomBytes, timingSafeEqual, type KeyObject,
} from 'node:crypto';

// ---- keyed BLAKE2s (RFC 7693) from @noble/hashes ----
/** BLAKE2s of the concatenated inputs, `outLen` bytes (1..32), optionally keyed (key ≤ 32 bytes). */
export function blake2s(outLen: number, key: Uint8Array | undefined, ...inputs: Uint8Array[]): Buffer {
  const h = nobleBlake2s.create({ dkLen: outLen, key: key && key.length > 0 ? key : undefined });
  for (const input of inputs) h.update(input);
  const digest = h.digest();
  return Buffer.from(digest.buffer, digest.byteOffset, digest.length);
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
  prk.fill(0);
  return out;
}

// ---- X25519 via node:crypto (private keys go in as PKCS#8 DER, public keys as JWK) ----
const PKCS8_X25519 = Buffer.from('302e020100300506032b656e04220420', 'hex');

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
  const der = Buffer.concat([PKCS8_X25519, priv]);
  try {
    return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
  } finally {
    der.fill(0);
  }
}

// Public keys go in as JWK: OpenSSL 3 decodes DER through its generic decoder framework, which
// cost ~0.2 ms per key here against ~0.01 ms for JWK, and a handshake imports two or three.
function publicKeyObject(pub: Uint8Array): KeyObject {
  if (pub.length !== 32) throw new RangeError('X25519 public key must be 32 bytes');
  return createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: Buffer.from(pub.buffer, pub.byteOffset, 32).toString('base64url') }, format: 'jwk' });
}

function rawPublicKey(key: KeyObject): Buffer {
  return Buffer.from(key.export({ format: 'jwk' }).x!, 'base64url');
}

/** The public key of a private key. */
export function publicKey(priv: Uint8Array): Buffer {
  return rawPublicKey(createPublicKey(privateKeyObject(priv)));
}

/** A prepared private key: parsing DER once per interface, not once per handshake. */
export class StaticKey {
  readonly private: Buffer;
  readonly public: Buffer;
  private object: KeyObject | undefined;
  constructor(priv: Uint8Array) {
    this.private = Buffer.from(priv);
    this.object = privateKeyObject(priv);
    this.public = rawPublicKey(createPublicKey(this.object));
  }
  dh(pub: Uint8Array): Buffer | undefined {
    return this.object && dhObjects(this.object, pub);
  }
  /**
   * Zeroes our copy of the private key and lets go of OpenSSL's (which OpenSSL clears when it
   * frees the key, once the object is collected: JavaScript cannot free it sooner).
   */
  wipe(): void {
    this.private.fill(0);
    this.object = undefined;
  }
}

/**
 * A handshake's ephemeral key pair. The private half exists only inside OpenSSL, never as bytes
 * on the JavaScript heap, so no copy of it is left behind for a wipe to miss.
 */
export interface EphemeralKey {
  readonly private: KeyObject;
  readonly public: Buffer;
}

/** Curve25519's base point (u = 9): X25519(k, 9) is the public key of k. */
const BASE_POINT = publicKeyObject(Buffer.concat([Uint8Array.of(9), Buffer.alloc(31)]));

export function generateEphemeral(): EphemeralKey {
  const pair = generateKeyPairSync('x25519');
  // Not pair.publicKey.export(): Node 20 can deadlock exporting a key that generateKeyPairSync
  // made, when a garbage collection inside the export frees that generation's job (measured
  // here: a loop of generate + export hung within seconds; generate + X25519 ran 200,000 times).
  return { private: pair.privateKey, public: diffieHellman({ privateKey: pair.privateKey, publicKey: BASE_POINT }) };
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
export function dh(priv: Uint8Array | KeyObject, pub: Uint8Array): Buffer | undefined {
  return dhObjects(priv instanceof Uint8Array ? privateKeyObject(priv) : priv, pub);
}

/** Zeroes secrets that are no longer needed (a chaining key, a DH result, a key copy). */
export function wipe(...secrets: Array<Uint8Array | undefined>): void {
  for (const s of secrets) s?.fill(0);
}

// ---- AEAD (ChaCha20-Poly1305 with a 64-bit counter nonce) ----
function counterNonce(counter: bigint): Buffer {
  const n = Buffer.alloc(12);
  n.writeBigUInt64LE(counter, 4);
  return n;
}

/** AEAD(key, counter, plain, aad). */
export function aeadSeal(key: Uint8Array, counter: bigint, plain: Uint8Array, aad: Uint8Array): Buffer {
  const c = createCipheriv('chacha20-poly1305', key, counterNonce(counter), { authTagLength: 16 });
  c.setAAD(aad, { plaintextLength: plain.length });
  return Buffer.concat([c.update(plain), c.final(), c.getAuthTag()]);
}

/** Inverse of aeadSeal; undefined when authentication fails. */
export function aeadOpen(key: Uint8Array, counter: bigint, sealed: Uint8Array, aad: Uint8Array): Buffer | undefined {
  if (sealed.length < 16) return undefined;
  try {
    const d = createDecipheriv('chacha20-poly1305', key, counterNonce(counter), { authTagLength: 16 });
    d.setAuthTag(sealed.subarray(sealed.length - 16));
    d.setAAD(aad, { plaintextLength: sealed.length - 16 });
    return Buffer.concat([d.update(sealed.subarray(0, sealed.length - 16)), d.final()]);
  } catch {
    return undefined;
  }
}

// ---- XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha) from @noble/ciphers ----
/** XAEAD(key, 24-byte nonce, plain, aad). */
export function xaeadSeal(key: Uint8Array, nonce24: Uint8Array, plain: Uint8Array, aad: Uint8Array): Buffer {
  const sealed = xchacha20poly1305(key, nonce24, aad).encrypt(plain);
  return Buffer.from(sealed.buffer, sealed.byteOffset, sealed.length);
}

/** Inverse of xaeadSeal; undefined when authentication fails. */
export function xaeadOpen(key: Uint8Array, nonce24: Uint8Array, sealed: Uint8Array, aad: Uint8Array): Buffer | undefined {
  if (sealed.length < 16) return undefined;
  try {
    const plain = xchacha20poly1305(key, nonce24, aad).decrypt(sealed);
    return Buffer.from(plain.buffer, plain.byteOffset, plain.length);
  } catch {
    return undefined;
  }
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
