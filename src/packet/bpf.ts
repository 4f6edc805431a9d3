// Classic BPF (the sock_filter programs SO_ATTACH_FILTER / TUNATTACHFILTER take): instruction
// encoding, an interpreter (user-space matching for libpcap's programs, and the reference that
// checks compiled programs against the JS predicate and against tcpdump's own compiler), the
// `tcpdump -d` listing, and parsing of `tcpdump -ddd` output.

import type { BpfInstruction } from '../device/bpf.js';
export { encodeBpf, decodeBpf, type BpfInstruction } from '../device/bpf.js';

export const BpfOp = {
  LD: 0x00, LDX: 0x01, ST: 0x02, STX: 0x03, ALU: 0x04, JMP: 0x05, RET: 0x06, MISC: 0x07,
  W: 0x00, H: 0x08, B: 0x10,
  IMM: 0x00, ABS: 0x20, IND: 0x40, MEM: 0x60, LEN: 0x80, MSH: 0xa0,
  ADD: 0x00, SUB: 0x10, MUL: 0x20, DIV: 0x30, OR: 0x40, AND: 0x50, LSH: 0x60, RSH: 0x70, NEG: 0x80, MOD: 0x90, XOR: 0xa0,
  JA: 0x00, JEQ: 0x10, JGT: 0x20, JGE: 0x30, JSET: 0x40,
  K: 0x00, X: 0x08, A: 0x10,
  TAX: 0x00, TXA: 0x80,
} as const;

/** Parses `tcpdump -ddd` output (count line, then "code jt jf k" per line). */
export function parseTcpdumpDdd(text: string): BpfInstruction[] {
  const lines = text.trim().split('\n').map((l) => l.trim()).filter(Boolean);
  const n = Number(lines[0]);
  return lines.slice(1, 1 + n).map((l) => {
    const [code, jt, jf, k] = l.split(/\s+/).map(Number) as [number, number, number, number];
    return { code, jt, jf, k: k >>> 0 };
  });
}

/** Scratch memory M[0..15] of runBpf (reused: the interpreter runs per packet). */
const scratch = new Uint32Array(16);

/** Instructions runBpf executes before it gives up on a program (only a backward jump can loop). */
const MAX_STEPS = 1 << 20;

/**
 * Runs a program over a packet as the kernel does for a socket filter: returns the accepted
 * length (0 = drop). Loads past the end of the packet end the program with 0; ancillary loads
 * (SKF_AD_*) read 0, as for a frame whose metadata is all in its bytes. Like libpcap's own
 * interpreter (and unlike the kernel, which refuses such programs) `ja` takes a signed offset,
 * because libpcap compiles `protochain` with backward jumps; a program still running after
 * 2^20 instructions drops the packet. Allocates nothing.
 */
export function runBpf(prog: readonly BpfInstruction[], pkt: Uint8Array): number {
  let A = 0; let X = 0;
  const M = scratch;
  M.fill(0);
  const len = pkt.length;
  let steps = 0;
  for (let pc = 0; pc >= 0 && pc < prog.length; pc++) {
    if (++steps > MAX_STEPS) return 0;
    const ins = prog[pc]!;
    const code = ins.code; const k = ins.k >>> 0;
    const cls = code & 0x07;
    if (cls === BpfOp.LD || cls === BpfOp.LDX) {
      const mode = code & 0xe0;
      let v: number;
      if (mode === BpfOp.IMM) v = k;
      else if (mode === BpfOp.LEN) v = len;
      else if (mode === BpfOp.MEM) v = M[k & 15]!;
      else if (mode === BpfOp.MSH) { if (k >= len) return 0; v = (pkt[k]! & 0xf) << 2; }
      else if (mode === BpfOp.ABS && k >= 0xfffff000) v = 0;
      else {
        const off = mode === BpfOp.ABS ? k : mode === BpfOp.IND ? X + k : -1;
        const size = code & 0x18;
        const n = size === BpfOp.B ? 1 : size === BpfOp.H ? 2 : 4;
        if (off < 0 || off + n > len) return 0;
        v = n === 1 ? pkt[off]! : n === 2 ? (pkt[off]! << 8) | pkt[off + 1]!
          : ((pkt[off]! << 24) | (pkt[off + 1]! << 16) | (pkt[off + 2]! << 8) | pkt[off + 3]!) >>> 0;
      }
      if (cls === BpfOp.LD) A = v; else X = v;
    } else if (cls === BpfOp.JMP) {
      const op = code & 0xf0;
      if (op === BpfOp.JA) { pc += k | 0; continue; }
      const src = (code & BpfOp.X) ? X : k;
      let cond: boolean;
      if (op === BpfOp.JEQ) cond = A === src;
      else if (op === BpfOp.JGT) cond = A > src;
      else if (op === BpfOp.JGE) cond = A >= src;
      else if (op === BpfOp.JSET) cond = (A & src) !== 0;
      else return 0;
      pc += cond ? ins.jt : ins.jf;
    } else if (cls === BpfOp.ALU) {
      const src = (code & BpfOp.X) ? X : k;
      switch (code & 0xf0) {
        case BpfOp.ADD: A = (A + src) >>> 0; break;
        case BpfOp.SUB: A = (A - src) >>> 0; break;
        case BpfOp.MUL: A = Math.imul(A, src) >>> 0; break;
        case BpfOp.DIV: if (src === 0) return 0; A = Math.floor(A / src) >>> 0; break;
        case BpfOp.MOD: if (src === 0) return 0; A = (A % src) >>> 0; break;
        case BpfOp.OR: A = (A | src) >>> 0; break;
        case BpfOp.AND: A = (A & src) >>> 0; break;
        case BpfOp.XOR: A = (A ^ src) >>> 0; break;
        case BpfOp.LSH: A = src >= 32 ? 0 : (A << src) >>> 0; break;
        case BpfOp.RSH: A = src >= 32 ? 0 : A >>> src; break;
        case BpfOp.NEG: A = (-A) >>> 0; break;
        default: return 0;
      }
    } else if (cls === BpfOp.RET) return ((code & 0x18) === BpfOp.A ? A : k) >>> 0;
    else if (cls === BpfOp.ST) M[k & 15] = A;
    else if (cls === BpfOp.STX) M[k & 15] = X;
    else if ((code & 0xf8) === BpfOp.TXA) A = X;
    else X = A;
  }
  return 0;
}

