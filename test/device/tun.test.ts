// TUN devices against the real kernel: ping answered by our code, PI header, typed errors,
// control ioctls.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { TestNet, nsExec, nsRun } from '../helpers/netns.js';
import { TuntapError } from '../../src/errors.js';
import { openTun, ETH_P, IFF, ARPHRD, encodePacketInfo, PI_LENGTH, type TunDevice } from '../../src/device/index.js';
import { echoReply, echoRequest4, udpSourcePort } from './packets.js';
import { sendUdp } from './util.js';
import { sleep, waitFor } from '../helpers/wait.js';

const net = new TestNet();
after(() => net.cleanup());

function configure(ns: string, dev: TunDevice): void {
  net.configure(ns, dev.name, { addresses: ['198.18.0.1/24', { address: 'fd00:d::1/64', nodad: true }], up: true });
}

/**
 * Answers every echo request on the device until it closes; returns the packets' protocols.
 * With `ranges`, replies go out with writeRanges from one buffer, headers written by us (raw).
 */
async function respond(dev: TunDevice, seen: number[] = [], ranges = false): Promise<number[]> {
  const out = Buffer.alloc(65536);
  const offsets = new Uint32Array(64);
  const lengths = new Uint32Array(64);
  for await (const batch of dev.batches()) {
    if (ranges) {
      let n = 0;
      let pos = 0;
      for (let i = 0; i < batch.count; i++) {
        const info = batch.info(i)!;
        seen.push(info.protocol, batch.packet(i)[0]! >> 4);
        const reply = echoReply(batch.packet(i));
        if (!reply) continue;
        encodePacketInfo(out, pos, info.protocol);
        reply.copy(out, pos + PI_LENGTH);
        offsets[n] = pos;
        lengths[n] = PI_LENGTH + reply.length;
        pos += lengths[n]!;
        n++;
      }
      if (n > 0) assert.equal(await dev.queues[0]!.writeRanges(out, offsets, lengths, n, { raw: true }), n);
      continue;
    }
    const replies: Buffer[] = [];
    for (let i = 0; i < batch.count; i++) {
      const info = batch.info(i);
      const packet = batch.packet(i);
      if (info) {
        assert.equal(info.stripped, false);
        seen.push(info.protocol, packet[0]! >> 4);
      }
      const reply = echoReply(packet);
      if (reply) replies.push(reply);
    }
    if (replies.length > 0) await dev.writeBatch(replies);
  }
  return seen;
}

test('kernel ping over IPv4 and IPv6 gets echo replies built by our code', async () => {
  const ns = net.namespace('dt');
  const dev = openTun({ netns: ns });
  assert.match(dev.name, /^tun\d+$/);
  configure(ns, dev);
  const responder = respond(dev);
  try {
    const v4 = await nsRun(ns, 'ping', ['-c', '3', '-i', '0.2', '-W', '2', '198.18.0.2']);
    assert.equal(v4.code, 0, v4.stdout + v4.stderr);
    assert.match(v4.stdout, /3 received/);
    const v6 = await nsRun(ns, 'ping', ['-6', '-c', '3', '-i', '0.2', '-W', '2', 'fd00:d::2']);
    assert.equal(v6.code, 0, v6.stdout + v6.stderr);
    assert.match(v6.stdout, /3 received/);
    assert.ok(dev.queues[0]!.counters.packetsWritten >= 6);
  } finally {
    await dev.close();
  }
  await responder;
  // A non-persistent device disappears with its last fd.
  assert.doesNotMatch(nsExec(ns, 'ip', 'link'), new RegExp(`${dev.name}:`));
});

