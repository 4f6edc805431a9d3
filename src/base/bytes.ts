// Byte helpers for every codec: big-endian loads/stores on a Uint8Array (plain byte math, so they
// work on any Uint8Array at any offset without allocating a DataView).

export const u16 = (b: Uint8Array, o: number): number => (b[o]! << 8) | b[o + 1]!;
export const u32 = (b: Uint8Array, o: number): number =>
  ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
export function put16(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 8; b[o + 1] = v;
}
export function put32(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 24; b[o + 1] = v >>> 16; b[o + 2] = v >>> 8; b[o + 3] = v;
}

/** Little-endian 16-bit load (virtio_net_hdr fields). */
export const u16le = (b: Uint8Array, o: number): number => b[o]! | (b[o + 1]! << 8);

/** Equal bytes a[ao..ao+n) and b[bo..bo+n). */
export function bytesEqual(a: Uint8Array, ao: number, b: Uint8Array, bo: number, n: number): boolean {
  for (let i = 0; i < n; i++) if (a[ao + i] !== b[bo + i]) return false;
  return true;
}

/** A copy of b[start..end) (Buffer#slice would share memory). */
export function copyBytes(b: Uint8Array, start = 0, end = b.length): Uint8Array {
  return new Uint8Array(b.subarray(start, end));
}
