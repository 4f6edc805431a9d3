// Classic BPF (the sock_filter programs SO_ATTACH_FILTER / TUNATTACHFILTER take): instruction
// encoding, a reference interpreter (used to check compiled programs against the JS predicate
// and against tcpdump's own compiler), and text parsing of `tcpdump -ddd` output.

export interface BpfInstruction { code: number; jt: number; jf: number; k: number }

export const BPF = {
  LD: 0x00, LDX: 0x01, ST: 0x02, STX: 0x03, ALU: 0x04, JMP: 0x05, RET: 0x06, MISC: 0x07,
  W: 0x00, H: 0x08, B: 0x10,
  IMM: 0x00, ABS: 0x20, IND: 0x40, MEM: 0x60, LEN: 0x80, MSH: 0xa0,
  ADD: 0x00, SUB: 0x10, MUL: 0x20, DIV: 0x30, OR: 0x40, AND: 0x50, LSH: 0x60, RSH: 0x70, NEG: 0x80, MOD: 0x90, XOR: 0xa0,
  JA: 0x00, JEQ: 0x10, JGT: 0x20, JGE: 0x30, JSET: 0x40,
  K: 0x00, X: 0x08, A: 0x10,
  TAX: 0x00, TXA: 0x80,
} as const;

/** Packs a program as the kernel's struct sock_filter array (8 bytes each, host = little endian). */
export function encodeBpf(prog: readonly BpfInstruction[]): Buffer {
  const out = Buffer.alloc(prog.length * 8);
  prog.forEach((ins, i) => {
    out.writeUInt16LE(ins.code, i * 8);
    out[i * 8 + 2] = ins.jt; out[i * 8 + 3] = ins.jf;
    out.writeUInt32LE(ins.k >>> 0, i * 8 + 4);
  });
  return out;
}

export function decodeBpf(bytes: Uint8Array): BpfInstruction[] {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: BpfInstruction[] = [];
  for (let o = 0; o + 8 <= b.length; o += 8) out.push({ code: b.readUInt16LE(o), jt: b[o + 2]!, jf: b[o + 3]!, k: b.readUInt32LE(o + 4) });
  return out;
}

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
      case BPF.LD: case BPF.LDX: {
        const mode = code & 0xe0;
        const size = (code & 0x18) === BPF.B ? 1 : (code & 0x18) === BPF.H ? 2 : 4;
        let v: number | undefined;
        if (mode === BPF.IMM) v = k;
        else if (mode === BPF.LEN) v = len;
        else if (mode === BPF.MEM) v = M[k & 15]!;
        else if (mode === BPF.ABS) v = k >= 0xfffff000 ? 0 : ld(k, size); // ancillary: no skb metadata here
        else if (mode === BPF.IND) v = ld(X + k, size);
        else if (mode === BPF.MSH) { const b = ld(k, 1); v = b === undefined ? undefined : (b & 0xf) * 4; }
        if (v === undefined) return 0;
        if (cls === BPF.LD) A = v >>> 0; else X = v >>> 0;
        break;
      }
      case BPF.ST: M[k & 15] = A; break;
      case BPF.STX: M[k & 15] = X; break;
      case BPF.ALU: {
        const src = (code & BPF.X) ? X : k >>> 0;
        switch (code & 0xf0) {
          case BPF.ADD: A = (A + src) >>> 0; break;
          case BPF.SUB: A = (A - src) >>> 0; break;
          case BPF.MUL: A = Math.imul(A, src) >>> 0; break;
          case BPF.DIV: if (src === 0) return 0; A = Math.floor(A / src) >>> 0; break;
          case BPF.MOD: if (src === 0) return 0; A = (A % src) >>> 0; break;
          case BPF.OR: A = (A | src) >>> 0; break;
          case BPF.AND: A = (A & src) >>> 0; break;
          case BPF.XOR: A = (A ^ src) >>> 0; break;
          case BPF.LSH: A = src >= 32 ? 0 : (A << src) >>> 0; break;
          case BPF.RSH: A = src >= 32 ? 0 : A >>> src; break;
          case BPF.NEG: A = (-A) >>> 0; break;
          default: return 0;
        }
        break;
      }
      case BPF.JMP: {
        const op = code & 0xf0;
        if (op === BPF.JA) { pc += k; break; }
        const src = (code & BPF.X) ? X : k >>> 0;
        let cond: boolean;
        if (op === BPF.JEQ) cond = A === src;
        else if (op === BPF.JGT) cond = A > src;
        else if (op === BPF.JGE) cond = A >= src;
        else if (op === BPF.JSET) cond = (A & src) !== 0;
        else return 0;
        pc += cond ? jt : jf;
        break;
      }
      case BPF.RET: return ((code & 0x18) === BPF.A ? A : k) >>> 0;
      case BPF.MISC: if ((code & 0xf8) === BPF.TXA) A = X; else X = A; break;
    }
  }
  return 0;
}

/** tcpdump -d style listing, for debugging and `tuntap dump --print-bpf`. */
export function formatBpf(prog: readonly BpfInstruction[]): string {
  return prog.map((ins, i) => {
    const cls = ins.code & 7;
    const sz = (ins.code & 0x18) === BPF.B ? 'b' : (ins.code & 0x18) === BPF.H ? 'h' : '';
    const mode = ins.code & 0xe0;
    let text: string;
    if (cls === BPF.LD || cls === BPF.LDX) {
      const op = (cls === BPF.LD ? 'ld' : 'ldx') + sz;
      text = mode === BPF.IMM ? `${op} #0x${ins.k.toString(16)}` : mode === BPF.ABS ? `${op} [${ins.k}]`
        : mode === BPF.IND ? `${op} [x + ${ins.k}]` : mode === BPF.MSH ? `ldxb 4*([${ins.k}]&0xf)` : mode === BPF.LEN ? `${op} #len` : `${op} M[${ins.k}]`;
    } else if (cls === BPF.JMP) {
      const names: Record<number, string> = { 0x00: 'ja', 0x10: 'jeq', 0x20: 'jgt', 0x30: 'jge', 0x40: 'jset' };
      text = (ins.code & 0xf0) === 0 ? `ja ${i + 1 + ins.k}`
        : `${names[ins.code & 0xf0]} #0x${ins.k.toString(16)} jt ${i + 1 + ins.jt} jf ${i + 1 + ins.jf}`;
    } else if (cls === BPF.RET) text = `ret #${ins.k}`;
    else if (cls === BPF.ALU) text = `alu 0x${ins.code.toString(16)} #0x${ins.k.toString(16)}`;
    else text = `0x${ins.code.toString(16)} ${ins.jt} ${ins.jf} ${ins.k}`;
    return `(${String(i).padStart(3, '0')}) ${text}`;
  }).join('\n');
}
