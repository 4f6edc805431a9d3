// Offload inside the device, against the kernel: two namespaces joined by this process, which
// reads each device with offload 'split' and writes what it read to the other. Real TCP (iperf3
// and an echo of random bytes, IPv4 and IPv6) crosses it. With TSO on, the kernel hands the
// device 64 KiB super-packets: the program must see only packets that fit the MTU, each with
// valid checksums, and what it writes must reach the other kernel as fewer, coalesced packets.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { TestNet, nsSpawn, nsRun } from '../helpers/netns.js';
import { waitForOutput } from '../helpers/wait.js';
import { openTap, openTun, type PacketBatch, type TunDevice } from '../../src/device/index.js';
import {
  internetChecksum, verifyTransportChecksum, buildIpv4, buildTcp, TcpFlags, partialPseudoChecksum, encodeVnetHdr, GsoType,
} from '../../src/packet/index.js';
import { Splitter } from '../../src/device/offload.js';
import { addAddresses, clientTraffic, startEchoServers, waitFor } from '../packet/wire.js';

const net = new TestNet();
after(() => net.cleanup());

interface Seen { packets: number; tooBig: number; badChecksum: number; largest: number; tcp: number }

/** Checks every packet of a batch: at most `mtu` bytes of IP, valid IPv4 header and TCP/UDP checksums. */
function inspect(batch: PacketBatch, linkHeader: number, mtu: number, seen: Seen): void {
  for (let i = 0; i < batch.count; i++) {
    const p = batch.packet(i);
    seen.packets++;
    if (linkHeader > 0 && ((p[12]! << 8) | p[13]!) !== 0x0800 && ((p[12]! << 8) | p[13]!) !== 0x86dd) continue; // ARP
    const ip = linkHeader;
    const ipLength = p.length - ip;
    seen.largest = Math.max(seen.largest, ipLength);
    if (ipLength > mtu) seen.tooBig++;
    const version = p[ip]! >> 4;
    const l4 = version === 4 ? ip + (p[ip]! & 15) * 4 : ip + 40;
    const proto = version === 4 ? p[ip + 9]! : p[ip + 6]!;
    if (version === 4 && internetChecksum(p, ip, l4) !== 0) seen.badChecksum++;
    if (proto === 6 || proto === 17) {
      if (proto === 6) seen.tcp++;
      if (!verifyTransportChecksum(p, ip, l4, p.length, proto)) seen.badChecksum++;
    }
  }
}

/** Reads `from` until `signal` aborts, checking each batch and writing it to `to` as one batch. */
async function forward(from: TunDevice, to: TunDevice, signal: AbortSignal, linkHeader: number, mtu: number, seen: Seen): Promise<void> {
  try {
    for await (const batch of from.batches({ signal })) {
      inspect(batch, linkHeader, mtu, seen);
      await to.writePacked(batch);
    }
  } catch (e) {
    if (!signal.aborted) throw e;
  }
}

for (const mode of ['tun', 'tap'] as const) {
  test(`offload 'split' on a ${mode.toUpperCase()}: TCP arrives as MTU-sized packets with valid checksums, and is written back as super-packets`,
    { timeout: 120_000 }, async () => {
      const a = net.namespace('sa');
      const b = net.namespace('sb');
      const open = mode === 'tun' ? openTun : openTap;
      const devA = open({ netns: a, offload: 'split' });
      const devB = open({ netns: b, offload: 'split' });
      const k = mode === 'tun' ? 92 : 93;
      addAddresses(a, devA.name, `198.18.${k}.1/24`, `fd00:${k}::1/64`);
      addAddresses(b, devB.name, `198.18.${k}.2/24`, `fd00:${k}::2/64`);
      assert.equal(devA.offload, 'split');
      const mtu = devA.mtu;
      const link = mode === 'tap' ? 14 : 0;
      const fromA: Seen = { packets: 0, tooBig: 0, badChecksum: 0, largest: 0, tcp: 0 };
      const fromB: Seen = { packets: 0, tooBig: 0, badChecksum: 0, largest: 0, tcp: 0 };
      const stop = new AbortController();
      const pumps = [forward(devA, devB, stop.signal, link, mtu, fromA), forward(devB, devA, stop.signal, link, mtu, fromB)];
      const rxBefore = devB.stats().rxPackets;
      const server = nsSpawn(b, 'iperf3', ['-s', '-1', '-B', `198.18.${k}.2`, '--forceflush']);
      const echo = startEchoServers(b, `198.18.${k}.2`, `fd00:${k}::2`, 7301, 7302);
      try {
        await waitForOutput(server, 'Server listening', 'iperf3 -s');
        const r = await nsRun(a, 'iperf3', ['-c', `198.18.${k}.2`, '-t', '2', '-J'], 60_000);
        assert.equal(r.code, 0, r.stderr || r.stdout.slice(0, 500));
        const report = JSON.parse(r.stdout) as { end: { sum_received: { bytes: number } } };
        assert.ok(report.end.sum_received.bytes > 10_000_000, `iperf3 moved ${report.end.sum_received.bytes} bytes`);
        await waitFor(echo, 'ready');
        const out = await clientTraffic(a, [`198.18.${k}.2`, `fd00:${k}::2`], 7301, 7302, 2_000_000);
        assert.match(out, new RegExp(`198\\.18\\.${k}\\.2 2000000 intact`));
        assert.match(out, new RegExp(`fd00:${k}::2 2000000 intact`));
      } finally {
        stop.abort();
        await Promise.all(pumps);
      }
      const qa = devA.queues[0]!.counters;
      const qb = devB.queues[0]!.counters;
      const rxDelta = devB.stats().rxPackets - rxBefore;
      await devA.close();
      await devB.close();
      const report = JSON.stringify({ fromA, fromB, read: qa.superPacketsRead, written: qb.superPacketsWritten, coalesced: qb.packetsCoalesced, rxDelta });
      // The kernel really handed over super-packets, and the program saw none of them.
      assert.ok(qa.superPacketsRead > 50, `super-packets split: ${report}`);
      assert.equal(fromA.tooBig + fromB.tooBig, 0, `a packet larger than the MTU reached the program: ${report}`);
      assert.ok(fromA.largest <= mtu && fromA.largest > mtu - 100, `full-sized segments: ${report}`);
      assert.equal(fromA.badChecksum + fromB.badChecksum, 0, `a packet with a bad checksum reached the program: ${report}`);
      assert.equal(qa.offloadDrops + qb.offloadDrops, 0, report);
      // The writes were coalesced: the receiving kernel counted far fewer packets than were given.
      assert.ok(qb.superPacketsWritten > 50 && qb.packetsCoalesced > 10 * qb.superPacketsWritten, `coalesced writes: ${report}`);
      assert.ok(rxDelta < fromA.packets / 5, `the kernel received ${rxDelta} packets for ${fromA.packets} written: ${report}`);
      console.log(`split ${mode}: ${report}`);
    });
}

