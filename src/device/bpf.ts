// Classic BPF programs for TUNATTACHFILTER: an array of {code, jt, jf, k} instructions,
// laid out as struct sock_filter (u16 code, u8 jt, u8 jf, u32 k) in host byte order.

export interface BpfInstruction { code: number; jt: number; jf: number; k: number }

const littleHost = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Encodes a program into a fresh, unpooled Buffer (its address stays fixed while attached). */
export function encodeBpf(program: readonly BpfInstruction[]): Buffer {
  if (program.length === 0 || program.length > 4096) throw new RangeError('a BPF program has 1 to 4096 instructions');
  const buf = Buffer.allocUnsafeSlow(program.length * 8);
  program.forEach((ins, i) => {
    const o = i * 8;
    if (littleHost) buf.writeUInt16LE(ins.code, o); else buf.writeUInt16BE(ins.code, o);
    buf[o + 2] = ins.jt;
    buf[o + 3] = ins.jf;
    if (littleHost) buf.writeUInt32LE(ins.k >>> 0, o + 4); else buf.writeUInt32BE(ins.k >>> 0, o + 4);
  });
  return buf;
}

export function decodeBpf(buf: Uint8Array): BpfInstruction[] {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const out: BpfInstruction[] = [];
  for (let o = 0; o + 8 <= b.length; o += 8) {
    out.push({
      code: littleHost ? b.readUInt16LE(o) : b.readUInt16BE(o),
      jt: b[o + 2]!, jf: b[o + 3]!,
      k: littleHost ? b.readUInt32LE(o + 4) : b.readUInt32BE(o + 4),
    });
  }
  return out;
}

/** Opcodes used to write small programs by hand. */
export const BPF = {
  LD_H_ABS: 0x28, LD_B_ABS: 0x30, LD_W_ABS: 0x20,
  JEQ_K: 0x15, JGT_K: 0x25, JSET_K: 0x45, JA: 0x05,
  RET_K: 0x06, RET_A: 0x16,
} as const;

/** One instruction, for readable programs: `bpf(BPF.LD_H_ABS, 12)`. */
export function bpf(code: number, k = 0, jt = 0, jf = 0): BpfInstruction {
  return { code, jt, jf, k };
}
