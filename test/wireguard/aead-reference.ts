// node:crypto's ChaCha20-Poly1305 under WireGuard's nonce: what the batched AEAD's tests compare with.
import { createCipheriv, createDecipheriv } from 'node:crypto';

/** WireGuard's nonce: 4 zero bytes, then the 64-bit little-endian counter. */
export function nonceOf(counter: bigint): Buffer {
  const n = Buffer.alloc(12);
  n.writeBigUInt64LE(counter, 4);
  return n;
}

export function referenceSeal(key: Uint8Array, counter: bigint, plain: Uint8Array): Buffer {
  const c = createCipheriv('chacha20-poly1305', key, nonceOf(counter), { authTagLength: 16 });
  return Buffer.concat([c.update(plain), c.final(), c.getAuthTag()]);
}

export function referenceOpen(key: Uint8Array, counter: bigint, sealed: Uint8Array): Buffer {
  const d = createDecipheriv('chacha20-poly1305', key, nonceOf(counter), { authTagLength: 16 });
  d.setAuthTag(sealed.subarray(sealed.length - 16));
  return Buffer.concat([d.update(sealed.subarray(0, sealed.length - 16)), d.final()]);
}
