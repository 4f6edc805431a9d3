// Cryptokey routing table: IPv4 and IPv6 prefixes → peer, longest-prefix match, one binary trie
// per family. Inserting a prefix another peer holds moves it (as WireGuard does).
import { parseCidr, formatIP, networkOf } from '../addr.js';

class Node<T> {
  zero: Node<T> | undefined;
  one: Node<T> | undefined;
  value: T | undefined;
}

const bitAt = (bytes: Uint8Array, offset: number, bit: number) => (bytes[offset + (bit >> 3)]! >> (7 - (bit & 7))) & 1;

// Recent answers, direct-mapped by a hash of the address. A trie walk visits one node per bit
// (32 for IPv4, 128 for IPv6), each its own heap object; on a quiet tunnel, where memory is cold
// again by the next packet, that walk was a visible part of a packet's latency. The cache is
// a few contiguous arrays, and any change to the table empties it.
const CACHE_SLOTS = 256;

const word = (b: Uint8Array, at: number) => (b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!;

/** The cache slot of an address (its words; zeros past an IPv4 address's one). */
function slotOf(w0: number, w1: number, w2: number, w3: number): number {
  const h = Math.imul(w0 ^ Math.imul(w1, 0x9e3779b1) ^ Math.imul(w2, 0x85ebca6b) ^ Math.imul(w3, 0xc2b2ae35), 0x27d4eb2f);
  return ((h >>> 24) ^ (h >>> 16)) & (CACHE_SLOTS - 1);
}

export class AllowedIps<T> {
  private v4 = new Node<T>();
  private v6 = new Node<T>();
  /** Table generation: a cache slot is valid while its generation equals this. */
  private generation = 1;
  private readonly cacheGeneration = new Uint32Array(CACHE_SLOTS);
  /** Each slot's address: one 32-bit word (IPv4, family in cacheFamily) or four (IPv6). */
  private readonly cacheWords = new Int32Array(CACHE_SLOTS * 4);
  private readonly cacheFamily = new Uint8Array(CACHE_SLOTS);
  private readonly cacheValues: Array<T | undefined> = new Array<T | undefined>(CACHE_SLOTS).fill(undefined);

  private changed(): void {
    this.generation++;
    if (this.generation === 0xffffffff) { this.generation = 1; this.cacheGeneration.fill(0); }
    this.cacheValues.fill(undefined);
  }

  /** Adds `cidr` ("198.18.0.0/15", "fd00::/8", or a bare address) for `value`. */
  insert(cidr: string, value: T): void {
    const c = parseCidr(cidr);
    const bytes = networkOf(c.bytes, c.prefixLength);
    let node = c.family === 4 ? this.v4 : this.v6;
    for (let bit = 0; bit < c.prefixLength; bit++) {
      if (bitAt(bytes, 0, bit)) node = node.one ??= new Node<T>();
      else node = node.zero ??= new Node<T>();
    }
    node.value = value;
    this.changed();
  }

  /** Removes one prefix, whoever holds it; returns whether it was present. */
  remove(cidr: string): boolean {
    const c = parseCidr(cidr);
    const bytes = networkOf(c.bytes, c.prefixLength);
    let node: Node<T> | undefined = c.family === 4 ? this.v4 : this.v6;
    for (let bit = 0; bit < c.prefixLength && node; bit++) node = bitAt(bytes, 0, bit) ? node.one : node.zero;
    if (!node || node.value === undefined) return false;
    node.value = undefined;
    this.changed();
    return true;
  }

  /** Removes every prefix held by `value`. */
  removeValue(value: T): void {
    const walk = (n: Node<T> | undefined) => {
      if (!n) return;
      if (n.value === value) n.value = undefined;
      walk(n.zero);
      walk(n.one);
    };
    walk(this.v4);
    walk(this.v6);
    this.changed();
  }

  /** Longest-prefix match of the address at bytes[offset..] (4 bytes for v4, 16 for v6). */
  lookup(family: 4 | 6, bytes: Uint8Array, offset = 0): T | undefined {
    return family === 4 ? this.lookupV4(word(bytes, offset)) : this.lookupV6(bytes, offset);
  }

  /** Longest-prefix match of an IPv4 address given as a 32-bit number (as Ipv4View's src and dst read it). */
  lookupV4(address: number): T | undefined {
    const w0 = address | 0;
    const h = slotOf(w0, 0, 0, 0);
    if (this.cached(h, 4, w0, 0, 0, 0)) return this.cacheValues[h];
    let node: Node<T> | undefined = this.v4;
    let best = node.value;
    for (let bit = 31; bit >= 0; bit--) {
      node = (w0 >>> bit) & 1 ? node.one : node.zero;
      if (!node) break;
      if (node.value !== undefined) best = node.value;
    }
    return this.remember(h, 4, w0, 0, 0, 0, best);
  }

  /** Longest-prefix match of the IPv6 address at bytes[offset..offset+16). */
  lookupV6(bytes: Uint8Array, offset: number): T | undefined {
    const w0 = word(bytes, offset), w1 = word(bytes, offset + 4), w2 = word(bytes, offset + 8), w3 = word(bytes, offset + 12);
    const h = slotOf(w0, w1, w2, w3);
    if (this.cached(h, 6, w0, w1, w2, w3)) return this.cacheValues[h];
    let node: Node<T> | undefined = this.v6;
    let best = node.value;
    for (let bit = 0; bit < 128; bit++) {
      node = bitAt(bytes, offset, bit) ? node.one : node.zero;
      if (!node) break;
      if (node.value !== undefined) best = node.value;
    }
    return this.remember(h, 6, w0, w1, w2, w3, best);
  }

  private cached(h: number, family: 4 | 6, w0: number, w1: number, w2: number, w3: number): boolean {
    const words = this.cacheWords;
    const k = h * 4;
    return this.cacheGeneration[h] === this.generation && this.cacheFamily[h] === family &&
      words[k] === w0 && words[k + 1] === w1 && words[k + 2] === w2 && words[k + 3] === w3;
  }

  private remember(h: number, family: 4 | 6, w0: number, w1: number, w2: number, w3: number, found: T | undefined): T | undefined {
    const words = this.cacheWords;
    const k = h * 4;
    this.cacheGeneration[h] = this.generation;
    this.cacheFamily[h] = family;
    words[k] = w0; words[k + 1] = w1; words[k + 2] = w2; words[k + 3] = w3;
    this.cacheValues[h] = found;
    return found;
  }

  /** Looks up an address given as text. */
  lookupAddress(address: string): T | undefined {
    const c = parseCidr(address);
    return this.lookup(c.family, c.bytes);
  }

  /** The prefixes held by `value` ("a.b.c.d/n"), v4 first; all prefixes when value is undefined. */
  entries(value?: T): Array<{ cidr: string; value: T }> {
    const out: Array<{ cidr: string; value: T }> = [];
    const walk = (n: Node<T> | undefined, family: 4 | 6, path: number[]) => {
      if (!n) return;
      if (n.value !== undefined && (value === undefined || n.value === value)) {
        const bytes = Buffer.alloc(family === 4 ? 4 : 16);
        path.forEach((b, i) => { if (b) bytes[i >> 3]! |= 0x80 >> (i & 7); });
        out.push({ cidr: `${formatIP(bytes)}/${path.length}`, value: n.value });
      }
      walk(n.zero, family, [...path, 0]);
      walk(n.one, family, [...path, 1]);
    };
    walk(this.v4, 4, []);
    walk(this.v6, 6, []);
    return out;
  }

  clear(): void {
    this.v4 = new Node<T>();
    this.v6 = new Node<T>();
    this.changed();
  }
}
