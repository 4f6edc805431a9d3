// IPv6 (RFC 8200): fixed header plus the extension-header chain (hop-by-hop, routing, fragment,
// destination options, AH), walked once in wrap() so the upper-layer protocol and offset are known.
import { missing, parseError, problem, type ParseProblem } from './errors.js';
import { PacketView } from './view.js';
import { u16, u32, put16, put32, formatIPv6, parseIPv6, copyBytes } from './bytes.js';
import { IpProtocol } from './protocols.js';

const { HopByHop: HOP, IPv6Route: ROUTING, IPv6Frag: FRAGMENT, IPv6Opts: DEST, AH } = IpProtocol;
const MAX_EXTENSIONS = 16;

export function isIpv6Extension(nh: number): boolean {
  return nh === HOP || nh === ROUTING || nh === FRAGMENT || nh === DEST || nh === AH;
}

/** Bytes of the extension header of type `nh` at buf[o] (its length byte at o + 1 must be present). */
export function ipv6ExtensionLength(nh: number, buf: Uint8Array, o: number): number {
  return nh === FRAGMENT ? 8 : nh === AH ? (buf[o + 1]! + 2) * 4 : (buf[o + 1]! + 1) * 8;
}

/** Where the extension-header chain of an IPv6 packet leads (filled in place by walkIpv6). */
export interface Ipv6Chain {
  /** Protocol after the extension headers (59 = no next header). */
  upperProtocol: number;
  /** Offset of the upper-layer header (after extensions). */
  upperOffset: number;
  /** Offset of the fragment extension header, or -1. */
  fragmentHeaderOffset: number;
  /** Number of extension headers walked. */
  extensionCount: number;
}

/**
 * Checks the IPv6 packet at buf[off..end) and walks its extension headers into `into`; returns
 * what is wrong instead (then `into` holds partial results). No allocation on success.
 */
export function walkIpv6(buf: Uint8Array, off: number, end: number, into: Ipv6Chain): ParseProblem | undefined {
  const short = missing('ipv6', off, end, 40);
  if (short) return short;
  if (buf[off]! >> 4 !== 6) return problem('ipv6', `version is ${buf[off]! >> 4}, not 6`, off);
  const plen = u16(buf, off + 4);
  if (40 + plen > end - off) return problem('ipv6', `payload length ${plen} exceeds the ${end - off - 40} bytes present`, off);
  const stop = off + 40 + plen;
  let nh = buf[off + 6]!;
  let o = off + 40;
  let count = 0;
  let frag = -1;
  while (isIpv6Extension(nh)) {
    if (++count > MAX_EXTENSIONS) return problem('ipv6', 'too many extension headers', o);
    if (stop - o < 8) return problem('ipv6', `truncated extension header ${nh}`, o);
    const len = ipv6ExtensionLength(nh, buf, o);
    if (nh === FRAGMENT && frag < 0) frag = o;
    if (o + len > stop) return problem('ipv6', `extension header ${nh} of ${len} bytes runs past the payload`, o);
    // A non-first fragment carries no upper-layer header: stop at the fragment header.
    if (nh === FRAGMENT && (u16(buf, o + 2) & 0xfff8) !== 0) { nh = buf[o]!; o += len; break; }
    if (nh === HOP && count !== 1) return problem('ipv6', 'hop-by-hop options not first', o);
    nh = buf[o]!;
    o += len;
  }
  into.upperProtocol = nh; into.upperOffset = o; into.fragmentHeaderOffset = frag; into.extensionCount = count;
  return undefined;
}

/** Zero-copy view of an IPv6 packet; the payload ends at off + 40 + payloadLength. */
export class Ipv6View extends PacketView implements Ipv6Chain {
  upperProtocol = 0;
  upperOffset = 0;
  fragmentHeaderOffset = -1;
  extensionCount = 0;

  constructor(buf?: Uint8Array, off = 0, end = buf?.length ?? 0) {
    // Wrap here, not in super(): the fields above are only initialised once super() returns.
    super();
    if (buf) this.wrap(buf, off, end);
  }

  override wrap(buf: Uint8Array, off = 0, end = buf.length): this {
    const p = walkIpv6(buf, off, end, this);
    if (p) throw parseError(p);
    this.buf = buf; this.off = off; this.end = end;
    return this;
  }

  /** wrap() that answers false for a malformed packet instead of throwing. */
  tryWrap(buf: Uint8Array, off = 0, end = buf.length): boolean {
    if (walkIpv6(buf, off, end, this)) return false;
    this.buf = buf; this.off = off; this.end = end;
    return true;
  }