test('with packet info the protocol field is 0x0800 for IPv4 and 0x86dd for IPv6', async () => {
  const ns = net.namespace('dt');
  const dev = openTun({ netns: ns, name: 'pi0', packetInfo: true });
  assert.equal(dev.name, 'pi0');
  configure(ns, dev);
  const seen: number[] = [];
  const responder = respond(dev, seen, true);
  try {
    const v4 = await nsRun(ns, 'ping', ['-c', '1', '-W', '2', '198.18.0.2']);
    assert.equal(v4.code, 0, v4.stdout + v4.stderr);
    const v6 = await nsRun(ns, 'ping', ['-6', '-c', '1', '-W', '2', 'fd00:d::2']);
    assert.equal(v6.code, 0, v6.stdout + v6.stderr);
  } finally {
    await dev.close();
  }
  await responder;
  const pairs: [number, number][] = [];
  for (let i = 0; i < seen.length; i += 2) pairs.push([seen[i]!, seen[i + 1]!]);
  assert.ok(pairs.some(([p, v]) => p === ETH_P.IP && v === 4), 'an IPv4 packet with protocol 0x0800');
  assert.ok(pairs.some(([p, v]) => p === ETH_P.IPV6 && v === 6), 'an IPv6 packet with protocol 0x86dd');
  for (const [p, v] of pairs) assert.equal(p, v === 4 ? ETH_P.IP : ETH_P.IPV6);
});

test('poke() hands the running readEach loop the answer the kernel queued during a write', async () => {
  const ns = net.namespace('dt');
  await using dev = openTun({ netns: ns });
  net.configure(ns, dev.name, { addresses: ['198.18.0.1/24'], up: true });
  const q = dev.queues[0]!;
  // Only our echo replies count: bringing the link up makes the kernel send IPv6 packets too.
  const replies: Buffer[] = [];
  q.readEach((batch) => {
    for (let i = 0; i < batch.count; i++) {
      const p = batch.packet(i);
      if (p[0] === 0x45 && p[9] === 1 && p[20] === 0 && p.readUInt16BE(24) === 0x77) replies.push(Buffer.from(p));
    }
  }, () => {});
  // The kernel answers an echo request to its own address inside the write system call.
  await q.write(echoRequest4('198.18.0.2', '198.18.0.1', 0x77, 1));
  q.poke();
  // No await in between: the reply came through the loop's callback within poke().
  assert.equal(replies.length, 1, 'the reply was read during poke()');
  assert.equal(replies[0]!.readUInt16BE(26), 1);
  // Nothing queued: poke() reads nothing, and the loop still reads on readiness afterwards.
  q.poke();
  assert.equal(replies.length, 1);
  await q.write(echoRequest4('198.18.0.2', '198.18.0.1', 0x77, 2));
  await waitFor('the second echo reply', () => replies.length >= 2, 3000);
  assert.equal(replies.length, 2, 'the loop still reads on readiness after a poke');
  assert.equal(replies[1]!.readUInt16BE(26), 2);
});

test('writeRanges adds the PI header itself: the kernel answers the echo request a range holds', async () => {
  const ns = net.namespace('dt');
  await using dev = openTun({ netns: ns, packetInfo: true });
  net.configure(ns, dev.name, { addresses: ['198.18.0.1/24'], up: true });
  const q = dev.queues[0]!;
  // The packet lies at an offset in a larger buffer; without its PI header the kernel would
  // read the IP header's first bytes as one and drop the packet.
  const request = echoRequest4('198.18.0.2', '198.18.0.1', 0x78, 7);
  const buffer = Buffer.concat([Buffer.alloc(3, 0xff), request]);
  assert.equal(await q.writeRanges(buffer, Uint32Array.of(3), Uint32Array.of(request.length), 1), 1);
  const signal = AbortSignal.timeout(3000);
  for (;;) {
    const batch = await q.readBatch({ signal });
    assert.ok(batch);
    for (let i = 0; i < batch.count; i++) {
      const p = batch.packet(i);
      if (p[0] !== 0x45 || p[9] !== 1 || p[20] !== 0 || p.readUInt16BE(24) !== 0x78) continue;
      assert.equal(p.readUInt16BE(26), 7);
      assert.equal(batch.info(i)!.protocol, ETH_P.IP);
      return;
    }
  }
});

