// DNS messages (RFC 1035), as much as a resolver in the middle needs: the first question of a
// query, and an answer to it carrying addresses. Names are taken only when they are host names
// (hostname.ts): a label may hold any byte, CR LF included, and the name may be handed on.
import { u16, put16, put32 } from './bytes.js';
import { isHostLabel, isHostName } from './hostname.js';

export const TYPE_A = 1;
export const TYPE_AAAA = 28;
export const CLASS_IN = 1;
/** The server could not answer (say, no address left to give): the client may try again later. */
export const RCODE_SERVFAIL = 2;

const HEADER = 12;
const QR = 0x8000;
const OPCODE = 0x7800;
const MAX_LABEL = 63;
/** A compression pointer to offset 12: the name of the first question. */
const POINTER_TO_QUESTION = 0xc000 | HEADER;

export interface DnsQuestion {
  id: number;
  /** Lower-cased, without the final dot. */
  name: string;
  type: number;
  klass: number;
  /** Offset just past the question (where answers start). */
  end: number;
}

/**
 * Reads the first question of a standard query (QR clear, opcode QUERY); undefined when
 * malformed, not such a query, or asking for a name that is not a host name (then the caller
 * resolves it for real, never handing the name on as text).
 */
export function parseQuery(msg: Uint8Array): DnsQuestion | undefined {
  if (msg.length < HEADER) return undefined;
  const flags = u16(msg, 2);
  if (flags & (QR | OPCODE) || u16(msg, 4) < 1) return undefined;
  const labels: string[] = [];
  let off = HEADER;
  for (;;) {
    if (off >= msg.length) return undefined;
    const len = msg[off]!;
    if (len === 0) { off++; break; }
    // Above 63 are compression pointers and reserved types: a question's name has neither.
    if (len > MAX_LABEL || off + 1 + len > msg.length) return undefined;
    const label = Buffer.from(msg.buffer, msg.byteOffset + off + 1, len).toString('latin1');
    // Checked alone, before joining: a label may hold a '.' byte, which the joined text would
    // read as two labels (or a final dot) of another name.
    if (!isHostLabel(label)) return undefined;
    labels.push(label);
    off += 1 + len;
  }
  if (off + 4 > msg.length) return undefined;
  const name = labels.join('.').toLowerCase();
  if (!isHostName(name)) return undefined;
  return { id: u16(msg, 0), name, type: u16(msg, off), klass: u16(msg, off + 2), end: off + 4 };
}

/**
 * The answer to `query` (whose first question `q` is) carrying `addresses` (4 or 16 bytes each,
 * A or AAAA records) with TTL `ttl`, or none with `rcode`: the question is echoed, the header's
 * ID, opcode and RD kept, QR and RA set.
 */
export function buildAnswer(query: Uint8Array, q: DnsQuestion, addresses: Uint8Array[], ttl = 1, rcode = 0): Buffer {
  let size = q.end;
  for (const a of addresses) size += 12 + a.length;
  const out = Buffer.alloc(size);
  out.set(query.subarray(0, q.end));
  out[2] = 0x80 | (out[2]! & 0x79);
  out[3] = 0x80 | (rcode & 0x0f);
  // One question, the answers, no authority or additional records.
  put16(out, 4, 1);
  put16(out, 6, addresses.length);
  put16(out, 8, 0);
  put16(out, 10, 0);
  let at = q.end;
  for (const a of addresses) {
    put16(out, at, POINTER_TO_QUESTION);
    put16(out, at + 2, a.length === 4 ? TYPE_A : TYPE_AAAA);
    put16(out, at + 4, CLASS_IN);
    put32(out, at + 6, ttl);
    put16(out, at + 10, a.length);
    out.set(a, at + 12);
    at += 12 + a.length;
  }
  return out;
}
