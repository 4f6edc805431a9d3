// Packet-layer benchmarks (one core, no I/O): NAT-style rewrite with incremental checksums,
// GSO split of 64 KiB TCP super-packets, GRO coalescing (on views, and on the one-buffer batch a
// device queue in offload mode uses), and the checksum loop itself. Each
// prints its rate and the ratio to a baseline measured in the same run.
import {
  Ipv4View, TcpView, buildIpv4, buildTcp, TcpFlags, gsoSplit, GroCoalescer, GsoType, sum16, fold,
  partialPseudoChecksum, transportChecksum, rewriteIpv4Flow,
} from '../src/packet/index.js';
import { BatchBuffer } from '../src/base/batch.js';
import { newSplitPlan, planSplit, splitInto } from '../src/base/gso.js';

interface Opts { durationSec?: number }

function timeLoop(seconds: number, body: () => number): { units: number; seconds: number } {
  // Warm up (let V8 optimise), then run whole rounds until the time is up.
  const warm = performance.now() + 200;
  while (performance.now() < warm) body();
  let units = 0;
  const t0 = performance.now();
  const stop = t0 + seconds * 1000;
  let now = t0;
  while (now < stop) { units += body(); now = performance.now(); }
  return { units, seconds: (now - t0) / 1000 };
}

function tcpPacket(len: number, i: number): Buffer {
  const ip = { src: `198.18.${i & 0xff}.1`, dst: '198.19.0.1' };
  return buildIpv4({ ...ip, protocol: 6, identification: i, payload: buildTcp({ srcPort: 1024 + i, dstPort: 443, seq: i * 1000, ack: 1, flags: TcpFlags.ACK, window: 100, payload: new Uint8Array(len).fill(i) }, ip) });
}

/** Rewrites src/dst address and src/dst port, keeping the IPv4 and TCP checksums valid. */
function natRewrite(v: Ipv4View, t: TcpView, pkt: Uint8Array): void {
  v.wrap(pkt);
  t.wrap(pkt, v.payloadOffset, v.payloadEnd);
  rewriteIpv4Flow(v, (v.dst ^ 0x00000101) >>> 0, (v.src ^ 0x00000101) >>> 0, t.dstPort, t.srcPort);
}

/** The same rewrite through the per-field setters (each keeps its checksums right on its own). */
function natRewriteSetters(v: Ipv4View, t: TcpView, pkt: Uint8Array): void {
  v.wrap(pkt);
  t.wrap(pkt, v.payloadOffset, v.payloadEnd);
  const newSrc = (v.dst ^ 0x00000101) >>> 0;
  const newDst = (v.src ^ 0x00000101) >>> 0;
  const oldSrc = v.setSrc(newSrc);
  const oldDst = v.setDst(newDst);
  t.adjustForAddress(oldSrc, newSrc);
  t.adjustForAddress(oldDst, newDst);
  const sp = t.srcPort;
  t.srcPort = t.dstPort;
  t.dstPort = sp;
}