test('a TUN write that is neither IPv4 nor IPv6 gets the kernel EINVAL as a TuntapError', async () => {
  const ns = net.namespace('dt');
  await using dev = openTun({ netns: ns });
  dev.setUp(true); // a down device refuses every write with EIO
  const junk = Buffer.alloc(40, 0);
  junk[0] = 0x50;
  await assert.rejects(dev.write(junk), (e: unknown) => {
    assert.ok(e instanceof TuntapError);
    assert.equal(e.code, 'EINVAL');
    assert.equal(e.syscall, 'write');
    assert.match(e.message, /not IPv4 or IPv6/);
    return true;
  });
  // writeBatch counts and skips the malformed packet instead of failing the batch.
  const ok = echoReply(Buffer.from('450000240000000040010000c6120002c61200010800000000010001000000000000000000', 'hex'));
  assert.ok(ok);
  const accepted = await dev.writeBatch([junk, ok!]);
  assert.equal(accepted, 1);
  assert.equal(dev.queues[0]!.counters.writesRejected, 1);
  // So does a raw writeRanges (whose first attempt is one synchronous call): the packets after
  // the rejected one still go out, each counted once.
  const q = dev.queues[0]!;
  const written = q.counters.packetsWritten;
  const ranges = Buffer.concat([ok!, junk, ok!]);
  const offsets = Uint32Array.of(0, ok!.length, ok!.length + junk.length);
  const lengths = Uint32Array.of(ok!.length, junk.length, ok!.length);
  assert.equal(await q.writeRanges(ranges, offsets, lengths, 3, { raw: true }), 2);
  assert.equal(q.counters.writesRejected, 2);
  assert.equal(q.counters.packetsWritten, written + 2);
  assert.equal(await q.writeRanges(ranges, offsets, lengths, 1, { raw: true }), 1);
  assert.equal(q.counters.packetsWritten, written + 3);
  // postRanges: the same without a promise. The rejected packet makes the rest wait for the
  // ordered loop, which must work from a copy: the caller's arrays are clobbered at once.
  q.postRanges(ranges, offsets, lengths, 3);
  offsets.fill(0);
  lengths.fill(0);
  await waitFor('the posted packets', () => q.counters.packetsWritten >= written + 5, 3000);
  assert.equal(q.counters.packetsWritten, written + 5);
  assert.equal(q.counters.writesRejected, 3);
  assert.ok(dev.stats().rxDropped >= 4, 'the kernel counted the rejected packets');
});

test('opening errors are typed: TUN_EXCL gives EBUSY, a second single-queue attach gives EBUSY', async () => {
  const ns = net.namespace('dt');
  await using dev = openTun({ netns: ns, name: 'ex0' });
  assert.throws(() => openTun({ netns: ns, name: 'ex0', exclusive: true }), (e: unknown) => {
    assert.ok(e instanceof TuntapError);
    assert.equal(e.code, 'EBUSY');
    assert.equal(e.syscall, 'ioctl(TUNSETIFF)');
    assert.match(e.message, /already exists/);
    return true;
  });
  assert.throws(() => openTun({ netns: ns, name: 'ex0' }), { code: 'EBUSY' });
  assert.throws(() => openTun({ netns: ns, name: 'ex0', multiQueue: true }), { code: 'EINVAL' });
  assert.ok(dev.queues[0]!.fd >= 0);
});

