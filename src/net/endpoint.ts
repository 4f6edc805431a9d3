// Endpoints (address + port) as fixed 24-byte records, the form the native core reads and writes
// so the hot path never builds per-datagram strings:
//   [0..15] address (IPv4 in bytes 0..3), [16..17] port big endian, [18] family 4|6,
//   [19] unused, [20..23] IPv6 scope id little endian.
import { formatIPv4, formatIPv6, ipFamily, writeIPv4, writeIPv6 } from '../addr.js';

export const ENDPOINT_SIZE = 24;

export interface Endpoint {
  address: string;
  port: number;
}

export interface ResolvedEndpoint extends Endpoint {
  family: 4 | 6;
}

/** Family of an address string (4 or 6), or undefined when it is not an IP address. */
export function addressFamily(address: string): 4 | 6 | undefined {
  const zone = address.indexOf('%');
  return ipFamily(zone < 0 ? address : address.slice(0, zone));
}

/** Writes the record for `address`:`port` into `out` at `offset` (a new record when omitted). */
export function encodeEndpoint(address: string, port: number, out = new Uint8Array(ENDPOINT_SIZE), offset = 0): Uint8Array {
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new RangeError(`invalid UDP port ${port}`);
  const [bare, scope] = address.split('%') as [string, string | undefined];
  out.fill(0, offset, offset + ENDPOINT_SIZE);
  if (writeIPv4(bare, out, offset)) {
    out[offset + 18] = 4;
  } else if (writeIPv6(bare, out, offset)) {
    out[offset + 18] = 6;
    if (scope !== undefined) {
      const id = Number(scope);
      if (!Number.isInteger(id) || id < 0) throw new TypeError(`IPv6 scope must be an interface index: ${address}`);
      new DataView(out.buffer, out.byteOffset).setUint32(offset + 20, id, true);
    }
  } else {
    out.fill(0, offset, offset + ENDPOINT_SIZE);
    throw new TypeError(`not an IP address: ${JSON.stringify(address)}`);
  }
  out[offset + 16] = port >> 8;
  out[offset + 17] = port & 0xff;
  return out;
}

/** Decodes the record at `offset`. */
export function decodeEndpoint(rec: Uint8Array, offset = 0): ResolvedEndpoint {
  const family = rec[offset + 18] === 6 ? 6 : 4;
  const port = (rec[offset + 16]! << 8) | rec[offset + 17]!;
  if (family === 4) {
    return { address: formatIPv4(rec, offset), port, family };
  }
  let address = formatIPv6(rec, offset);
  const scope = new DataView(rec.buffer, rec.byteOffset).getUint32(offset + 20, true);
  if (scope !== 0) address += `%${scope}`;
  return { address, port, family };
}

/**
 * A compact key for the record at `offset`: a number for IPv4 (address and port packed into 48
 * bits) and a short binary string for IPv6, so maps of peers can be keyed without formatting.
 */
export function endpointKey(rec: Uint8Array, offset = 0): number | string {
  if (rec[offset + 18] !== 6) {
    return (rec[offset]! * 2 ** 40) + (rec[offset + 1]! * 2 ** 32) + (rec[offset + 2]! * 2 ** 24)
      + (rec[offset + 3]! * 2 ** 16) + (rec[offset + 16]! << 8) + rec[offset + 17]!;
  }
  return String.fromCharCode(...rec.subarray(offset, offset + 18), ...rec.subarray(offset + 20, offset + 24));
}

/**
 * Destinations interned once and then named by a small integer id: `sendBatch` takes an id per
 * datagram, so a batch to many peers costs no per-datagram address parsing.
 */
export class EndpointTable {
  private records = new Uint8Array(ENDPOINT_SIZE * 8);
  private readonly ids = new Map<number | string, number>();
  private size = 0;

  get count(): number { return this.size; }

  /** The records of every id, back to back (what the native send reads). */
  get bytes(): Uint8Array { return this.records.subarray(0, this.size * ENDPOINT_SIZE); }

  /** The id for `address`:`port`, added on first use. */
  add(address: string, port: number): number {
    const rec = encodeEndpoint(address, port);
    return this.addRecord(rec, 0);
  }

  /** The id for a record (e.g. a received datagram's source), added on first use. */
  addRecord(rec: Uint8Array, offset = 0): number {
    const key = endpointKey(rec, offset);
    const known = this.ids.get(key);
    if (known !== undefined) return known;
    if ((this.size + 1) * ENDPOINT_SIZE > this.records.length) {
      const grown = new Uint8Array(this.records.length * 2);
      grown.set(this.records);
      this.records = grown;
    }
    this.records.set(rec.subarray(offset, offset + ENDPOINT_SIZE), this.size * ENDPOINT_SIZE);
    this.ids.set(key, this.size);
    return this.size++;
  }

  get(id: number): ResolvedEndpoint {
    if (id < 0 || id >= this.size) throw new RangeError(`no endpoint with id ${id}`);
    return decodeEndpoint(this.records, id * ENDPOINT_SIZE);
  }
}
