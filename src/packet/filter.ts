// A subset of the pcap filter language, compiled to a JS predicate and to classic BpfOp.
//
//   expr      := term ( ('or' | '||') term )*      term := factor ( ('and' | '&&') factor )*
//   factor    := ('not' | '!') factor | '(' expr ')' | primitive
//   primitive := [proto] [src|dst] [host|net|port|portrange] id  |  proto  |  vlan [id]
//   proto     := ether | ip | ip6 | arp | tcp | udp | icmp | icmp6
//
// A bare id after and/or inherits the previous primitive's qualifiers ("host a or b"), as in pcap.
// Both back ends come from one lowered form (byte comparisons at fixed offsets, plus the IPv4
// header length for ports), so the JS predicate and the kernel program decide alike; the BpfOp
// output is also checked against libpcap's compiler in the tests.
//
// Differences from pcap: a frame with one inline 802.1Q tag is looked into by every primitive
// (pcap only does so after the `vlan` keyword), and in the kernel a tag the stack keeps out of
// line (hardware-accelerated VLAN) is tested through the ancillary VLAN fields. As in pcap,
// IPv6 upper protocols are matched on the fixed header's Next Header or right after a fragment
// header (no further extension-header walk), `port` covers TCP, UDP and SCTP, and `host`/`net`
// on IPv4 also match ARP and RARP sender/target; on raw IP (TUN) `arp`, `ether` and `vlan` never
// match (pcap refuses them there).
//
// compileFilter(expr, mode, { compiler: 'auto' }) compiles with the system's libpcap instead when
// it loads (libpcap.ts), so tcpdump's whole language is accepted; this subset is the fallback.
import { parseIPv4, parseIPv6, parseMac } from './bytes.js';
import { BpfOp, runBpf, type BpfInstruction } from './bpf.js';
import { libpcapStatus, pcapCompile } from './libpcap.js';
import { EtherType, IpProtocol } from './protocols.js';
import { TuntapError } from '../errors.js';
import { constants } from 'node:os';

export { libpcapStatus, type LibpcapStatus } from './libpcap.js';

/**
 * The longest expression either compiler takes, in bytes: libpcap's compile time grows much
 * faster than the text (a quarter of a second at this length, 15 s at four times it), and the
 * subset's tree is walked recursively.
 */
export const MAX_FILTER_LENGTH = 1024;

/** The most instructions a classic BPF program may have (the kernel's BPF_MAXINSNS). */
const MAX_PROGRAM = 4096;

export class FilterSyntaxError extends Error {
  constructor(message: string) { super(message); this.name = 'FilterSyntaxError'; }
}

type Dir = 'src' | 'dst' | 'any';
type Proto = 'ether' | 'ip' | 'ip6' | 'arp' | 'tcp' | 'udp' | 'icmp' | 'icmp6';
export type FilterNode =
  | { k: 'and' | 'or'; a: FilterNode; b: FilterNode }
  | { k: 'not'; a: FilterNode }
  | { k: 'proto'; p: Proto | 'vlan'; vid?: number }
  | { k: 'host'; proto?: Proto; dir: Dir; addr: Uint8Array; mask: Uint8Array }
  | { k: 'ether'; dir: Dir; mac: Uint8Array }
  | { k: 'port'; proto?: Proto; dir: Dir; lo: number; hi: number };

const PROTOS = new Set(['ether', 'ip', 'ip6', 'arp', 'tcp', 'udp', 'icmp', 'icmp6']);
const TYPES = new Set(['host', 'net', 'port', 'portrange']);

function tokenize(s: string): string[] {
  const out: string[] = [];
  const re = /\s*(\(|\)|&&|\|\||!|[^\s()!]+)/y;
  let m: RegExpExecArray | null;
  while (re.lastIndex < s.length && (m = re.exec(s))) {
    if (m[1] === undefined) break;
    out.push(m[1]);
  }
  if (s.slice(re.lastIndex).trim() !== '') throw new FilterSyntaxError(`cannot read "${s.slice(re.lastIndex)}"`);
  return out;
}