test('control ioctls: features, ifindex, sndbuf, vnet header size and endianness, link type', async () => {
  const ns = net.namespace('dt');
  await using dev = openTun({ netns: ns, ifindex: 4242, vnetHdr: true });
  assert.equal(dev.ifindex, 4242);
  const features = dev.features();
  for (const f of [IFF.TUN, IFF.TAP, IFF.NO_PI, IFF.VNET_HDR, IFF.MULTI_QUEUE]) assert.ok(features & f, `feature ${f}`);
  dev.setSndbuf(1 << 20);
  assert.equal(dev.sndbuf, 1 << 20);
  assert.equal(dev.vnetHdrSize, 10);
  dev.setVnetHdrSize(12);
  assert.equal(dev.vnetHdrSize, 12);
  assert.equal(dev.queues[0]!.vnetHdrSize, 12);
  assert.throws(() => dev.setVnetHdrSize(4), (e: unknown) => e instanceof TuntapError && e.code === 'EINVAL' && /at least 10/.test(e.message));
  dev.setVnetLittleEndian(true);
  assert.equal(dev.vnetLittleEndian, true);
  dev.setVnetLittleEndian(false);
  assert.equal(dev.vnetLittleEndian, false);
  // The kernel refuses unknown offload bits with EINVAL, so this checks USO4/6 exist here.
  dev.setOffload({ csum: true, tso4: true, tso6: true, tsoEcn: true, uso4: true, uso6: true });
  assert.throws(() => dev.setOffload(0x80), (e: unknown) => e instanceof TuntapError && /offload/.test(e.message));
  dev.setOffload({});
  dev.setMtu(1400);
  assert.equal(dev.mtu, 1400);
  // TUNSETLINK only while down.
  dev.setUp(true);
  assert.equal(dev.isUp, true);
  assert.throws(() => dev.setLinkType(ARPHRD.VOID), (e: unknown) => e instanceof TuntapError && e.code === 'EBUSY' && /while it is down/.test(e.message));
  dev.setUp(false);
  dev.setLinkType(ARPHRD.VOID);
  assert.match(nsExec(ns, 'ip', 'link', 'show', dev.name), /link\/void/);
  assert.equal(dev.persistent, false);
  const mq = dev.iff();
  assert.equal(mq.name, dev.name);
  // A TUN device has no TX filter.
  assert.throws(() => dev.setTxFilter({ addresses: ['02:00:00:00:00:01'] }), { code: 'EINVAL' });
});

test('PI header on a read too small for the packet: TUN_PKT_STRIP surfaces as stripped', async () => {
  const ns = net.namespace('dt');
  await using dev = openTun({ netns: ns, packetInfo: true, readSize: 64 });
  configure(ns, dev);
  const ping = nsRun(ns, 'ping', ['-c', '1', '-W', '1', '-s', '200', '198.18.0.2']);
  let stripped = false;
  for (let i = 0; i < 20 && !stripped; i++) {
    const batch = await dev.readBatch({ signal: AbortSignal.timeout(3000) });
    for (let j = 0; j < batch!.count; j++) {
      const info = batch!.info(j)!;
      if (info.protocol === ETH_P.IP && batch!.packet(j)[9] === 1) {
        assert.equal(info.stripped, true);
        assert.equal(batch!.lengths[j], 64);
        stripped = true;
      }
    }
  }
  assert.ok(stripped);
  await ping;
});

test('a read waiting for packets honours AbortSignal and close()', async () => {
  const ns = net.namespace('dt');
  const dev = openTun({ netns: ns });
  const controller = new AbortController();
  const pending = dev.readBatch({ signal: controller.signal });
  controller.abort();
  await assert.rejects(pending, { name: 'AbortError' });
  const waiting = dev.readBatch();
  await dev.close();
  assert.equal(await waiting, null);
  await assert.rejects(dev.write(Buffer.from([0x45])), { code: 'EBADF' });
});

test('a consumer that does not read leaves packets in the bounded kernel queue; overflow is counted as tx_dropped', async () => {
  const ns = net.namespace('dt');
  await using dev = openTun({ netns: ns });
  configure(ns, dev);
  dev.setTxQueueLength(100);
  assert.equal(dev.txQueueLength, 100);
  const before = dev.stats().txDropped;
  await sendUdp(ns, '198.18.0.2', 9000, { flows: 10, rounds: 40, sport: 42000 });
  const dropped = dev.stats().txDropped - before;
  let queued = 0;
  for (;;) {
    const batch = await dev.readBatch({ signal: AbortSignal.timeout(300) }).catch(() => null);
    if (!batch) break;
    for (const p of batch) if (udpSourcePort(p) >= 42000) queued++;
  }
  assert.ok(queued <= 100, `at most txqueuelen packets waited for us (${queued})`);
  assert.ok(queued >= 50, `the kernel kept packets for us (${queued})`);
  assert.ok(dropped >= 400 - queued - 10, `the rest was counted as dropped (${dropped})`);
  assert.ok(dev.queues[0]!.counters.batchesRead < queued, 'packets came in batches');
});

