// Capture files: classic pcap (writer and reader) and pcapng (writer). Writers hand finished
// byte chunks to a sink, so they can write to a file, a socket or memory; `openPcapFile` is the
// file convenience that buffers records and writes them in large chunks.
import { openSync, writeSync, closeSync, readFileSync } from 'node:fs';
import { PacketParseError, need } from './errors.js';

export const LinkType = { ETHERNET: 1, RAW: 101 } as const;

const PCAP_MAGIC_NS = 0xa1b23c4d;
const PCAP_MAGIC_US = 0xa1b2c3d4;

export type Sink = (chunk: Uint8Array) => void;

export interface CaptureWriter {
  /** Appends one packet; `timeNs` defaults to now (wall clock). */
  write(packet: Uint8Array, timeNs?: bigint, originalLength?: number): void;
  /** Flushes buffered records to the sink. */
  flush(): void;
  close(): void;
}

function nowNs(): bigint {
  return BigInt(Date.now()) * 1_000_000n + (process.hrtime.bigint() % 1_000_000n);
}

/** Buffers chunks and passes them to the sink in blocks of at least `blockSize` bytes. */
class Buffered {
  private buf: Buffer;
  private used = 0;
  constructor(private readonly sink: Sink, blockSize: number) { this.buf = Buffer.alloc(blockSize); }
  reserve(n: number): { b: Buffer; o: number } {
    if (this.used + n > this.buf.length) {
      this.flush();
      if (n > this.buf.length) this.buf = Buffer.alloc(n);
    }
    const o = this.used;
    this.used += n;
    return { b: this.buf, o };
  }
  flush(): void {
    if (this.used === 0) return;
    this.sink(Buffer.from(this.buf.subarray(0, this.used)));
    this.used = 0;
  }
}

export interface PcapWriterOptions {
  linkType: number;
  snapLength?: number;
  /** Nanosecond timestamps (magic a1b23c4d, default) or microsecond (a1b2c3d4). */
  nanoseconds?: boolean;
  /** Bytes buffered before the sink is called (default 64 KiB; 0 = call per record). */
  blockSize?: number;
}

/** Classic pcap (little-endian, as written on x86). */
export class PcapWriter implements CaptureWriter {
  private readonly out: Buffered;
  private readonly snap: number;
  private readonly ns: boolean;
  constructor(private readonly sink: Sink, opts: PcapWriterOptions) {
    this.snap = opts.snapLength ?? 262144;
    this.ns = opts.nanoseconds ?? true;
    this.out = new Buffered(sink, opts.blockSize ?? 65536);
    const { b, o } = this.out.reserve(24);
    b.writeUInt32LE(this.ns ? PCAP_MAGIC_NS : PCAP_MAGIC_US, o);
    b.writeUInt16LE(2, o + 4); b.writeUInt16LE(4, o + 6);
    b.writeInt32LE(0, o + 8); b.writeUInt32LE(0, o + 12);
    b.writeUInt32LE(this.snap, o + 16); b.writeUInt32LE(opts.linkType, o + 20);
    if (opts.blockSize === 0) this.out.flush();
  }

  write(packet: Uint8Array, timeNs: bigint = nowNs(), originalLength = packet.length): void {
    const cap = Math.min(packet.length, this.snap);
    const { b, o } = this.out.reserve(16 + cap);
    const sec = timeNs / 1_000_000_000n;
    const frac = timeNs % 1_000_000_000n;
    b.writeUInt32LE(Number(sec & 0xffffffffn), o);
    b.writeUInt32LE(Number(this.ns ? frac : frac / 1000n), o + 4);
    b.writeUInt32LE(cap, o + 8);
    b.writeUInt32LE(originalLength, o + 12);
    b.set(packet.subarray(0, cap), o + 16);
  }

  flush(): void { this.out.flush(); }
  close(): void { this.out.flush(); }
}

export interface PcapngWriterOptions extends Omit<PcapWriterOptions, 'nanoseconds'> {
  /** Interface name recorded in the interface description block. */
  interfaceName?: string;
}