/** Parses a filter expression into its syntax tree; throws FilterSyntaxError. */
export function parseFilter(text: string): FilterNode | null {
  if (typeof text !== 'string') throw new TypeError('a filter expression is a string');
  if (Buffer.byteLength(text) > MAX_FILTER_LENGTH) throw new FilterSyntaxError(`the expression is longer than ${MAX_FILTER_LENGTH} bytes`);
  const toks = tokenize(text);
  if (toks.length === 0) return null;
  let i = 0;
  let last: { proto?: Proto; dir: Dir; type: string } | undefined;
  const peek = () => toks[i];
  const take = () => toks[i++];
  const expect = (t: string) => { if (take() !== t) throw new FilterSyntaxError(`expected "${t}"`); };

  const orExpr = (): FilterNode => {
    let a = andExpr();
    while (peek() === 'or' || peek() === '||') { take(); a = { k: 'or', a, b: andExpr() }; }
    return a;
  };
  const andExpr = (): FilterNode => {
    let a = factor();
    while (peek() === 'and' || peek() === '&&') { take(); a = { k: 'and', a, b: factor() }; }
    return a;
  };
  const factor = (): FilterNode => {
    const t = peek();
    if (t === undefined) throw new FilterSyntaxError('expression ends too early');
    if (t === 'not' || t === '!') { take(); return { k: 'not', a: factor() }; }
    if (t === '(') { take(); const e = orExpr(); expect(')'); return e; }
    return primitive();
  };
  const primitive = (): FilterNode => {
    let t = take()!;
    if (t === 'vlan') {
      const n = peek();
      if (n !== undefined && /^\d+$/.test(n)) { take(); const vid = Number(n); if (vid > 4095) throw new FilterSyntaxError(`VLAN id ${vid} out of range`); return { k: 'proto', p: 'vlan', vid }; }
      return { k: 'proto', p: 'vlan' };
    }
    let proto: Proto | undefined; let dir: Dir | undefined; let type: string | undefined;
    if (PROTOS.has(t)) {
      proto = t as Proto;
      const n = peek();
      if (n === undefined || !(n === 'src' || n === 'dst' || TYPES.has(n))) {
        if (proto === 'ether') throw new FilterSyntaxError('"ether" needs host/src/dst');
        return { k: 'proto', p: proto };
      }
      t = take()!;
    }
    if (t === 'src' || t === 'dst') { dir = t; t = take()!; }
    if (t !== undefined && TYPES.has(t)) { type = t; t = take()!; }
    if (t === undefined) throw new FilterSyntaxError('expression ends too early');
    if (!proto && !dir && !type) {
      if (!last) throw new FilterSyntaxError(`unexpected "${t}"`);
      ({ proto, dir, type } = last);
    }
    if (!type) type = /^\d+$/.test(t) ? 'port' : t.includes('/') ? 'net' : 'host';
    last = { proto, dir: dir ?? 'any', type };
    return leaf(proto, dir ?? 'any', type, t);
  };
  const e = orExpr();
  if (i < toks.length) throw new FilterSyntaxError(`unexpected "${toks[i]}"`);
  return e;
}

function leaf(proto: Proto | undefined, dir: Dir, type: string, id: string): FilterNode {
  if (type === 'port' || type === 'portrange') {
    if (proto && proto !== 'tcp' && proto !== 'udp') throw new FilterSyntaxError(`"${proto} ${type}" is not supported`);
    const m = type === 'port' ? /^(\d+)$/.exec(id) : /^(\d+)-(\d+)$/.exec(id);
    if (!m) throw new FilterSyntaxError(`bad ${type} "${id}"`);
    const lo = Number(m[1]); const hi = Number(m[2] ?? m[1]);
    if (lo > 65535 || hi > 65535 || lo > hi) throw new FilterSyntaxError(`bad ${type} "${id}"`);
    return { k: 'port', proto, dir, lo, hi };
  }
  if (proto === 'ether') {
    if (type !== 'host') throw new FilterSyntaxError('ether supports only host/src/dst');
    try { return { k: 'ether', dir, mac: parseMac(id) }; } catch { throw new FilterSyntaxError(`bad MAC address "${id}"`); }
  }
  if (proto === 'tcp' || proto === 'udp' || proto === 'icmp' || proto === 'icmp6') throw new FilterSyntaxError(`"${proto} ${type}" is not supported`);
  const [addrText, lenText] = id.split('/') as [string, string | undefined];
  let addr: Uint8Array;
  try { addr = addrText.includes(':') ? parseIPv6(addrText) : parseIPv4(addrText); } catch { throw new FilterSyntaxError(`bad address "${id}"`); }
  if (type === 'host' && lenText !== undefined) throw new FilterSyntaxError(`host takes an address, not "${id}" (use net)`);
  const bits = lenText === undefined ? addr.length * 8 : Number(lenText);
  if (!Number.isInteger(bits) || bits < 0 || bits > addr.length * 8) throw new FilterSyntaxError(`bad prefix length in "${id}"`);
  const mask = new Uint8Array(addr.length);
  for (let b = 0; b < bits; b++) mask[b >> 3]! |= 0x80 >> (b & 7);
  for (let b = 0; b < addr.length; b++) if ((addr[b]! & ~mask[b]!) !== 0) throw new FilterSyntaxError(`"${id}" has host bits set`);
  if (proto === 'ip6' && addr.length === 4) throw new FilterSyntaxError(`"ip6" with IPv4 address ${id}`);
  if ((proto === 'ip' || proto === 'arp') && addr.length === 16) throw new FilterSyntaxError(`"${proto}" with IPv6 address ${id}`);
  return { k: 'host', proto, dir, addr, mask };
}

