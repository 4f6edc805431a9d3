// GSO and GRO against the kernel. Namespace A's TUN has IFF_VNET_HDR with checksum and TSO
// offload; namespace B's TUN is plain. TCP super-packets read from A are split by gsoSplit and
// written to B; B's MTU-sized replies are coalesced by GroCoalescer and written to A with the
// virtio_net_hdr the kernel expects. A TCP echo of 1.5 MB each way over IPv4 and IPv6 must come
// back intact, which needs every split and every coalesced packet to be accepted.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { TestNet, nsSpawn, nsRun } from '../helpers/netns.js';
import { openTun, type PacketBatch, type TunDevice } from '../../src/device/index.js';
import { gsoSplit, GroCoalescer, GsoType } from '../../src/packet/index.js';
import { pump, addAddresses, startEchoServers, waitFor, clientTraffic } from './wire.js';

const net = new TestNet();
after(() => net.cleanup());

/** A pump step that coalesces each batch with `gro` and writes the result raw, counting in `stats`. */
function coalesceWith(gro: GroCoalescer, stats: { in: number; out: number; merged: number }) {
  let groOut = new Uint8Array(1 << 20);
  return async (batch: PacketBatch, to: TunDevice) => {
    const pkts = Array.from({ length: batch.count }, (_, i) => batch.packet(i));
    const bound = GroCoalescer.outputBound(pkts);
    if (groOut.length < bound) groOut = new Uint8Array(bound);
    const r = gro.coalesce(pkts, groOut);
    stats.in += batch.count; stats.out += r.count; stats.merged += r.merged;
    await to.writeRanges(groOut, r.offsets, r.lengths, r.count, { raw: true });
  };
}

test('GSO split and GRO coalesce carry a TCP echo through the kernel intact', async () => {
  const a = net.namespace('oa'); const b = net.namespace('ob');
  const tunA = openTun({ netns: a, vnetHdr: true, offload: { csum: true, tso4: true, tso6: true } });
  const tunB = openTun({ netns: b });
  addAddresses(a, tunA.name, '198.18.80.1/24', 'fd00:80::1/64');
  addAddresses(b, tunB.name, '198.18.80.2/24', 'fd00:80::2/64');
  const stats = { superPackets: 0, segments: 0, v6Super: 0 };
  const outs = Array.from({ length: 64 }, () => new Uint8Array(2048));
  const sizes = new Uint32Array(64);
  const segs: Uint8Array[] = [];

  const split = async (batch: PacketBatch, to: TunDevice) => {
    segs.length = 0;
    let used = 0;
    for (let i = 0; i < batch.count; i++) {
      const vnet = batch.vnet(i)!;
      const pkt = batch.packet(i);
      const gso = (vnet.gsoType & ~GsoType.ECN) !== GsoType.NONE;
      // Output buffers are taken from a pool sized for the largest super-packet.
      const need = gso ? Math.ceil((pkt.length - vnet.hdrLen) / vnet.gsoSize) + 1 : 1;
      while (outs.length < used + need) outs.push(new Uint8Array(2048));
      const views = outs.slice(used, used + need);
      const n = gsoSplit(pkt, vnet, views, sizes);
      if (gso) { stats.superPackets++; stats.segments += n; if (pkt[0]! >> 4 === 6) stats.v6Super++; }
      for (let j = 0; j < n; j++) segs.push(views[j]!.subarray(0, sizes[j]));
      used += n;
    }
    await to.writeBatch(segs);
  };
  const groStats = { in: 0, out: 0, merged: 0 };
  const coalesce = coalesceWith(new GroCoalescer(), groStats);

  const stop = new AbortController();
  const pumps = [pump(tunA, tunB, stop.signal, split), pump(tunB, tunA, stop.signal, coalesce)];
  try {
    const server = startEchoServers(b, '198.18.80.2', 'fd00:80::2', 7101, 7102);
    await waitFor(server, 'ready');
    const out = await clientTraffic(a, ['198.18.80.2', 'fd00:80::2'], 7101, 7102, 1_500_000);
    assert.match(out, /198\.18\.80\.2 1500000 intact \d+/);
    assert.match(out, /fd00:80::2 1500000 intact \d+/);
  } finally {
    stop.abort();
    await Promise.all(pumps);
    await tunA.close(); await tunB.close();
  }
  // The offloads were really exercised, in both families.
  assert.ok(stats.superPackets > 10 && stats.segments > stats.superPackets * 2, JSON.stringify(stats));
  assert.ok(stats.v6Super > 0, JSON.stringify(stats));
  assert.ok(groStats.merged > 100 && groStats.out < groStats.in, JSON.stringify(groStats));
  console.log(`offload: ${JSON.stringify({ ...stats, gro: groStats })}`);
});

test('GRO coalesces UDP datagrams into UDP_L4 super-packets the kernel splits back for the socket', async () => {
  const a = net.namespace('ua'); const b = net.namespace('ub');
  const tunA = openTun({ netns: a, vnetHdr: true });
  const tunB = openTun({ netns: b });
  addAddresses(a, tunA.name, '198.18.81.1/24', 'fd00:81::1/64');
  addAddresses(b, tunB.name, '198.18.81.2/24', 'fd00:81::2/64');
  const stats = { in: 0, out: 0, merged: 0 };
  const stop = new AbortController();
  const coalesce = coalesceWith(new GroCoalescer({ udp: true }), stats);
  const toB = (batch: PacketBatch, to: TunDevice) => to.writeBatch(Array.from({ length: batch.count }, (_, i) => batch.packet(i)));
  const pumps = [pump(tunB, tunA, stop.signal, coalesce), pump(tunA, tunB, stop.signal, toB)];
  const COUNT = 120;
  try {
    for (const [dst, family] of [['198.18.81.1', 'udp4'], ['fd00:81::1', 'udp6']] as const) {
      const receiver = nsSpawn(a, process.execPath, ['-e', `
        const u = require('node:dgram').createSocket('${family}');
        const seen = new Set(); let bad = 0;
        u.on('message', (m) => { const n = m.readUInt32BE(0); if (m.length !== 1000 || m[999] !== (n & 0xff)) bad++; seen.add(n);
          if (seen.size === ${COUNT}) { console.log('all ' + seen.size + ' bad ' + bad); process.exit(0); } });
        u.bind(7200, '${dst}', () => console.log('ready'));
        setTimeout(() => { console.log('only ' + seen.size + ' bad ' + bad); process.exit(1); }, 15000);`]);
      await waitFor(receiver, 'ready');
      const done = waitFor(receiver, 'all', 20_000);
      const sent = await nsRun(b, process.execPath, ['-e', `
        const u = require('node:dgram').createSocket('${family}');
        let n = 0;
        const burst = () => { for (let i = 0; i < 20 && n < ${COUNT}; i++, n++) { const m = Buffer.alloc(1000, n & 0xff); m.writeUInt32BE(n, 0); u.send(m, 7200, '${dst}'); }
          if (n < ${COUNT}) setTimeout(burst, 20); else setTimeout(() => process.exit(0), 200); };
        burst();`]);
      assert.equal(sent.code, 0, sent.stderr);
      await done;
    }
  } finally {
    stop.abort();
    await Promise.all(pumps);
    await tunA.close(); await tunB.close();
  }
  console.log(`udp gro: ${JSON.stringify(stats)}`);
  assert.ok(stats.merged > 20 && stats.out < stats.in, JSON.stringify(stats));
});