const ALU_NAMES: Record<number, [string, 'dec' | 'hex']> = {
  [BpfOp.ADD]: ['add', 'dec'], [BpfOp.SUB]: ['sub', 'dec'], [BpfOp.MUL]: ['mul', 'dec'], [BpfOp.DIV]: ['div', 'dec'],
  [BpfOp.MOD]: ['mod', 'dec'], [BpfOp.AND]: ['and', 'hex'], [BpfOp.OR]: ['or', 'hex'], [BpfOp.XOR]: ['xor', 'hex'],
  [BpfOp.LSH]: ['lsh', 'dec'], [BpfOp.RSH]: ['rsh', 'dec'],
};
const JUMP_NAMES: Record<number, string> = { [BpfOp.JEQ]: 'jeq', [BpfOp.JGT]: 'jgt', [BpfOp.JGE]: 'jge', [BpfOp.JSET]: 'jset' };
const SIZE_SUFFIX: Record<number, string> = { [BpfOp.W]: '', [BpfOp.H]: 'h', [BpfOp.B]: 'b' };

/** One instruction as [mnemonic, operand, jump targets or undefined], in tcpdump -d's words. */
function image(ins: BpfInstruction, i: number): [string, string, [number, number]?] {
  const { code, k } = ins;
  const hex = `#0x${k.toString(16)}`;
  switch (code & 0x07) {
    case BpfOp.LD: case BpfOp.LDX: {
      const ld = (code & 0x07) === BpfOp.LD;
      const mode = code & 0xe0;
      const op = (ld ? 'ld' : 'ldx') + (SIZE_SUFFIX[code & 0x18] ?? '?');
      if (mode === BpfOp.IMM) return [ld ? 'ld' : 'ldx', hex];
      if (mode === BpfOp.LEN) return [ld ? 'ld' : 'ldx', '#pktlen'];
      if (mode === BpfOp.MEM) return [ld ? 'ld' : 'ldx', `M[${k}]`];
      if (mode === BpfOp.ABS && ld) return [op, `[${k}]`];
      if (mode === BpfOp.IND && ld) return [op, `[x + ${k}]`];
      if (mode === BpfOp.MSH && !ld) return ['ldxb', `4*([${k}]&0xf)`];
      break;
    }
    case BpfOp.ST: return ['st', `M[${k}]`];
    case BpfOp.STX: return ['stx', `M[${k}]`];
    case BpfOp.RET: return ['ret', (code & 0x18) === BpfOp.A ? '' : `#${k}`];
    case BpfOp.JMP: {
      if ((code & 0xf0) === BpfOp.JA) return ['ja', String(i + 1 + (k | 0))];
      const name = JUMP_NAMES[code & 0xf0];
      if (name) return [name, code & BpfOp.X ? 'x' : hex, [i + 1 + ins.jt, i + 1 + ins.jf]];
      break;
    }
    case BpfOp.ALU: {
      if ((code & 0xf0) === BpfOp.NEG) return ['neg', ''];
      const alu = ALU_NAMES[code & 0xf0];
      if (alu) return [alu[0], code & BpfOp.X ? 'x' : alu[1] === 'hex' ? hex : `#${k}`];
      break;
    }
    case BpfOp.MISC: return [(code & 0xf8) === BpfOp.TXA ? 'txa' : 'tax', ''];
  }
  return ['unimp', `0x${code.toString(16)}`];
}

/** The listing `tcpdump -d` prints, line for line (for `tuntap dump -d` and test messages). */
export function formatBpf(prog: readonly BpfInstruction[]): string {
  return prog.map((ins, i) => {
    const [op, operand, jumps] = image(ins, i);
    const head = `(${String(i).padStart(3, '0')}) ${op.padEnd(8)} `;
    return jumps ? `${head}${operand.padEnd(16)} jt ${jumps[0]}\tjf ${jumps[1]}` : head + operand;
  }).join('\n');
}