// ---- lowering -------------------------------------------------------------------------------

/** Lowered condition: comparisons of loaded bytes. `ind` loads add 4*(b[hl]&0xf) (IPv4 IHL). */
export type Cond =
  | { t: 'and' | 'or'; a: Cond[] }
  | { t: 'not'; a: Cond }
  | { t: 'const'; v: boolean }
  | { t: 'cmp'; size: 1 | 2 | 4; off: number; hl?: number; mask?: number; op: 'eq' | 'gt' | 'ge' | 'set'; k: number };

export type LinkMode = 'ethernet' | 'raw';

const T: Cond = { t: 'const', v: true };
const F: Cond = { t: 'const', v: false };
const and = (...a: Cond[]): Cond => ({ t: 'and', a });
const or = (...a: Cond[]): Cond => ({ t: 'or', a });
const eq = (size: 1 | 2 | 4, off: number, k: number, mask?: number): Cond => ({ t: 'cmp', size, off, op: 'eq', k: k >>> 0, ...(mask !== undefined ? { mask: mask >>> 0 } : {}) });
const be32 = (b: Uint8Array, o: number) => ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;

const SKF_AD_VLAN_TAG = 0xfffff000 + 44;
const SKF_AD_VLAN_TAG_PRESENT = 0xfffff000 + 48;

/** Where the network header starts and how to recognise each family. */
interface Base { mode: LinkMode; l3: number; tagged: boolean }

function isIp(b: Base): Cond { return b.mode === 'raw' ? eq(1, 0, 0x40, 0xf0) : eq(2, b.l3 - 2, EtherType.IPv4); }
function isIp6(b: Base): Cond { return b.mode === 'raw' ? eq(1, 0, 0x60, 0xf0) : eq(2, b.l3 - 2, EtherType.IPv6); }
function isArp(b: Base): Cond { return b.mode === 'raw' ? F : eq(2, b.l3 - 2, EtherType.ARP); }
function isArpOrRarp(b: Base): Cond { return b.mode === 'raw' ? F : or(eq(2, b.l3 - 2, EtherType.ARP), eq(2, b.l3 - 2, EtherType.RARP)); }

/** IPv6 carrying `p`: in the fixed header's Next Header, or right after a fragment header (as pcap). */
function ip6Carries(b: Base, p: number): Cond {
  return and(isIp6(b), or(eq(1, b.l3 + 6, p), and(eq(1, b.l3 + 6, IpProtocol.IPv6Frag), eq(1, b.l3 + 40, p))));
}

function addrMatch(addr: Uint8Array, mask: Uint8Array, off: number): Cond {
  const parts: Cond[] = [];
  for (let i = 0; i < addr.length; i += 4) {
    const m = be32(mask, i);
    if (m === 0) continue;
    parts.push(eq(4, off + i, be32(addr, i), m === 0xffffffff ? undefined : m));
  }
  return parts.length === 0 ? T : parts.length === 1 ? parts[0]! : and(...parts);
}

function dirs(dir: Dir, src: Cond, dst: Cond): Cond {
  return dir === 'src' ? src : dir === 'dst' ? dst : or(src, dst);
}

function portRange(size: 2, off: number, hl: number | undefined, lo: number, hi: number): Cond {
  const base = { t: 'cmp' as const, size, off, ...(hl !== undefined ? { hl } : {}) };
  if (lo === hi) return { ...base, op: 'eq', k: lo };
  return and({ ...base, op: 'ge', k: lo }, { t: 'not', a: { ...base, op: 'gt', k: hi } });
}