/** pcapng with one section and one interface; timestamps in nanoseconds (if_tsresol = 9). */
export class PcapngWriter implements CaptureWriter {
  private readonly out: Buffered;
  private readonly snap: number;
  constructor(private readonly sink: Sink, opts: PcapngWriterOptions) {
    this.snap = opts.snapLength ?? 262144;
    this.out = new Buffered(sink, opts.blockSize ?? 65536);
    // Section header block.
    let { b, o } = this.out.reserve(28);
    b.writeUInt32LE(0x0a0d0d0a, o); b.writeUInt32LE(28, o + 4); b.writeUInt32LE(0x1a2b3c4d, o + 8);
    b.writeUInt16LE(1, o + 12); b.writeUInt16LE(0, o + 14);
    b.writeBigInt64LE(-1n, o + 16); b.writeUInt32LE(28, o + 24);
    // Interface description block with if_name (2) and if_tsresol (9).
    const name = Buffer.from(opts.interfaceName ?? '');
    const nameOpt = name.length ? 4 + ((name.length + 3) & ~3) : 0;
    const len = 20 + nameOpt + 8 + 4 + 4;
    ({ b, o } = this.out.reserve(len));
    b.fill(0, o, o + len);
    b.writeUInt32LE(1, o); b.writeUInt32LE(len, o + 4);
    b.writeUInt16LE(opts.linkType, o + 8); b.writeUInt32LE(this.snap, o + 12);
    let p = o + 16;
    if (name.length) { b.writeUInt16LE(2, p); b.writeUInt16LE(name.length, p + 2); name.copy(b, p + 4); p += nameOpt; }
    b.writeUInt16LE(9, p); b.writeUInt16LE(1, p + 2); b[p + 4] = 9; p += 8;
    b.writeUInt32LE(0, p); // opt_endofopt
    b.writeUInt32LE(len, o + len - 4);
    if (opts.blockSize === 0) this.out.flush();
  }

  write(packet: Uint8Array, timeNs: bigint = nowNs(), originalLength = packet.length): void {
    const cap = Math.min(packet.length, this.snap);
    const len = 32 + ((cap + 3) & ~3);
    const { b, o } = this.out.reserve(len);
    b.writeUInt32LE(6, o); b.writeUInt32LE(len, o + 4); b.writeUInt32LE(0, o + 8);
    b.writeUInt32LE(Number((timeNs >> 32n) & 0xffffffffn), o + 12);
    b.writeUInt32LE(Number(timeNs & 0xffffffffn), o + 16);
    b.writeUInt32LE(cap, o + 20); b.writeUInt32LE(originalLength, o + 24);
    b.set(packet.subarray(0, cap), o + 28);
    b.fill(0, o + 28 + cap, o + len - 4);
    b.writeUInt32LE(len, o + len - 4);
  }

  flush(): void { this.out.flush(); }
  close(): void { this.out.flush(); }
}

/** Opens `path` for writing a capture ('pcapng' when the name ends in .pcapng unless told). */
export function openCaptureFile(path: string, opts: PcapngWriterOptions & { format?: 'pcap' | 'pcapng' }): CaptureWriter {
  const fd = openSync(path, 'w');
  const sink: Sink = (chunk) => { let o = 0; while (o < chunk.length) o += writeSync(fd, chunk, o); };
  const format = opts.format ?? (path.endsWith('.pcapng') ? 'pcapng' : 'pcap');
  const w = format === 'pcapng' ? new PcapngWriter(sink, opts) : new PcapWriter(sink, opts);
  let closed = false;
  return {
    write: (p, t, l) => w.write(p, t, l),
    flush: () => w.flush(),
    close: () => { if (closed) return; closed = true; w.close(); closeSync(fd); },
  };
}

export interface PcapRecord { timeNs: bigint; originalLength: number; data: Uint8Array }
export interface PcapFile { linkType: number; snapLength: number; nanoseconds: boolean; records: PcapRecord[] }

/** Reads a classic pcap file (either byte order, µs or ns); records are views into `bytes`. */
export function readPcap(bytes: Uint8Array): PcapFile {
  need('pcap', 0, bytes.length, 24, 'file header');
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magicLE = dv.getUint32(0, true);
  let le: boolean; let ns: boolean;
  if (magicLE === PCAP_MAGIC_US || magicLE === PCAP_MAGIC_NS) { le = true; ns = magicLE === PCAP_MAGIC_NS; }
  else {
    const magicBE = dv.getUint32(0, false);
    if (magicBE !== PCAP_MAGIC_US && magicBE !== PCAP_MAGIC_NS) throw new PacketParseError('pcap', `unknown magic 0x${magicLE.toString(16)}`, 0);
    le = false; ns = magicBE === PCAP_MAGIC_NS;
  }
  const snapLength = dv.getUint32(16, le);
  const linkType = dv.getUint32(20, le) & 0x0fffffff;
  const records: PcapRecord[] = [];
  for (let o = 24; o < bytes.length;) {
    need('pcap', o, bytes.length, 16, 'record header');
    const sec = BigInt(dv.getUint32(o, le));
    const frac = BigInt(dv.getUint32(o + 4, le));
    const cap = dv.getUint32(o + 8, le);
    const orig = dv.getUint32(o + 12, le);
    need('pcap', o + 16, bytes.length, cap, 'record data');
    records.push({ timeNs: sec * 1_000_000_000n + (ns ? frac : frac * 1000n), originalLength: orig, data: bytes.subarray(o + 16, o + 16 + cap) });
    o += 16 + cap;
  }
  return { linkType, snapLength, nanoseconds: ns, records };
}

export function readPcapFile(path: string): PcapFile {
  return readPcap(readFileSync(path));
}