test('readEach: a callback-driven read loop answers pings, refuses a second reader and ends once on close', async () => {
  const ns = net.namespace('de');
  const dev = openTun({ netns: ns });
  configure(ns, dev);
  const q = dev.queues[0]!;
  let batches = 0;
  let ends = 0;
  let endError: unknown = 'not ended';
  const ended = new Promise<void>((resolve) => {
    q.readEach((batch) => {
      batches++;
      const replies: Buffer[] = [];
      for (let i = 0; i < batch.count; i++) {
        const reply = echoReply(batch.packet(i));
        if (reply) replies.push(Buffer.from(reply));
      }
      if (replies.length > 0) void dev.writeBatch(replies);
    }, (err) => { ends++; endError = err; resolve(); });
  });
  try {
    await assert.rejects(q.readBatch(), /another read is already waiting/);
    const r = await nsRun(ns, 'ping', ['-c', '5', '-i', '0.2', '-W', '2', '198.18.0.2']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /5 received/);
    assert.ok(batches >= 5);
  } finally {
    await dev.close();
  }
  await ended;
  assert.equal(ends, 1);
  assert.equal(endError, null);
});

test('readEach: the first wake-up after a pause reads one packet, the rest comes on the next wake-up', async () => {
  const ns = net.namespace('dw');
  // No IPv6 on the device: its link-up chatter would add wake-ups the assertion cannot place.
  nsExec(ns, 'sysctl', '-q', '-w', 'net.ipv6.conf.default.disable_ipv6=1');
  await using dev = openTun({ netns: ns });
  net.configure(ns, dev.name, { addresses: ['198.18.0.1/24'], up: true });
  const q = dev.queues[0]!;
  const sizes: number[] = [];
  const seqs: number[] = [];
  q.readEach((batch) => {
    sizes.push(batch.count);
    for (let i = 0; i < batch.count; i++) {
      const p = batch.packet(i);
      if (p[0] === 0x45 && p[9] === 1 && p[20] === 0 && p.readUInt16BE(24) === 0x79) seqs.push(p.readUInt16BE(26));
    }
  }, () => {});
  await sleep(50); // the pause
  const first = sizes.length;
  // The kernel answers each echo request to its own address inside the write: all three
  // replies are queued before the loop's next wake-up.
  assert.equal(await q.writeBatch([1, 2, 3].map((seq) => echoRequest4('198.18.0.2', '198.18.0.1', 0x79, seq))), 3);
  await waitFor('the three echo replies', () => seqs.length >= 3, 3000);
  assert.deepEqual(seqs, [1, 2, 3]);
  assert.equal(sizes[first], 1, `the wake-up after the pause read one packet (batches: ${sizes.slice(first).join(',')})`);
});

// A slow consumer (3 ms per batch, longer than the pause) must not be mistaken for an idle one.
for (const busyMs of [0, 3]) {
  test(`readEach: a burst right after a pause is still read in batches, none lost (consumer busy ${busyMs} ms per batch)`, async () => {
    const ns = net.namespace('dp');
    const dev = openTun({ netns: ns, batchSize: 64 });
    configure(ns, dev);
    const q = dev.queues[0]!;
    const sizes: number[] = [];
    let udp = 0;
    const ended = new Promise<void>((resolve) => {
      q.readEach((batch) => {
        sizes.push(batch.count);
        for (let i = 0; i < batch.count; i++) if (udpSourcePort(batch.packet(i)) === 41000) udp++;
        for (const until = performance.now() + busyMs; performance.now() < until;);
      }, () => resolve());
    });
    try {
      await sleep(50); // the pause
      // 200 datagrams routed into the TUN as fast as one sender can go
      await sendUdp(ns, '198.18.0.2', 9000, { rounds: 200, sport: 41000 });
      await waitFor('every datagram read', () => udp >= 200, 5000).catch(() => {});
      assert.equal(udp, 200, `every datagram read (batches: ${sizes.join(',')})`);
      assert.ok(Math.max(...sizes) > 1, `a burst is read in batches, not one packet per wake-up (batches: ${sizes.join(',')})`);
    } finally {
      await dev.close();
    }
    await ended;
  });
}