test("offload 'split' refuses packet information, and modes it does not know", () => {
  assert.throws(() => openTun({ offload: 'split', packetInfo: true }), TypeError);
  assert.throws(() => openTun({ offload: 'splitt' as 'split' }), TypeError);
});

// The split itself, on bytes laid out as a drain leaves them: what the kernel could hand over,
// and headers that lie about their packet (a program can feed a queue's buffer anything).
test('the split completes partial checksums in place, splits super-packets, drops lying headers, and continues a drain that does not fit', () => {
  const ip = { src: '198.18.94.1', dst: '198.18.94.2' };
  const tcp = (len: number, seq: number) => buildIpv4({ ...ip, protocol: 6, dontFragment: true,
    payload: buildTcp({ srcPort: 1000, dstPort: 80, seq, ack: 1, flags: TcpFlags.ACK, window: 100, payload: new Uint8Array(len).fill(seq & 0xff) }, ip) });
  const partial = (p: Buffer) => { const c = partialPseudoChecksum(p, 0, 6, p.length - 20); p[36] = c >> 8; p[37] = c & 0xff; return p; };
  const csum = { flags: 1, csumStart: 20, csumOffset: 16 };
  const superHdr = { ...csum, gsoType: GsoType.TCPV4, hdrLen: 40, gsoSize: 1400 };
  const entries: [Buffer, object][] = [
    [tcp(100, 1), {}],                                              // complete: handed out as it is
    [partial(tcp(200, 2)), csum],                                   // NEEDS_CSUM: completed in place
    [partial(tcp(50_000, 3)), superHdr],                            // split: 36 segments
    [partial(tcp(3000, 4)), { ...superHdr, csumStart: 4000 }],      // csum_start past the packet
    [partial(tcp(3000, 5)), { ...superHdr, gsoSize: 0 }],           // gso_size 0
    [partial(tcp(100, 6)), { ...csum, csumOffset: 200 }],           // checksum field past the end
    [partial(tcp(3000, 7)), { ...superHdr, gsoType: GsoType.TCPV6 }], // v6 type on a v4 packet
    [partial(tcp(50_000, 8)), superHdr],                            // does not fit beside the first: next batch
  ];
  const readArea = 200_000;
  const arena = Buffer.alloc(readArea + 60_000);
  const raw = { offsets: new Uint32Array(entries.length), lengths: new Uint32Array(entries.length) };
  let at = 0;
  entries.forEach(([p, h], i) => {
    encodeVnetHdr(h, arena, at);
    p.copy(arena, at + 10);
    raw.offsets[i] = at + 10;
    raw.lengths[i] = p.length;
    at = (at + 10 + p.length + 7) & ~7;
  });
  const counters = { superPacketsRead: 0, offloadDrops: 0 };
  const splitter = new Splitter(arena, readArea, 256, raw, { vnetHdrSize: 10, vnetLittleEndian: true, mode: 'tun' }, counters);
  splitter.load(entries.length);
  const check = (label: string) => {
    const out = splitter.next();
    const sizes: number[] = [];
    for (let i = 0; i < out.count; i++) {
      const p = arena.subarray(out.offsets[i]!, out.offsets[i]! + out.lengths[i]!);
      assert.equal(internetChecksum(p, 0, 20), 0, `${label}: packet ${i} IP checksum`);
      assert.ok(verifyTransportChecksum(p, 0, 20, p.length, 6), `${label}: packet ${i} TCP checksum`);
      assert.ok(p.length <= 1440, `${label}: packet ${i} is ${p.length} bytes`);
      sizes.push(p.length);
    }
    return sizes;
  };
  const first = check('first batch');
  assert.equal(first.length, 2 + Math.ceil(50_000 / 1400));
  assert.deepEqual(first.slice(0, 2), [140, 240]);
  assert.equal(counters.offloadDrops, 4, 'the four lying headers were counted and dropped');
  assert.ok(splitter.pending, 'the last super-packet waits for room');
  const second = check('second batch');
  assert.equal(second.length, Math.ceil(50_000 / 1400));
  assert.equal(splitter.pending, false);
  assert.equal(counters.superPacketsRead, 2);
});
