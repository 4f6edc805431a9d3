// DNS for the transparent proxy: just enough of the message format (RFC 1035) to read a query's
// question and to answer it from a fake-IP pool, so that connections to a fake address reach
// the proxy as the host name the application asked for.
import { formatIP, parseCidr as parseAddressCidr, parseIP } from '../addr.js';

export const TYPE_A = 1;
export const TYPE_AAAA = 28;

export interface DnsQuestion {
  id: number;
  name: string;
  type: number;
  klass: number;
  /** Offset just past the question (where answers start). */
  end: number;
}

/** Reads the first question of a query; undefined when malformed or not a plain query. */
export function parseQuery(msg: Uint8Array): DnsQuestion | undefined {
  if (msg.length < 12) return undefined;
  const flags = (msg[2]! << 8) | msg[3]!;
  const qdcount = (msg[4]! << 8) | msg[5]!;
  if (flags & 0x8000 || qdcount < 1) return undefined;
  const labels: string[] = [];
  let off = 12;
  for (;;) {
    if (off >= msg.length) return undefined;
    const len = msg[off]!;
    if (len === 0) { off++; break; }
    if (len > 63 || off + 1 + len > msg.length) return undefined;
    labels.push(Buffer.from(msg.buffer, msg.byteOffset + off + 1, len).toString('latin1'));
    off += 1 + len;
  }
  if (off + 4 > msg.length) return undefined;
  return {
    id: (msg[0]! << 8) | msg[1]!,
    name: labels.join('.').toLowerCase(),
    type: (msg[off]! << 8) | msg[off + 1]!,
    klass: (msg[off + 2]! << 8) | msg[off + 3]!,
    end: off + 4,
  };
}

/** Builds an answer to `query` carrying `addresses` (4- or 16-byte each) with a short TTL. */
export function buildAnswer(query: Uint8Array, q: DnsQuestion, addresses: Buffer[], ttl = 1): Buffer {
  const head = Buffer.from(query.subarray(0, q.end));
  // QR=1, keep opcode and RD, RA=1, RCODE=0; one question, no authority/additional records.
  head[2] = 0x80 | (head[2]! & 0x79);
  head[3] = 0x80;
  head.writeUInt16BE(1, 4);
  head.writeUInt16BE(addresses.length, 6);
  head.writeUInt16BE(0, 8);
  head.writeUInt16BE(0, 10);
  const answers = addresses.map((a) => {
    const rr = Buffer.alloc(12 + a.length);
    rr.writeUInt16BE(0xc00c, 0);
    rr.writeUInt16BE(a.length === 4 ? TYPE_A : TYPE_AAAA, 2);
    rr.writeUInt16BE(1, 4);
    rr.writeUInt32BE(ttl, 6);
    rr.writeUInt16BE(a.length, 10);
    a.copy(rr, 12);
    return rr;
  });
  return Buffer.concat([head, ...answers]);
}

function parseCidr(cidr: string): { base: Buffer; bits: number } {
  const { bytes, prefixLength } = parseAddressCidr(cidr);
  return { base: bytes, bits: prefixLength };
}

/**
 * A pool of fake addresses handed out per host name. Addresses are reused least recently
 * allocated first once the pool is exhausted, so memory stays bounded by the pool size.
 */
export class FakeIpPool {
  private readonly pools: { base: Buffer; bits: number; next: number; size: number }[] = [];
  private readonly byName = new Map<string, string[]>();
  private readonly byAddress = new Map<string, string>();

  constructor(cidrs: string[], private readonly limit = 65536) {
    for (const c of cidrs) {
      const { base, bits } = parseCidr(c);
      const hostBits = base.length * 8 - bits;
      // Skip the network address (and keep the pool within `limit` entries).
      const size = Math.min(hostBits >= 31 ? 2 ** 31 : 2 ** hostBits - 2, limit);
      if (size < 1) throw new TypeError(`fake-IP range ${c} is too small`);
      this.pools.push({ base, bits, next: 0, size });
    }
  }

  /** The fake addresses (one per configured family) for `name`. */
  addressesFor(name: string, family: 4 | 6): Buffer[] {
    const pool = this.pools.find((p) => p.base.length === (family === 4 ? 4 : 16));
    if (!pool) return [];
    const known = this.byName.get(name)?.find((a) => (family === 4) === !a.includes(':'));
    if (known) return [Buffer.from(parseIP(known))];
    const index = pool.next;
    pool.next = (pool.next + 1) % pool.size;
    const addr = Buffer.from(pool.base);
    // base + index + 1, added from the last byte up.
    let carry = index + 1;
    for (let i = addr.length - 1; i >= 0 && carry > 0; i--) {
      const v = addr[i]! + (carry % 256);
      addr[i] = v & 0xff;
      carry = Math.floor(carry / 256) + (v >> 8);
    }
    const text = formatIP(addr);
    const previousName = this.byAddress.get(text);
    if (previousName !== undefined) {
      const list = this.byName.get(previousName)?.filter((a) => a !== text) ?? [];
      if (list.length) this.byName.set(previousName, list); else this.byName.delete(previousName);
    }
    this.byAddress.set(text, name);
    this.byName.set(name, [...(this.byName.get(name) ?? []), text]);
    return [addr];
  }

  /** The host name behind a fake address, if it is one. */
  nameOf(address: string): string | undefined {
    return this.byAddress.get(address);
  }

  get size(): number {
    return this.byAddress.size;
  }
}
