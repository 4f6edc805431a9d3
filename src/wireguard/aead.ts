// Batched ChaCha20-Poly1305 for the data path: one native call seals or opens a whole batch of
// packets with Node's own OpenSSL (native/aead.cc), instead of one createCipheriv per packet.
// Where the node binary exports OpenSSL's ChaCha20 and Poly1305 block functions the AEAD is
// composed from them ("direct"; its keystream made by native/chacha.cc, several packets' blocks
// per vector pass); elsewhere it goes through EVP. Both give the same bytes.
import { addon } from '../native.js';

interface AeadNative {
  aeadSealBatch(keys: Uint8Array, keyIndex: Uint32Array | null, src: Uint8Array, srcOffsets: Uint32Array,
    srcLengths: Uint32Array, counters: BigUint64Array | Uint32Array, dst: Uint8Array, dstOffsets: Uint32Array,
    dstLengths: Uint32Array, count: number, padLimit: number): number;
  aeadOpenBatch(keys: Uint8Array, keyIndex: Uint32Array | null, src: Uint8Array, srcOffsets: Uint32Array,
    srcLengths: Uint32Array, counters: BigUint64Array | Uint32Array, dst: Uint8Array, dstOffsets: Uint32Array,
    dstLengths: Uint32Array, count: number, ok: Uint8Array): number;
  aeadBackend(use?: AeadBackend): AeadBackend;
  aeadChaCha(use?: AeadKeystream): AeadKeystream;
  aeadPoly(use?: AeadPoly): AeadPoly;
}

export type AeadBackend = 'direct' | 'evp';
/** Who makes the direct backend's ChaCha20 keystream: our lanes at a width, or OpenSSL's ChaCha20_ctr32. */
export type AeadKeystream = 'avx512' | 'avx2' | 'portable' | 'openssl';
/** Who tags a group of packets in the direct backend: our Poly1305 lanes (AVX-512 IFMA), or OpenSSL's. */
export type AeadPoly = 'lanes' | 'openssl';
const native = addon as AeadNative;

/**
 * Describes one batch for sealBatch/openBatch. Packet i is src[srcOffsets[i] .. +srcLengths[i]],
 * uses keys[keyIndex[i]*32 .. +32] (key 0 when keyIndex is null) and nonce = 4 zero bytes ||
 * counters[i] (64-bit little-endian); its output goes to dst at dstOffsets[i] and its output
 * length is written to dstLengths[i].
 */
export interface AeadBatch {
  keys: Uint8Array;
  keyIndex: Uint32Array | null;
  src: Uint8Array;
  srcOffsets: Uint32Array;
  srcLengths: Uint32Array;
  /** 64-bit little-endian counters: a BigUint64Array, or a Uint32Array of (low, high) pairs. */
  counters: BigUint64Array | Uint32Array;
  dst: Uint8Array;
  dstOffsets: Uint32Array;
  dstLengths: Uint32Array;
  count: number;
}

/**
 * Encrypts every packet of the batch (ciphertext || 16-byte tag). With padLimit > 0 the plaintext
 * is zero-padded to a multiple of 16 bytes but not past padLimit (WireGuard's rule, padLimit =
 * MTU). Returns how many packets were sealed (all of them unless OpenSSL failed).
 */
export function sealBatch(b: AeadBatch, padLimit = 0): number {
  return native.aeadSealBatch(b.keys, b.keyIndex, b.src, b.srcOffsets, b.srcLengths, b.counters,
    b.dst, b.dstOffsets, b.dstLengths, b.count, padLimit);
}

/**
 * Decrypts and authenticates every packet of the batch; ok[i] = 1 for packets that authenticated
 * (their plaintext length is in dstLengths[i]), 0 otherwise. Returns the number that did.
 */
export function openBatch(b: AeadBatch, ok: Uint8Array): number {
  return native.aeadOpenBatch(b.keys, b.keyIndex, b.src, b.srcOffsets, b.srcLengths, b.counters,
    b.dst, b.dstOffsets, b.dstLengths, b.count, ok);
}

/** The implementation in effect; `use` switches it for the whole process (tests compare both). */
export function aeadBackend(use?: AeadBackend): AeadBackend {
  return use === undefined ? native.aeadBackend() : native.aeadBackend(use);
}

/**
 * The direct backend's keystream maker; `use` switches it for the whole process (tests run every
 * width against OpenSSL). A width this CPU lacks throws a RangeError.
 */
export function aeadKeystream(use?: AeadKeystream): AeadKeystream {
  return use === undefined ? native.aeadChaCha() : native.aeadChaCha(use);
}

/**
 * The direct backend's Poly1305 for groups of packets; `use` switches it for the whole process
 * (tests run both). 'lanes' on a CPU without AVX-512 IFMA throws a RangeError.
 */
export function aeadPoly(use?: AeadPoly): AeadPoly {
  return use === undefined ? native.aeadPoly() : native.aeadPoly(use);
}

/** Padded plaintext length WireGuard sends for a packet of `length` bytes under `mtu`. */
export function paddedLength(length: number, mtu: number): number {
  if (mtu === 0) return length;
  let padded = (length + 15) & ~15;
  if (padded > mtu) padded = length > mtu ? length : mtu;
  return padded;
}