function lowerNode(n: FilterNode, b: Base): Cond {
  const L = b.l3;
  switch (n.k) {
    case 'and': return and(lowerNode(n.a, b), lowerNode(n.b, b));
    case 'or': return or(lowerNode(n.a, b), lowerNode(n.b, b));
    case 'not': return { t: 'not', a: lowerNode(n.a, b) };
    case 'proto':
      switch (n.p) {
        case 'ip': return isIp(b);
        case 'ip6': return isIp6(b);
        case 'arp': return isArp(b);
        case 'icmp': return and(isIp(b), eq(1, L + 9, IpProtocol.ICMP));
        case 'icmp6': return ip6Carries(b, IpProtocol.ICMPv6);
        case 'tcp': case 'udp': {
          const p = n.p === 'tcp' ? IpProtocol.TCP : IpProtocol.UDP;
          return or(and(isIp(b), eq(1, L + 9, p)), ip6Carries(b, p));
        }
        case 'vlan':
          if (b.mode === 'raw') return F;
          if (b.tagged) return n.vid === undefined ? T : eq(2, 14, n.vid, 0xfff);
          // Untagged in the frame; in the kernel the tag may sit in skb metadata.
          return n.vid === undefined ? { t: 'not', a: eq(4, SKF_AD_VLAN_TAG_PRESENT, 0) }
            : and({ t: 'not', a: eq(4, SKF_AD_VLAN_TAG_PRESENT, 0) }, eq(4, SKF_AD_VLAN_TAG, n.vid, 0xfff));
        case 'ether': return F;
      }
      break;
    case 'ether': {
      if (b.mode === 'raw') return F;
      const at = (o: number) => and(eq(4, o + 2, be32(n.mac, 2)), eq(2, o, (n.mac[0]! << 8) | n.mac[1]!));
      return dirs(n.dir, at(6), at(0));
    }
    case 'host': {
      if (n.addr.length === 16) return and(isIp6(b), dirs(n.dir, addrMatch(n.addr, n.mask, L + 8), addrMatch(n.addr, n.mask, L + 24)));
      const ip = and(isIp(b), dirs(n.dir, addrMatch(n.addr, n.mask, L + 12), addrMatch(n.addr, n.mask, L + 16)));
      const arpAddrs = dirs(n.dir, addrMatch(n.addr, n.mask, L + 14), addrMatch(n.addr, n.mask, L + 24));
      if (n.proto === 'ip') return ip;
      if (n.proto === 'arp') return b.mode === 'raw' ? F : and(isArp(b), arpAddrs);
      return b.mode === 'raw' ? ip : or(ip, and(isArpOrRarp(b), arpAddrs));
    }
    case 'port': {
      const { TCP, UDP, SCTP } = IpProtocol;
      const protos = n.proto === 'tcp' ? [TCP] : n.proto === 'udp' ? [UDP] : [TCP, UDP, SCTP];
      const v4proto = or(...protos.map((p) => eq(1, L + 9, p)));
      const v6proto = or(...protos.map((p) => eq(1, L + 6, p)));
      const notFragment: Cond = { t: 'not', a: { t: 'cmp', size: 2, off: L + 6, op: 'set', k: 0x1fff } };
      const v4 = and(isIp(b), v4proto, notFragment,
        dirs(n.dir, portRange(2, L, L, n.lo, n.hi), portRange(2, L + 2, L, n.lo, n.hi)));
      const v6 = and(isIp6(b), v6proto, dirs(n.dir, portRange(2, L + 40, undefined, n.lo, n.hi), portRange(2, L + 42, undefined, n.lo, n.hi)));
      return or(v4, v6);
    }
  }
  return F;
}

/** Lowers a parsed filter for a link type (Ethernet looks inside one 802.1Q tag). */
export function lowerFilter(node: FilterNode | null, mode: LinkMode): Cond {
  if (!node) return T;
  if (mode === 'raw') return lowerNode(node, { mode, l3: 0, tagged: false });
  const tagged = eq(2, 12, 0x8100);
  return or(and({ t: 'not', a: tagged }, lowerNode(node, { mode, l3: 14, tagged: false })),
    and(tagged, lowerNode(node, { mode, l3: 18, tagged: true })));
}

// ---- JS predicate ---------------------------------------------------------------------------

const OUT_OF_BOUNDS = Symbol('out of bounds');
type Pred = (p: Uint8Array) => boolean;

