// The packet pair a TUN queue may run over instead of a TUN (native/packet_pair.cc): the queue
// closes what it holds, so it must take only a pair end the addon made, once; a pair end whose
// other end closed must end a read, not spin on it; and the table of ends not yet adopted is
// bounded.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { addon } from '../../src/native.js';
import { openQueuePair } from '../../src/device/packet-pair.js';
import { Queue } from '../../src/device/queue.js';

/* eslint-disable @typescript-eslint/no-explicit-any */
const N = addon as Record<string, any>;
const EMFILE = 24;
const fdCount = () => readdirSync('/proc/self/fd').length;
const isTypeError = (e: unknown) => e instanceof TypeError && /not an open \/dev\/net\/tun/.test(e.message);

test('a TunQueue takes a pair end the addon made, once, and no other socket or file', () => {
  const before = fdCount();
  const [a, b] = N.packetPairOpen() as [number, number];
  const q = new N.TunQueue(a);
  // The same end again (still open, owned by q): refused, and left alone.
  assert.throws(() => new N.TunQueue(a), isTypeError);
  q.close();
  // Its number reused by a file: refused (the table remembers the socket, not the number).
  const file = N.openPath('/dev/null');
  assert.equal(file, a, 'the closed end\'s number was reused');
  assert.throws(() => new N.TunQueue(file), isTypeError);
  N.closeFd(file);
  // An end closed without being adopted, its number reused by another pair's end: that one is
  // the new pair's, and the stale entry does not let a file in.
  N.closeFd(b);
  const [c, d] = N.packetPairOpen() as [number, number];
  const qc = new N.TunQueue(c);
  const qd = new N.TunQueue(d);
  qc.close();
  qd.close();
  assert.equal(fdCount(), before, 'every fd closed');
});

test('the ends not yet adopted are bounded: past 32 the addon answers EMFILE, and closing them makes room', () => {
  const made: number[] = [];
  try {
    for (let i = 0; i < 16; i++) made.push(...(N.packetPairOpen() as number[]));
    assert.throws(() => N.packetPairOpen(), (e: Error & { errno?: number }) => e.errno === EMFILE);
  } finally {
    for (const f of made) N.closeFd(f);
  }
  const [a, b] = N.packetPairOpen() as [number, number];
  N.closeFd(a);
  N.closeFd(b);
});

test('a queue over a pair: packets cross whole each way, and a closed other end ends the read with EPIPE', async () => {
  const before = fdCount();
  const pair = openQueuePair({ name: 'pairtest', mode: 'tun', vnetHdrSize: 10, batchSize: 8, offload: 'split', verifyChecksums: false });
  try {
    // The wire end writes a packet behind its (empty) vnet header; the device end reads it.
    const packet = Buffer.alloc(60);
    packet[0] = 0x45;
    packet.writeUInt16BE(60, 2);
    const framed = Buffer.concat([Buffer.alloc(10), packet]);
    assert.equal(pair.wire.postRanges(framed, Uint32Array.of(0), Uint32Array.of(framed.length), 1), true);
    const got = await pair.device.readBatch();
    assert.equal(got?.count, 1);
    assert.deepEqual(got!.packet(0), packet);
    // The device end's write reaches the wire end behind a vnet header.
    assert.equal(pair.device.post({ buffer: packet, offsets: Uint32Array.of(0), lengths: Uint32Array.of(60), count: 1 }), true);
    const back = await pair.wire.readBatch();
    assert.deepEqual(back!.packet(0), packet);
    assert.equal(pair.device.counters.packetsRead, 1);
    assert.equal(pair.device.counters.packetsWritten, 1);
    // The wire end gone: the device end's read fails at once instead of reading 0 forever.
    await pair.wire.close();
    await assert.rejects(pair.device.readBatch(), (e: Error & { code?: string }) => e.code === 'EPIPE');
  } finally {
    await pair.close();
  }
  assert.equal(fdCount(), before, 'both ends closed');
});

test('a Queue refuses a socket the addon did not make as a pair end (the fd stays the caller\'s)', () => {
  const udp = new N.UdpSocketNative(4);
  try {
    assert.throws(() => new Queue({ fd: udp.fd, name: 'x', mode: 'tun', index: 0, packetInfo: false, vnetHdrSize: 0 }), isTypeError);
    assert.ok(readdirSync('/proc/self/fd').includes(String(udp.fd)), 'the socket is still open');
  } finally {
    udp.close();
  }
});