  get version(): number { return 6; }
  get trafficClass(): number { return (u16(this.buf, this.off) >> 4) & 0xff; }
  get flowLabel(): number { return u32(this.buf, this.off) & 0xfffff; }
  get payloadLength(): number { return u16(this.buf, this.off + 4); }
  set payloadLength(v: number) { put16(this.buf, this.off + 4, v); }
  /** The Next Header field of the fixed header. */
  get nextHeader(): number { return this.buf[this.off + 6]!; }
  get hopLimit(): number { return this.buf[this.off + 7]!; }
  set hopLimit(v: number) { this.buf[this.off + 7] = v; }
  get srcOffset(): number { return this.off + 8; }
  get dstOffset(): number { return this.off + 24; }
  get srcAddress(): string { return formatIPv6(this.buf, this.off + 8); }
  get dstAddress(): string { return formatIPv6(this.buf, this.off + 24); }
  get headerLength(): number { return 40; }
  get payloadOffset(): number { return this.off + 40; }
  get payloadEnd(): number { return this.off + 40 + this.payloadLength; }
  /** Upper-layer bytes (after extension headers). */
  get upperPayload(): Uint8Array { return this.buf.subarray(this.upperOffset, this.payloadEnd); }
  get isFragment(): boolean { return this.fragmentHeaderOffset >= 0; }
  /** Fragment offset in bytes (0 when not a fragment). */
  get fragmentOffset(): number { return this.isFragment ? u16(this.buf, this.fragmentHeaderOffset + 2) & 0xfff8 : 0; }
  get moreFragments(): boolean { return this.isFragment && (this.buf[this.fragmentHeaderOffset + 3]! & 1) !== 0; }
  get fragmentId(): number { return this.isFragment ? u32(this.buf, this.fragmentHeaderOffset + 4) : 0; }

  /** The extension headers in order, as {type, data} (data excludes next-header/length bytes). */
  extensions(): Ipv6Extension[] {
    const out: Ipv6Extension[] = [];
    let nh = this.nextHeader;
    let o = this.off + 40;
    while (o < this.upperOffset) {
      const len = ipv6ExtensionLength(nh, this.buf, o);
      out.push({ type: nh, data: this.buf.subarray(o + 2, o + len) });
      nh = this.buf[o]!;
      o += len;
    }
    return out;
  }
}

/** One extension header: `type` is its protocol number; `data` its bytes after the first two. */
export interface Ipv6Extension { type: number; data: Uint8Array }

/** Fragment extension header body (offset in bytes, multiple of 8). */
export function fragmentExtension(offset: number, more: boolean, id: number): Ipv6Extension {
  const data = new Uint8Array(6);
  put16(data, 0, (offset & 0xfff8) | (more ? 1 : 0));
  put32(data, 2, id);
  return { type: FRAGMENT, data };
}

/** A hop-by-hop or destination options header padded with PadN to a multiple of 8 bytes. */
export function optionsExtension(type: 0 | 60, options: Uint8Array = new Uint8Array(0)): Ipv6Extension {
  const len = (options.length + 2 + 7) & ~7;
  const data = new Uint8Array(len - 2);
  data.set(options);
  const pad = data.length - options.length;
  if (pad === 1) data[options.length] = 0; // Pad1
  else if (pad >= 2) { data[options.length] = 1; data[options.length + 1] = pad - 2; } // PadN
  return { type, data };
}

export interface Ipv6Repr {
  trafficClass?: number; flowLabel?: number;
  hopLimit?: number;
  /** Upper-layer protocol (after the extensions). */
  protocol: number;
  src: string; dst: string;
  extensions?: Ipv6Extension[];
  payload: Uint8Array;
}

function extLength(e: Ipv6Extension): number { return e.data.length + 2; }

export function ipv6Length(r: Ipv6Repr): number {
  let n = 40 + r.payload.length;
  for (const e of r.extensions ?? []) n += extLength(e);
  return n;
}

export function emitIpv6(r: Ipv6Repr, buf: Uint8Array, off = 0): number {
  const total = ipv6Length(r);
  if (total - 40 > 0xffff) throw new RangeError('IPv6 payload exceeds 65535 bytes (jumbograms are not supported)');
  const exts = r.extensions ?? [];
  put32(buf, off, (6 << 28) | ((r.trafficClass ?? 0) << 20) | ((r.flowLabel ?? 0) & 0xfffff));
  put16(buf, off + 4, total - 40);
  buf[off + 6] = exts.length ? exts[0]!.type : r.protocol;
  buf[off + 7] = r.hopLimit ?? 64;
  buf.set(parseIPv6(r.src), off + 8);
  buf.set(parseIPv6(r.dst), off + 24);
  let o = off + 40;
  exts.forEach((e, i) => {
    const len = extLength(e);
    const units = e.type === FRAGMENT ? 0 : e.type === AH ? len / 4 - 2 : len / 8 - 1;
    if (e.type === FRAGMENT ? len !== 8 : e.type === AH ? len % 4 !== 0 : len % 8 !== 0) {
      throw new RangeError(`extension header ${e.type} of ${len} bytes has an invalid length`);
    }
    buf[o] = i + 1 < exts.length ? exts[i + 1]!.type : r.protocol;
    buf[o + 1] = units;
    buf.set(e.data, o + 2);
    o += len;
  });
  buf.set(r.payload, o);
  return total;
}

export function buildIpv6(r: Ipv6Repr): Buffer {
  const out = Buffer.alloc(ipv6Length(r));
  emitIpv6(r, out);
  return out;
}

export function parseIpv6(v: Ipv6View): Ipv6Repr {
  const extensions = v.extensions().map((e) => ({ type: e.type, data: copyBytes(e.data) }));
  return {
    trafficClass: v.trafficClass, flowLabel: v.flowLabel, hopLimit: v.hopLimit,
    protocol: v.upperProtocol, src: v.srcAddress, dst: v.dstAddress,
    ...(extensions.length ? { extensions } : {}),
    payload: v.upperPayload,
  };
}