function load(p: Uint8Array, size: number, off: number): number {
  if (off >= 0xfffff000) return 0; // ancillary data: frames in user space carry tags inline
  if (off + size > p.length) throw OUT_OF_BOUNDS;
  if (size === 1) return p[off]!;
  if (size === 2) return (p[off]! << 8) | p[off + 1]!;
  return ((p[off]! << 24) | (p[off + 1]! << 16) | (p[off + 2]! << 8) | p[off + 3]!) >>> 0;
}

function compilePred(c: Cond): Pred {
  switch (c.t) {
    case 'const': { const v = c.v; return () => v; }
    case 'not': { const f = compilePred(c.a); return (p) => !f(p); }
    case 'and': { const fs = c.a.map(compilePred); return (p) => { for (const f of fs) if (!f(p)) return false; return true; }; }
    case 'or': { const fs = c.a.map(compilePred); return (p) => { for (const f of fs) if (f(p)) return true; return false; }; }
    case 'cmp': {
      const { size, off, hl, mask, op, k } = c;
      return (p) => {
        let o = off;
        if (hl !== undefined) { if (hl >= p.length) throw OUT_OF_BOUNDS; o += (p[hl]! & 0xf) * 4; }
        let v = load(p, size, o);
        if (mask !== undefined) v = (v & mask) >>> 0;
        return op === 'eq' ? v === k : op === 'gt' ? v > k : op === 'ge' ? v >= k : (v & k) !== 0;
      };
    }
  }
}

/** Which compiler made a filter: the system's libpcap, or the subset built in here. */
export type FilterCompiler = 'libpcap' | 'subset';

/** A compiled filter: `match(frame)` in JS and `bpf` for the kernel. */
export interface CompiledFilter {
  readonly expression: string;
  readonly mode: LinkMode;
  readonly compiler: FilterCompiler;
  match(frame: Uint8Array): boolean;
  readonly bpf: BpfInstruction[];
  /**
   * Whether `bpf` can be attached to a TAP and pass there every frame `match` passes. False for
   * a libpcap program that jumps backwards (`protochain`: the kernel refuses it) or tests VLAN
   * tags (it reads them in the frame, and the kernel may hold a TAP frame's tag outside it; the
   * subset's program reads that tag through the ancillary fields).
   */
  readonly kernelSafe: boolean;
}

export interface CompileOptions {
  /** The accepted length a matching program returns (default 262144). */
  snapLength?: number;
  /**
   * 'subset' (default): the built-in compiler. 'libpcap': the system's libpcap, a TuntapError
   * if it cannot be loaded. 'auto': libpcap when it loads, else the subset.
   */
  compiler?: FilterCompiler | 'auto';
}

const TPIDS = new Set([0x8100, 0x88a8, 0x9100]);

/** A libpcap program the kernel would refuse (a backward jump) or misjudge (a VLAN tag test). */
function kernelSafe(program: readonly BpfInstruction[]): boolean {
  return !program.some((ins) => (ins.code & 0x07) === BpfOp.JMP
    && ((ins.code & 0xf0) === BpfOp.JA ? (ins.k | 0) < 0 : TPIDS.has(ins.k)));
}

export function compileFilter(expression: string, mode: LinkMode, options: CompileOptions = {}): CompiledFilter {
  const snapLength = options.snapLength ?? 262144;
  const which = options.compiler ?? 'subset';
  if (which === 'libpcap' || (which === 'auto' && libpcapStatus().available)) return compileWithLibpcap(expression, mode, snapLength);
  const cond = lowerFilter(parseFilter(expression), mode);
  const pred = compilePred(cond);
  const bpf = toBpf(cond, snapLength);
  if (bpf.length > MAX_PROGRAM) throw new FilterSyntaxError(`the filter compiles to ${bpf.length} instructions; the kernel takes at most ${MAX_PROGRAM}`);
  return {
    expression, mode, compiler: 'subset', bpf, kernelSafe: true,
    match(frame: Uint8Array): boolean {
      try { return pred(frame); } catch (e) { if (e === OUT_OF_BOUNDS) return false; throw e; }
    },
  };
}

