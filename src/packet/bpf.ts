// Classic BPF (the sock_filter programs SO_ATTACH_FILTER / TUNATTACHFILTER take): instruction
// encoding, a reference interpreter (used to check compiled programs against the JS predicate
// and against tcpdump's own compiler), and text parsing of `tcpdump -ddd` output.

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

/**
 * Runs a program over a packet as the kernel does for a socket filter: returns the accepted
 * length (0 = drop). Loads past the end of the packet end the program with 0.
 */
export function runBpf(prog: readonly BpfInstruction[], pkt: Uint8Array): number {
  let A = 0; let X = 0;
  const M = new Uint32Array(16);
  const len = pkt.length;
  const ld = (off: number, size: number): number | undefined => {
    if (off < 0 || off + size > len) return undefined;
    if (size === 1) return pkt[off]!;
    if (size === 2) return (pkt[off]! << 8) | pkt[off + 1]!;
    return ((pkt[off]! << 24) | (pkt[off + 1]! << 16) | (pkt[off + 2]! << 8) | pkt[off + 3]!) >>> 0;
  };
  for (let pc = 0; pc < prog.length; pc++) {
    const { code, jt, jf, k } = prog[pc]!;
    const cls = code & 0x07;
    switch (cls) {
      case BpfOp.LD: case BpfOp.LDX: {
        const mode = code & 0xe0;
        const size = (code & 0x18) === BpfOp.B ? 1 : (code & 0x18) === BpfOp.H ? 2 : 4;
        let v: number | undefined;
        if (mode === BpfOp.IMM) v = k;
        else if (mode === BpfOp.LEN) v = len;
        else if (mode === BpfOp.MEM) v = M[k & 15]!;
        else if (mode === BpfOp.ABS) v = k >= 0xfffff000 ? 0 : ld(k, size); // ancillary: no skb metadata here
        else if (mode === BpfOp.IND) v = ld(X + k, size);
        else if (mode === BpfOp.MSH) { const b = ld(k, 1); v = b === undefined ? undefined : (b & 0xf) * 4; }
        if (v === undefined) return 0;
        if (cls === BpfOp.LD) A = v >>> 0; else X = v >>> 0;
        break;
      }
      case BpfOp.ST: M[k & 15] = A; break;
      case BpfOp.STX: M[k & 15] = X; break;
      case BpfOp.ALU: {
        const src = (code & BpfOp.X) ? X : k >>> 0;
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
        break;
      }
      case BpfOp.JMP: {
        const op = code & 0xf0;
        if (op === BpfOp.JA) { pc += k; break; }
        const src = (code & BpfOp.X) ? X : k >>> 0;
        let cond: boolean;
        if (op === BpfOp.JEQ) cond = A === src;
        else if (op === BpfOp.JGT) cond = A > src;
        else if (op === BpfOp.JGE) cond = A >= src;
        else if (op === BpfOp.JSET) cond = (A & src) !== 0;
        else return 0;
        pc += cond ? jt : jf;
        break;
      }
      case BpfOp.RET: return ((code & 0x18) === BpfOp.A ? A : k) >>> 0;
      case BpfOp.MISC: if ((code & 0xf8) === BpfOp.TXA) A = X; else X = A; break;
    }
  }
  return 0;
}

/** tcpdump -d style listing, for debugging and `tuntap dump --print-bpf`. */
export function formatBpf(prog: readonly BpfInstruction[]): string {
  return prog.map((ins, i) => {
    const cls = ins.code & 7;
    const sz = (ins.code & 0x18) === BpfOp.B ? 'b' : (ins.code & 0x18) === BpfOp.H ? 'h' : '';
    const mode = ins.code & 0xe0;
    let text: string;
    if (cls === BpfOp.LD || cls === BpfOp.LDX) {
      const op = (cls === BpfOp.LD ? 'ld' : 'ldx') + sz;
      text = mode === BpfOp.IMM ? `${op} #0x${ins.k.toString(16)}` : mode === BpfOp.ABS ? `${op} [${ins.k}]`
        : mode === BpfOp.IND ? `${op} [x + ${ins.k}]` : mode === BpfOp.MSH ? `ldxb 4*([${ins.k}]&0xf)` : mode === BpfOp.LEN ? `${op} #len` : `${op} M[${ins.k}]`;
    } else if (cls === BpfOp.JMP) {
      const names: Record<number, string> = { 0x00: 'ja', 0x10: 'jeq', 0x20: 'jgt', 0x30: 'jge', 0x40: 'jset' };
      text = (ins.code & 0xf0) === 0 ? `ja ${i + 1 + ins.k}`
        : `${names[ins.code & 0xf0]} #0x${ins.k.toString(16)} jt ${i + 1 + ins.jt} jf ${i + 1 + ins.jf}`;
    } else if (cls === BpfOp.RET) text = `ret #${ins.k}`;
    else if (cls === BpfOp.ALU) text = `alu 0x${ins.code.toString(16)} #0x${ins.k.toString(16)}`;
    else text = `0x${ins.code.toString(16)} ${ins.jt} ${ins.jf} ${ins.k}`;
    return `(${String(i).padStart(3, '0')}) ${text}`;
  }).join('\n');
}
