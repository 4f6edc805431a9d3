// ICMPv6 (RFC 4443) and Neighbor Discovery (RFC 4861): router/neighbour solicitation and
// advertisement with their options (link-layer address, prefix information, MTU, ...).
import { PacketParseError, need } from './errors.js';
import { IcmpHeaderView } from './view.js';
import { u16, u32, put16, put32, formatIPv6, parseIPv6, formatMac, copyBytes } from './bytes.js';
import { finish, sum16 } from './checksum.js';
import { pseudoChecksum, type IpContext } from './pseudo.js';
import { IpProtocol } from './protocols.js';

export const Icmpv6Type = {
  DestinationUnreachable: 1, PacketTooBig: 2, TimeExceeded: 3, ParameterProblem: 4,
  EchoRequest: 128, EchoReply: 129,
  RouterSolicitation: 133, RouterAdvertisement: 134, NeighborSolicitation: 135, NeighborAdvertisement: 136, Redirect: 137,
} as const;

export const NdOptionType = { SourceLinkLayer: 1, TargetLinkLayer: 2, PrefixInformation: 3, RedirectedHeader: 4, Mtu: 5 } as const;

/** Bytes of message body before the ND options, per ND type. */
function ndFixedLength(type: number): number {
  switch (type) {
    case 133: return 8;   // RS: header + reserved
    case 134: return 16;  // RA: header + hop limit/flags/lifetime + reachable + retrans
    case 135: case 136: return 24; // NS/NA: header + reserved/flags + target
    case 137: return 40;  // redirect: header + reserved + target + destination
    default: return -1;
  }
}

export class Icmpv6View extends IcmpHeaderView {
  /** Checks the header and, for ND messages, the fixed part and every option's length. */
  override wrap(buf: Uint8Array, off = 0, end = buf.length): this {
    need('icmpv6', off, end, 4);
    const fixed = ndFixedLength(buf[off]!);
    if (fixed > 0) {
      need('icmpv6', off, end, fixed, 'neighbour discovery message');
      for (let o = off + fixed; o < end;) {
        if (end - o < 2) throw new PacketParseError('icmpv6', 'truncated ND option', o);
        const len = buf[o + 1]! * 8;
        if (len === 0) throw new PacketParseError('icmpv6', 'ND option with length 0', o);
        if (o + len > end) throw new PacketParseError('icmpv6', `ND option ${buf[o]} runs past the message`, o);
        o += len;
      }
    } else if (buf[off]! === 128 || buf[off]! === 129) {
      need('icmpv6', off, end, 8, 'echo header');
    }
    this.buf = buf; this.off = off; this.end = end;
    return this;
  }

  get body(): Uint8Array { return this.buf.subarray(this.off + 4, this.end); }
  get isNeighborDiscovery(): boolean { return ndFixedLength(this.type) > 0; }
  /** NS/NA/redirect target address. */
  get targetAddress(): string { return formatIPv6(this.buf, this.off + 8); }
  /** NA flags: router, solicited, override. */
  get naRouter(): boolean { return (this.buf[this.off + 4]! & 0x80) !== 0; }
  get naSolicited(): boolean { return (this.buf[this.off + 4]! & 0x40) !== 0; }
  get naOverride(): boolean { return (this.buf[this.off + 4]! & 0x20) !== 0; }
  /** RA fields. */
  get raHopLimit(): number { return this.buf[this.off + 4]!; }
  get raFlags(): number { return this.buf[this.off + 5]!; }
  get raRouterLifetime(): number { return u16(this.buf, this.off + 6); }
  get raReachableTime(): number { return u32(this.buf, this.off + 8); }
  get raRetransTimer(): number { return u32(this.buf, this.off + 12); }

  /** ND options as {type, data} (data excludes type/length bytes). */
  ndOptions(): NdOption[] {
    const out: NdOption[] = [];
    const fixed = ndFixedLength(this.type);
    if (fixed < 0) return out;
    for (let o = this.off + fixed; o < this.end; o += this.buf[o + 1]! * 8) {
      out.push({ type: this.buf[o]!, data: this.buf.subarray(o + 2, o + this.buf[o + 1]! * 8) });
    }
    return out;
  }

  /** Source or target link-layer address option, formatted, if present. */
  linkLayerAddress(type: 1 | 2): string | undefined {
    const opt = this.ndOptions().find((o) => o.type === type);
    return opt && opt.data.length >= 6 ? formatMac(opt.data, 0) : undefined;
  }

  verifyChecksum(ipBuf: Uint8Array, ipOff: number): boolean {
    return verifyWithIp(this.buf, ipBuf, ipOff, this.off, this.end);
  }
}

function verifyWithIp(buf: Uint8Array, ipBuf: Uint8Array, ipOff: number, off: number, end: number): boolean {
  const len = end - off;
  const pseudo = sum16(ipBuf, ipOff + 8, ipOff + 40, IpProtocol.ICMPv6 + (len >>> 16) + (len & 0xffff));
  return finish(sum16(buf, off, end, pseudo)) === 0;
}

export interface NdOption { type: number; data: Uint8Array }

/** A link-layer address option (type 1 source, 2 target) for Ethernet. */
export function linkLayerOption(type: 1 | 2, mac: Uint8Array): NdOption {
  return { type, data: Uint8Array.from(mac.subarray(0, 6)) };
}