export async function run(opts: Opts = {}): Promise<void> {
  const secs = Math.min(opts.durationSec ?? 2, 3);
  console.log('packet layer (one core, in memory)');

  // 1. Parse + rewrite 4 fields + incremental checksum.
  const sizes = [64, 576, 1500];
  const pkts = Array.from({ length: 256 }, (_, i) => tcpPacket(sizes[i % 3]! - 40, i));
  const v = new Ipv4View(); const t = new TcpView();
  const inc = timeLoop(secs, () => { for (const p of pkts) natRewrite(v, t, p); return pkts.length; });
  const setters = timeLoop(secs, () => { for (const p of pkts) natRewriteSetters(v, t, p); return pkts.length; });
  // Baseline: the same rewrite with both checksums recomputed from scratch.
  const full = timeLoop(secs, () => {
    for (const p of pkts) {
      v.wrap(p); t.wrap(p, v.payloadOffset, v.payloadEnd);
      const s = v.src; const d = v.dst;
      p.writeUInt32BE(d, 12); p.writeUInt32BE(s, 16);
      const sp = t.srcPort; p.writeUInt16BE(t.dstPort, 20); p.writeUInt16BE(sp, 22);
      v.fillChecksum();
      p[36] = 0; p[37] = 0;
      const c = transportChecksum(p, 0, 20, v.payloadEnd, 6);
      p[36] = c >> 8; p[37] = c & 0xff;
    }
    return pkts.length;
  });
  for (const p of pkts) { v.wrap(p); if (!v.verifyChecksum() || transportChecksum(p, 0, 20, v.payloadEnd, 6) !== 0) throw new Error('NAT bench broke a checksum'); }
  const incMpps = inc.units / inc.seconds / 1e6;
  const fullMpps = full.units / full.seconds / 1e6;
  console.log(`  NAT rewrite (parse, 2 addresses + 2 ports, incremental csum): ${incMpps.toFixed(2)} Mpps  (target ≥ 5)`);
  console.log(`    per-field view setters (four incremental updates each):   ${(setters.units / setters.seconds / 1e6).toFixed(2)} Mpps`);
  console.log(`    baseline, full checksum recompute:                          ${fullMpps.toFixed(2)} Mpps  ratio ${(incMpps / fullMpps).toFixed(2)}x`);

  // 2. GSO split of 64 KiB TCP super-packets into 1448-byte segments.
  const payload = 65535 - 20 - 32;
  const ip = { src: '198.18.0.1', dst: '198.18.0.2' };
  const sp = buildIpv4({ ...ip, protocol: 6, dontFragment: true, payload: buildTcp({ srcPort: 1, dstPort: 2, seq: 7, ack: 9, flags: TcpFlags.ACK | TcpFlags.PSH, window: 500, options: { timestamp: [1, 2] }, payload: new Uint8Array(payload).map((_, i) => i * 13) }, ip) });
  const pc = partialPseudoChecksum(sp, 0, 6, sp.length - 20);
  sp[36] = pc >> 8; sp[37] = pc & 0xff;
  const hdr = { flags: 1, gsoType: GsoType.TCPV4, hdrLen: 52, gsoSize: 1448, csumStart: 20, csumOffset: 16 };
  const outs = Array.from({ length: 64 }, () => new Uint8Array(1600));
  const segSizes = new Uint32Array(64);
  const gso = timeLoop(secs, () => { gsoSplit(sp, hdr, outs, segSizes); return payload; });
  // Baseline: copying the same bytes into the same buffers (memcpy bound).
  const copy = timeLoop(secs, () => {
    for (let i = 0, o = 52; o < sp.length; i++, o += 1448) { outs[i]!.set(sp.subarray(0, 52)); outs[i]!.set(sp.subarray(o, Math.min(o + 1448, sp.length)), 52); }
    return payload;
  });
  const gsoGbps = gso.units * 8 / gso.seconds / 1e9;
  const copyGbps = copy.units * 8 / copy.seconds / 1e9;
  console.log(`  GSO split, 64 KiB TCP/IPv4 → 1448-byte segments:            ${gsoGbps.toFixed(1)} Gbit/s payload  (target ≥ 10)`);
  console.log(`    baseline, copy only (no header fix-up, no checksum):       ${copyGbps.toFixed(1)} Gbit/s  ratio ${(gsoGbps / copyGbps).toFixed(2)}x`);

  // 3. GRO: 45 segments of one flow back into one super-packet.
  const n = gsoSplit(sp, hdr, outs, segSizes);
  const segs = outs.slice(0, n).map((o, i) => o.subarray(0, segSizes[i]));
  const gro = new GroCoalescer();
  const groOut = new Uint8Array(GroCoalescer.outputBound(segs));
  const groVerify = timeLoop(secs, () => { gro.coalesce(segs, groOut); return payload; });
  const groNoVerify = new GroCoalescer({ verifyChecksums: false });
  const groFast = timeLoop(secs, () => { groNoVerify.coalesce(segs, groOut); return payload; });
  console.log(`  GRO coalesce, ${n} segments → 1 super-packet:                 ${(groVerify.units * 8 / groVerify.seconds / 1e9).toFixed(1)} Gbit/s with checksum verification, ${(groFast.units * 8 / groFast.seconds / 1e9).toFixed(1)} Gbit/s without`);

  // 4. The checksum loop against a one-word-at-a-time loop.
  const block = new Uint8Array(65536).map((_, i) => i * 7);
  const fast = timeLoop(secs, () => { fold(sum16(block, 0, block.length)); return block.length; });
  const naive = timeLoop(secs, () => {
    let s = 0;
    for (let i = 0; i < block.length; i += 2) s += (block[i]! << 8) | block[i + 1]!;
    fold(s);
    return block.length;
  });
  const fastGBs = fast.units / fast.seconds / 1e9;
  console.log(`  Internet checksum, 64 KiB blocks:                           ${fastGBs.toFixed(2)} GB/s  ratio ${(fastGBs / (naive.units / naive.seconds / 1e9)).toFixed(2)}x vs 16-bit loop`);

  // 5. GSO split and GRO coalesce (3.) on the batch shape a device queue uses: one buffer in, one buffer out.
  const arena = BatchBuffer.alloc(n * 1600, 64);
  const plan = planSplit(sp, hdr, 0, newSplitPlan());
  const splitBatch = timeLoop(secs, () => { arena.reset(); splitInto(sp, plan, arena, 0); return payload; });
  const batchOut = Buffer.alloc(GroCoalescer.batchOutputBound(arena));
  const groBatch = timeLoop(secs, () => { groNoVerify.coalesceBatch(arena, batchOut); return payload; });
  const groBatchVerify = timeLoop(secs, () => { gro.coalesceBatch(arena, batchOut); return payload; });
  console.log(`  the same on one batch buffer: split ${(splitBatch.units * 8 / splitBatch.seconds / 1e9).toFixed(1)} Gbit/s; ` +
    `coalesce ${(groBatchVerify.units * 8 / groBatchVerify.seconds / 1e9).toFixed(1)} Gbit/s with verification, ${(groBatch.units * 8 / groBatch.seconds / 1e9).toFixed(1)} Gbit/s without`);
}

if (import.meta.url === `file://${process.argv[1]}`) await run();
