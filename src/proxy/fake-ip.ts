// The fake-IP pool of the transparent proxy's DNS mode: a query for a name (read by packet's DNS
// codec) is answered with a fake address, so that connections to it reach the proxy as the
// host name the application asked for.
import { formatIP, parseCidr as parseAddressCidr } from '../addr.js';

export interface FakeIpPoolOptions {
  /** The most addresses handed out per range (default 65536). */
  limit?: number;
  /**
   * How long after its last use an address may be given to another name (default 5 minutes):
   * applications and resolvers cache answers longer than their TTL says.
   */
  reuseAfterMs?: number;
}

/** One fake address and the name it stands for. */
interface FakeAddress {
  readonly text: string;
  readonly bytes: Buffer;
  readonly family: 4 | 6;
  name: string;
  lastUsed: number;
  /** Live sessions (connections, UDP flows) to the address: never reused while above 0. */
  holds: number;
}

interface Range {
  base: Buffer;
  size: number;
  /** Addresses handed out so far; past `size`, addresses are recycled. */
  fresh: number;
  /** Every address of the range handed out, least recently used first. */
  lru: Map<string, FakeAddress>;
}

/** Addresses looked at per allocation when recycling, so one query costs bounded work. */
const RECYCLE_SCAN = 64;

/**
 * A pool of fake addresses handed out per host name. Once every address of a range has been
 * handed out, the least recently used one goes to the next new name, but never one that a live
 * session holds or that was used within `reuseAfterMs`: without such an address the range is
 * exhausted (addressesFor returns none although hasRange is true) and the query gets SERVFAIL.
 */
export class FakeIpPool {
  private readonly ranges: Range[] = [];
  private readonly byName = new Map<string, { 4?: FakeAddress; 6?: FakeAddress }>();
  private readonly byAddress = new Map<string, FakeAddress>();
  private readonly reuseAfterMs: number;

  constructor(cidrs: string[], opts: FakeIpPoolOptions = {}) {
    const { limit = 65536, reuseAfterMs = 5 * 60_000 } = opts;
    this.reuseAfterMs = reuseAfterMs;
    for (const c of cidrs) {
      const { bytes, prefixLength } = parseAddressCidr(c);
      const hostBits = bytes.length * 8 - prefixLength;
      // Skip the network address (and keep the pool within `limit` entries).
      const size = Math.min(hostBits >= 31 ? 2 ** 31 : 2 ** hostBits - 2, limit);
      if (size < 1) throw new TypeError(`fake-IP range ${c} is too small`);
      this.ranges.push({ base: bytes, size, fresh: 0, lru: new Map() });
    }
  }

  /** True when a range of `family` is configured (so no address for a name means exhausted). */
  hasRange(family: 4 | 6): boolean {
    return this.rangeFor(family) !== undefined;
  }

  private rangeFor(family: 4 | 6): Range | undefined {
    return this.ranges.find((r) => r.base.length === (family === 4 ? 4 : 16));
  }

  /**
   * The fake address for `name` (one, of `family`), allocating one if needed; none when no range
   * of that family is configured or the range is exhausted (see hasRange).
   */
  addressesFor(name: string, family: 4 | 6, now = Date.now()): Buffer[] {
    const range = this.rangeFor(family);
    if (!range) return [];
    const known = this.byName.get(name)?.[family];
    if (known) { this.use(known, range, now); return [known.bytes]; }
    let a: FakeAddress | undefined;
    if (range.fresh < range.size) a = this.fresh(range, family, name);
    else a = this.recycle(range, name, now);
    if (!a) return [];
    a.lastUsed = now;
    this.byName.set(name, { ...this.byName.get(name), [family]: a });
    return [a.bytes];
  }

  private fresh(range: Range, family: 4 | 6, name: string): FakeAddress {
    const bytes = Buffer.from(range.base);
    // base + index + 1, added from the last byte up.
    let carry = ++range.fresh;
    for (let i = bytes.length - 1; i >= 0 && carry > 0; i--) {
      const v = bytes[i]! + (carry % 256);
      bytes[i] = v & 0xff;
      carry = Math.floor(carry / 256) + (v >> 8);
    }
    const a: FakeAddress = { text: formatIP(bytes), bytes, family, name, lastUsed: 0, holds: 0 };
    range.lru.set(a.text, a);
    this.byAddress.set(a.text, a);
    return a;
  }

  private recycle(range: Range, name: string, now: number): FakeAddress | undefined {
    const seen: FakeAddress[] = [];
    for (const a of range.lru.values()) {
      // Least recently used first: once one is too fresh, so are all after it.
      if (seen.length === RECYCLE_SCAN || now - a.lastUsed < this.reuseAfterMs) break;
      seen.push(a);
    }
    let chosen: FakeAddress | undefined;
    for (const a of seen) {
      if (a.holds > 0) { this.use(a, range, now); continue; }
      chosen = a;
      break;
    }
    if (!chosen) return undefined;
    const owner = this.byName.get(chosen.name);
    if (owner) {
      delete owner[chosen.family];
      if (!owner[4] && !owner[6]) this.byName.delete(chosen.name);
    }
    chosen.name = name;
    this.use(chosen, range, now);
    return chosen;
  }

  /** Marks `a` used now: the end of its range's LRU order. */
  private use(a: FakeAddress, range: Range, now: number): void {
    a.lastUsed = now;
    range.lru.delete(a.text);
    range.lru.set(a.text, a);
  }

  private rangeOf(a: FakeAddress): Range {
    return this.ranges.find((r) => r.base.length === a.bytes.length)!;
  }

  /** The host name behind a fake address, if it is one. */
  nameOf(address: string): string | undefined {
    return this.byAddress.get(address)?.name;
  }

  /** Something used the fake address (a SYN, a datagram): it stays its name's a while longer. */
  touch(address: string, now = Date.now()): void {
    const a = this.byAddress.get(address);
    if (a) this.use(a, this.rangeOf(a), now);
  }

  /** A session to the fake address began: it is not reused until released. */
  hold(address: string): void {
    const a = this.byAddress.get(address);
    if (a) a.holds++;
  }

  /** The session that held the address ended (its last use counts from now). */
  release(address: string, now = Date.now()): void {
    const a = this.byAddress.get(address);
    if (!a || a.holds === 0) return;
    a.holds--;
    this.use(a, this.rangeOf(a), now);
  }

  get size(): number {
    return this.byAddress.size;
  }
}