/** Prefix information option (RFC 4861 §4.6.2). */
export function prefixOption(prefix: string, length: number, opts: { onLink?: boolean; autonomous?: boolean; valid?: number; preferred?: number } = {}): NdOption {
  const data = new Uint8Array(30);
  data[0] = length;
  data[1] = (opts.onLink ?? true ? 0x80 : 0) | (opts.autonomous ?? true ? 0x40 : 0);
  put32(data, 2, opts.valid ?? 86400);
  put32(data, 6, opts.preferred ?? 14400);
  data.set(parseIPv6(prefix), 14);
  return { type: 3, data };
}

export function mtuOption(mtu: number): NdOption {
  const data = new Uint8Array(6);
  put32(data, 2, mtu);
  return { type: 5, data };
}

export interface Icmpv6Repr {
  type: number; code: number;
  /** Everything after the 4-byte header (for echo: id, sequence, data). */
  body: Uint8Array;
  /** Computed from `ip` when omitted (0 without `ip`). */
  checksum?: number;
}

export function emitIcmpv6(r: Icmpv6Repr, buf: Uint8Array, off = 0, ip?: IpContext): number {
  const len = 4 + r.body.length;
  buf[off] = r.type; buf[off + 1] = r.code;
  put16(buf, off + 2, 0);
  buf.set(r.body, off + 4);
  put16(buf, off + 2, r.checksum ?? (ip ? pseudoChecksum(ip, IpProtocol.ICMPv6, buf, off, len) : 0));
  return len;
}

export function buildIcmpv6(r: Icmpv6Repr, ip?: IpContext): Buffer {
  const out = Buffer.alloc(4 + r.body.length);
  emitIcmpv6(r, out, 0, ip);
  return out;
}

export function parseIcmpv6(v: Icmpv6View): Icmpv6Repr {
  return { type: v.type, code: v.code, body: v.body, checksum: v.checksum };
}

/** Echo request/reply body. */
export function echoBody(identifier: number, sequence: number, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  const body = new Uint8Array(4 + data.length);
  put16(body, 0, identifier); put16(body, 2, sequence);
  body.set(data, 4);
  return body;
}

/** A neighbour-discovery message in plain form. */
export type NdRepr =
  | { kind: 'rs'; options: NdOption[] }
  | { kind: 'ra'; hopLimit: number; managed?: boolean; other?: boolean; flags?: number; routerLifetime: number; reachableTime: number; retransTimer: number; options: NdOption[] }
  | { kind: 'ns'; target: string; options: NdOption[] }
  | { kind: 'na'; router?: boolean; solicited?: boolean; override?: boolean; target: string; options: NdOption[] };

function optionsLength(opts: NdOption[]): number {
  let n = 0;
  for (const o of opts) {
    if ((o.data.length + 2) % 8 !== 0) throw new RangeError(`ND option ${o.type} must be a multiple of 8 bytes long`);
    n += o.data.length + 2;
  }
  return n;
}

/** Encodes an ND message as an ICMPv6 repr (checksum left to emitIcmpv6 with the IP context). */
export function ndToIcmpv6(nd: NdRepr): Icmpv6Repr {
  const optLen = optionsLength(nd.options);
  let type: number; let fixed: Uint8Array;
  switch (nd.kind) {
    case 'rs': type = 133; fixed = new Uint8Array(4); break;
    case 'ra':
      type = 134; fixed = new Uint8Array(12);
      fixed[0] = nd.hopLimit;
      fixed[1] = nd.flags ?? ((nd.managed ? 0x80 : 0) | (nd.other ? 0x40 : 0));
      put16(fixed, 2, nd.routerLifetime); put32(fixed, 4, nd.reachableTime); put32(fixed, 8, nd.retransTimer);
      break;
    case 'ns': type = 135; fixed = new Uint8Array(20); fixed.set(parseIPv6(nd.target), 4); break;
    case 'na':
      type = 136; fixed = new Uint8Array(20);
      fixed[0] = (nd.router ? 0x80 : 0) | (nd.solicited ? 0x40 : 0) | (nd.override ? 0x20 : 0);
      fixed.set(parseIPv6(nd.target), 4);
      break;
  }
  const body = new Uint8Array(fixed.length + optLen);
  body.set(fixed);
  let o = fixed.length;
  for (const opt of nd.options) {
    body[o] = opt.type; body[o + 1] = (opt.data.length + 2) / 8;
    body.set(opt.data, o + 2);
    o += opt.data.length + 2;
  }
  return { type, code: 0, body };
}

/** Decodes an ND message from a wrapped view; throws PacketParseError if it is not one. */
export function parseNd(v: Icmpv6View): NdRepr {
  const options = v.ndOptions().map((o) => ({ type: o.type, data: copyBytes(o.data) }));
  switch (v.type) {
    case 133: return { kind: 'rs', options };
    case 134: return { kind: 'ra', hopLimit: v.raHopLimit, flags: v.raFlags, routerLifetime: v.raRouterLifetime, reachableTime: v.raReachableTime, retransTimer: v.raRetransTimer, options };
    case 135: return { kind: 'ns', target: v.targetAddress, options };
    case 136: return { kind: 'na', router: v.naRouter, solicited: v.naSolicited, override: v.naOverride, target: v.targetAddress, options };
    default: throw new PacketParseError('icmpv6', `type ${v.type} is not a neighbour discovery message`, v.off);
  }
}