function compileWithLibpcap(expression: string, mode: LinkMode, snapLength: number): CompiledFilter {
  if (typeof expression !== 'string') throw new TypeError('a filter expression is a string');
  const status = libpcapStatus();
  if (!status.available) {
    throw new TuntapError('dlopen', constants.errno.ENOENT, `compiling a filter with libpcap: libpcap could not be loaded (${status.reason})`);
  }
  if (Buffer.byteLength(expression) > MAX_FILTER_LENGTH) throw new FilterSyntaxError(`the expression is longer than ${MAX_FILTER_LENGTH} bytes`);
  if (expression.includes('\0')) throw new FilterSyntaxError('the expression contains a NUL character');
  const r = pcapCompile(expression, mode, snapLength);
  if ('error' in r) throw new FilterSyntaxError(r.error);
  const bpf = r.program;
  if (bpf.length > MAX_PROGRAM) throw new FilterSyntaxError(`the filter compiles to ${bpf.length} instructions; the kernel takes at most ${MAX_PROGRAM}`);
  return {
    expression, mode, compiler: 'libpcap', bpf, kernelSafe: kernelSafe(bpf),
    match: (frame: Uint8Array) => runBpf(bpf, frame) > 0,
  };
}

// ---- classic BpfOp ----------------------------------------------------------------------------

interface Pending { code: number; k: number; jt?: number; jf?: number; ja?: number }

/** Compiles a lowered condition: jumps resolved forward; fails if a jump exceeds 255 steps. */
export function toBpf(cond: Cond, snapLength = 262144): BpfInstruction[] {
  const code: (Pending | { label: number })[] = [];
  let labels = 0;
  const newLabel = () => labels++;
  const TRUE = newLabel(); const FALSE = newLabel();

  const gen = (c: Cond, t: number, f: number): void => {
    switch (c.t) {
      case 'const': code.push({ code: BpfOp.JMP | BpfOp.JA, k: 0, ja: c.v ? t : f }); return;
      case 'not': gen(c.a, f, t); return;
      case 'and': case 'or': {
        c.a.forEach((x, i) => {
          if (i === c.a.length - 1) { gen(x, t, f); return; }
          const next = newLabel();
          if (c.t === 'and') gen(x, next, f); else gen(x, t, next);
          code.push({ label: next });
        });
        if (c.a.length === 0) code.push({ code: BpfOp.JMP | BpfOp.JA, k: 0, ja: c.t === 'and' ? t : f });
        return;
      }
      case 'cmp': {
        const sz = c.size === 1 ? BpfOp.B : c.size === 2 ? BpfOp.H : BpfOp.W;
        if (c.hl !== undefined) {
          code.push({ code: BpfOp.LDX | BpfOp.B | BpfOp.MSH, k: c.hl });
          code.push({ code: BpfOp.LD | sz | BpfOp.IND, k: c.off });
        } else code.push({ code: BpfOp.LD | sz | BpfOp.ABS, k: c.off });
        if (c.mask !== undefined) code.push({ code: BpfOp.ALU | BpfOp.AND | BpfOp.K, k: c.mask });
        const op = c.op === 'eq' ? BpfOp.JEQ : c.op === 'gt' ? BpfOp.JGT : c.op === 'ge' ? BpfOp.JGE : BpfOp.JSET;
        code.push({ code: BpfOp.JMP | op | BpfOp.K, k: c.k, jt: t, jf: f });
      }
    }
  };
  gen(cond, TRUE, FALSE);
  code.push({ label: TRUE }, { code: BpfOp.RET | BpfOp.K, k: snapLength }, { label: FALSE }, { code: BpfOp.RET | BpfOp.K, k: 0 });

  // Drop unconditional jumps to the very next instruction, then resolve labels.
  const where = new Map<number, number>();
  const flat: Pending[] = [];
  const labelAt = (idx: number): number[] => { const out: number[] = []; for (let j = idx; j < code.length && 'label' in code[j]!; j++) out.push((code[j] as { label: number }).label); return out; };
  for (let i = 0; i < code.length; i++) {
    const x = code[i]!;
    if ('label' in x) { where.set(x.label, flat.length); continue; }
    if (x.ja !== undefined && labelAt(i + 1).includes(x.ja)) continue;
    flat.push(x);
  }
  return flat.map((x, i) => {
    const rel = (label: number) => {
      const d = where.get(label)! - i - 1;
      if (d < 0) throw new Error('internal: backward jump');
      return d;
    };
    if (x.ja !== undefined) return { code: x.code, jt: 0, jf: 0, k: rel(x.ja) };
    if (x.jt !== undefined) {
      const jt = rel(x.jt); const jf = rel(x.jf!);
      if (jt > 255 || jf > 255) throw new FilterSyntaxError('filter too large for classic BpfOp (a jump spans more than 255 instructions)');
      return { code: x.code, jt, jf, k: x.k >>> 0 };
    }
    return { code: x.code, jt: 0, jf: 0, k: x.k >>> 0 };
  });
}
