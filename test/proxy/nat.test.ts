// The TCP NAT on bytes: translations keep every checksum valid, map back exactly, and the table
// allocates, caps, resets and frees as documented.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TcpNat } from '../../src/proxy/nat.js';
import { tcpPacket, validTcp as valid, addressBytes, SYN, ACK, RST, PSH } from './segments.js';
import { internetChecksum, pseudoHeaderSum } from '../../src/packet/checksum.js';

const addrs = { local4: '198.19.0.1', fake4: '198.19.0.2', local6: 'fd00:7475::1', fake6: 'fd00:7475::2', listenPort4: 4000, listenPort6: 4006 };

for (const [family, app, server, local, fake, listen] of [
  [4, '198.19.0.1', '198.18.2.2', addrs.local4, addrs.fake4, addrs.listenPort4],
  [6, 'fd00:7475::1', 'fd00:2::2', addrs.local6, addrs.fake6, addrs.listenPort6],
] as const) {
  test(`IPv${family}: a connection is translated both ways with valid checksums`, () => {
    const nat = new TcpNat({ ...addrs, portMin: 20000, portMax: 20009 });
    const syn = tcpPacket(app, 40000, server, 80, SYN);
    assert.equal(nat.translate(syn, 1), 'forward');
    assert.ok(valid(syn), 'translated SYN verifies');
    const ipLen = family === 4 ? 20 : 40;
    const a = family === 4 ? 12 : 8, len = family === 4 ? 4 : 16;
    assert.deepEqual(syn.subarray(a, a + len), addressBytes(fake));
    assert.deepEqual(syn.subarray(a + len, a + 2 * len), addressBytes(local));
    const port = syn.readUInt16BE(ipLen);
    assert.equal(port, 20000);
    assert.equal(syn.readUInt16BE(ipLen + 2), listen);
    const e = nat.lookup(port)!;
    assert.equal(e.dstHost, server);
    assert.equal(e.dstPort, 80);
    assert.equal(e.srcPort, 40000);

    // The kernel's SYN-ACK from the listener, with data-bearing segments after it.
    const synAck = tcpPacket(local, listen, fake, port, SYN | ACK, Buffer.alloc(0), 777, 1001);
    assert.equal(nat.translate(synAck, 2), 'forward');
    assert.ok(valid(synAck));
    assert.deepEqual(synAck.subarray(a, a + len), addressBytes(server));
    assert.deepEqual(synAck.subarray(a + len, a + 2 * len), addressBytes(app));
    assert.equal(synAck.readUInt16BE(ipLen), 80);
    assert.equal(synAck.readUInt16BE(ipLen + 2), 40000);

    const data = tcpPacket(app, 40000, server, 80, ACK | PSH, Buffer.from('GET / HTTP/1.1\r\n\r\n'));
    assert.equal(nat.translate(data, 3), 'forward');
    assert.ok(valid(data));
    assert.equal(data.readUInt16BE(ipLen), port);
    assert.equal(nat.size, 1);
  });

  test(`IPv${family}: a stray segment gets a reset; the reset itself verifies`, () => {
    const nat = new TcpNat({ ...addrs });
    const stray = tcpPacket(app, 40001, server, 80, ACK, Buffer.from('x'), 5, 99);
    const r = nat.translate(stray, 1);
    assert.ok(Buffer.isBuffer(r));
    assert.ok(valid(r));
    const ipLen = family === 4 ? 20 : 40;
    assert.equal(r[ipLen + 13], RST);
    assert.equal(r.readUInt32BE(ipLen + 4), 99, 'RST seq is the ACK it answers');
    assert.equal(r.readUInt16BE(ipLen), 80);
    assert.equal(r.readUInt16BE(ipLen + 2), 40001);
    assert.equal(nat.size, 0);
  });
}

/** Runs the handshake of the connection whose translated SYN is `syn` (listener ISN 5000). */
function handshake(nat: TcpNat, syn: Buffer, now = 0): void {
  const port = syn.readUInt16BE(20), listen = syn.readUInt16BE(22);
  const synAck = tcpPacket(addrs.local4, listen, addrs.fake4, port, SYN | ACK, Buffer.alloc(0), 5000, syn.readUInt32BE(24) + 1);
  assert.equal(nat.translate(synAck, now), 'forward');
  const e = nat.lookup(port)!;
  const ack = tcpPacket(e.srcHost, e.srcPort, e.dstHost, e.dstPort, ACK, Buffer.alloc(0), syn.readUInt32BE(24) + 1, 5001);
  assert.equal(nat.translate(ack, now), 'forward');
}

test('the table caps sessions, answers beyond the cap with RST+ACK, and frees after linger', () => {
  const released: number[] = [];
  const nat = new TcpNat({ ...addrs, maxSessions: 2, lingerMs: 100, onRelease: (port) => released.push(port) });
  const a = tcpPacket('198.19.0.1', 1, '198.18.2.2', 80, SYN);
  const b = tcpPacket('198.19.0.1', 2, '198.18.2.2', 80, SYN);
  const c = tcpPacket('198.19.0.1', 3, '198.18.2.2', 80, SYN, Buffer.alloc(0), 41);
  assert.equal(nat.translate(a, 0), 'forward');
  assert.equal(nat.translate(b, 0), 'forward');
  handshake(nat, a);
  handshake(nat, b);
  assert.equal(nat.lookup(a.readUInt16BE(20))!.state, 'pending');
  const r = nat.translate(c, 0) as Buffer;
  assert.ok(Buffer.isBuffer(r));
  assert.equal(r[33], RST | ACK);
  assert.equal(r.readUInt32BE(28), 42, 'acknowledges the SYN');
  assert.equal(nat.counters.refusedFull, 1);
  const portA = a.readUInt16BE(20);
  nat.close(portA, 1000);
  assert.equal(nat.activeSessions, 1);
  nat.sweep(1050);
  assert.equal(nat.size, 2, 'still lingering');
  nat.sweep(1100);
  assert.equal(nat.size, 1);
  assert.equal(nat.lookup(portA), undefined);
  assert.deepEqual(released, [portA], 'the relay hears of it');
});

test('a full table gives the oldest half-open entry to a new SYN, and resets the listener\'s side of it', () => {
  const emitted: Buffer[] = [];
  const nat = new TcpNat({ ...addrs, maxSessions: 3, emit: (p) => emitted.push(p) });
  const syns = [1, 2, 3].map((sp) => tcpPacket('198.18.64.1', sp, '198.18.2.2', 80, SYN, Buffer.alloc(0), 1000 * sp));
  for (const syn of syns) assert.equal(nat.translate(syn, 0), 'forward');
  // The second completes its handshake: only the first and third are half-open.
  handshake(nat, syns[1]!);
  const late = tcpPacket('198.18.64.9', 9, '198.18.2.2', 80, SYN);
  assert.equal(nat.translate(late, 1), 'forward', 'the new SYN gets an entry');
  assert.equal(nat.counters.evicted, 1);
  const first = syns[0]!.readUInt16BE(20);
  assert.equal(nat.lookup(first), undefined, 'the oldest half-open entry went');
  assert.ok(nat.lookup(syns[1]!.readUInt16BE(20)), 'the completed one stays');
  // The reset the listener gets: from the fake peer, in sequence (SYN's ISN + 1), valid.
  assert.equal(emitted.length, 1);
  const rst = emitted[0]!;
  assert.ok(valid(rst));
  assert.deepEqual([...rst.subarray(12, 16)], [198, 19, 0, 2]);
  assert.deepEqual([...rst.subarray(16, 20)], [198, 19, 0, 1]);
  assert.equal(rst.readUInt16BE(20), first);
  assert.equal(rst.readUInt16BE(22), addrs.listenPort4);
  assert.equal(rst.readUInt32BE(24), 1001);
  assert.equal(rst[33], RST);
});

test('an ACK that does not acknowledge the listener\'s SYN-ACK leaves the entry half-open (a blind spoofer cannot pin it)', () => {
  const nat = new TcpNat({ ...addrs });
  const syn = tcpPacket('198.18.64.1', 7, '198.18.2.2', 80, SYN, Buffer.alloc(0), 100);
  nat.translate(syn, 0);
  const port = syn.readUInt16BE(20);
  nat.translate(tcpPacket(addrs.local4, addrs.listenPort4, addrs.fake4, port, SYN | ACK, Buffer.alloc(0), 5000, 101), 0);
  nat.translate(tcpPacket('198.18.64.1', 7, '198.18.2.2', 80, ACK, Buffer.alloc(0), 101, 12345), 0);
  assert.equal(nat.lookup(port)!.state, 'half-open');
  nat.translate(tcpPacket('198.18.64.1', 7, '198.18.2.2', 80, ACK, Buffer.alloc(0), 101, 5001), 0);
  assert.equal(nat.lookup(port)!.state, 'pending');
});

test('half-open entries per gateway source are capped (further SYNs dropped silently); other sources are unaffected', () => {
  const nat = new TcpNat({ ...addrs, maxHalfOpenPerSource: 3, admitSource: (_f, a) => (a[2] === 64 ? 'gateway' : 'local') });
  for (let sp = 1; sp <= 3; sp++) assert.equal(nat.translate(tcpPacket('198.18.64.1', sp, '198.18.2.2', 80, SYN), 0), 'forward');
  assert.equal(nat.translate(tcpPacket('198.18.64.1', 4, '198.18.2.2', 80, SYN), 0), 'drop');
  assert.equal(nat.counters.sourceLimited, 1);
  assert.equal(nat.translate(tcpPacket('198.18.64.2', 4, '198.18.2.2', 80, SYN), 0), 'forward');
  assert.equal(nat.halfOpenFrom(addressBytes('198.18.64.1')), 3);
  // A completed handshake frees its share.
  const syn = tcpPacket('198.18.64.1', 1, '198.18.2.2', 80, SYN);
  nat.translate(syn, 0);
  handshake(nat, syn);
  assert.equal(nat.halfOpenFrom(addressBytes('198.18.64.1')), 2);
  assert.equal(nat.translate(tcpPacket('198.18.64.1', 5, '198.18.2.2', 80, SYN), 0), 'forward');
});

test('a SYN never answered goes after the handshake timeout, a completed handshake never accepted after the accept timeout; both reset the listener', () => {
  const emitted: Buffer[] = [];
  const nat = new TcpNat({ ...addrs, handshakeTimeoutMs: 1000, acceptTimeoutMs: 5000, emit: (p) => emitted.push(p) });
  const spoofed = tcpPacket('198.19.0.1', 2, '198.18.2.2', 80, SYN, Buffer.alloc(0), 300);
  nat.translate(spoofed, 0);
  const syn = tcpPacket('198.19.0.1', 1, '198.18.2.2', 80, SYN, Buffer.alloc(0), 700);
  nat.translate(syn, 0);
  handshake(nat, syn);
  nat.sweep(999);
  assert.equal(nat.size, 2);
  nat.sweep(1000);
  assert.equal(nat.size, 1, 'the half-open entry went');
  assert.equal(nat.counters.handshakeTimeouts, 1);
  assert.equal(emitted.length, 1);
  assert.equal(emitted.shift()!.readUInt32BE(24), 301);
  // Data before accept moves the sequence number the reset must carry.
  const e = nat.lookup(syn.readUInt16BE(20))!;
  nat.translate(tcpPacket('198.19.0.1', 1, '198.18.2.2', 80, ACK | PSH, Buffer.from('hello'), 701, 5001), 1);
  assert.equal(e.appNext, 706);
  nat.sweep(4999);
  assert.equal(nat.size, 1);
  nat.sweep(5000);
  assert.equal(nat.size, 0);
  assert.equal(nat.counters.acceptTimeouts, 1);
  assert.equal(emitted.length, 1);
  assert.equal(emitted[0]!.readUInt32BE(24), 706);
});

test('a source refused by admitSource gets nothing: no entry, no reset', () => {
  const nat = new TcpNat({ ...addrs, admitSource: (_f, a) => (a[0] === 198 && a[1] === 19 ? 'local' : false) });
  assert.equal(nat.translate(tcpPacket('198.18.4.2', 1, '198.18.2.2', 80, SYN), 0), 'drop');
  assert.equal(nat.translate(tcpPacket('198.18.4.2', 1, '198.18.2.2', 80, ACK, Buffer.from('x')), 0), 'drop');
  assert.equal(nat.counters.foreign, 2);
  assert.equal(nat.size, 0);
  assert.equal(nat.translate(tcpPacket('198.19.0.1', 1, '198.18.2.2', 80, SYN), 0), 'forward');
});

test('a retransmitted SYN reuses its entry; a new SYN on a closing entry gets a fresh port', () => {
  const nat = new TcpNat({ ...addrs });
  const syn = (): Buffer => tcpPacket('198.19.0.1', 5555, '198.18.2.2', 443, SYN);
  const first = syn();
  nat.translate(first, 0);
  const again = syn();
  nat.translate(again, 1);
  assert.equal(again.readUInt16BE(20), first.readUInt16BE(20));
  nat.close(first.readUInt16BE(20), 2);
  const fresh = syn();
  nat.translate(fresh, 3);
  assert.notEqual(fresh.readUInt16BE(20), first.readUInt16BE(20));
  assert.equal(nat.size, 1);
});

test('the admit hook rejects destinations at SYN time', () => {
  const nat = new TcpNat({ ...addrs, admit: (_f, host, port) => !(host === '198.18.9.9' && port === 25) });
  const r = nat.translate(tcpPacket('198.19.0.1', 1, '198.18.9.9', 25, SYN), 0);
  assert.ok(Buffer.isBuffer(r));
  assert.equal(nat.counters.rejected, 1);
  assert.equal(nat.translate(tcpPacket('198.19.0.1', 1, '198.18.9.9', 80, SYN), 0), 'forward');
});

test('malformed and foreign packets are counted and dropped, never thrown on', () => {
  const nat = new TcpNat({ ...addrs });
  assert.equal(nat.translate(Buffer.alloc(0), 0), 'drop');
  assert.equal(nat.translate(Buffer.from([0x45, 0, 0, 20]), 0), 'drop', 'shorter than an IPv4 header');
  const truncated = tcpPacket('198.19.0.1', 1, '198.18.2.2', 80, SYN).subarray(0, 30);
  assert.equal(nat.translate(truncated, 0), 'drop');
  assert.equal(nat.counters.dropped, 3);
  // A header length below 20 bytes would put the TCP header inside the IP header: the ports
  // would be written over the addresses. Nothing is translated, nothing changes.
  for (const ihl of [0, 4]) {
    const short = tcpPacket('198.19.0.1', 1, '198.18.2.2', 80, SYN);
    short[0] = 0x40 | ihl;
    const before = Buffer.from(short);
    assert.equal(nat.translate(short, 0), 'drop', `IHL ${ihl}`);
    assert.deepEqual(short, before);
  }
  // A data offset below 5 words: the same inside TCP.
  const badOffset = tcpPacket('198.19.0.1', 1, '198.18.2.2', 80, SYN);
  badOffset[32] = 0x40;
  assert.equal(nat.translate(badOffset, 0), 'drop');
  // A data offset past the segment: options the packet does not hold (a payload length below zero).
  const longOffset = tcpPacket('198.19.0.1', 1, '198.18.2.2', 80, SYN);
  longOffset[32] = 0xf0;
  const longBefore = Buffer.from(longOffset);
  assert.equal(nat.translate(longOffset, 0), 'drop');
  assert.deepEqual(longOffset, longBefore);
  assert.equal(nat.size, 0, 'no entry for any of them');
  // A listener segment for a port nobody holds is answered with a reset; a stray reset is dropped.
  const stale = nat.translate(tcpPacket('198.19.0.1', 4000, '198.19.0.2', 30000, ACK | 0x01, Buffer.alloc(0), 9, 10), 0);
  assert.ok(Buffer.isBuffer(stale) && valid(stale) && stale[33] === RST && stale.readUInt16BE(22) === 4000);
  assert.equal(nat.translate(tcpPacket('198.19.0.1', 4000, '198.19.0.2', 30000, RST), 0), 'drop');
  assert.equal(nat.translate(Buffer.from([0x20, 1, 2, 3]), 0), 'drop');
});

test('connections spread over several listeners, each entry keeping its own', () => {
  const nat = new TcpNat({ ...addrs, listenPort4: [4000, 4001, 4002], portMin: 30000, portMax: 30099 });
  const seen = new Set<number>();
  for (let sp = 1; sp <= 6; sp++) {
    const syn = tcpPacket('198.19.0.1', sp, '198.18.2.2', 80, SYN);
    nat.translate(syn, 0);
    assert.ok(valid(syn));
    const listen = syn.readUInt16BE(22);
    assert.equal(nat.lookup(syn.readUInt16BE(20))!.listenPort, listen);
    seen.add(listen);
    const data = tcpPacket('198.19.0.1', sp, '198.18.2.2', 80, ACK, Buffer.from('x'));
    nat.translate(data, 1);
    assert.equal(data.readUInt16BE(22), listen, 'later segments go to the same listener');
    assert.ok(valid(data));
  }
  assert.deepEqual([...seen].sort(), [4000, 4001, 4002]);
});

test('CHECKSUM_PARTIAL segments keep a correct pseudo-header sum (addresses change, ports do not count)', () => {
  for (const [app, server] of [['198.19.0.1', '198.18.2.2'], ['fd00:7475::1', 'fd00:2::2']] as const) {
    const nat = new TcpNat({ ...addrs });
    const v4 = !app.includes(':');
    const l4 = v4 ? 20 : 40;
    const pseudo = (b: Buffer): number => {
      let x = pseudoHeaderSum(b, 0, 6, b.length - l4);
      while (x > 0xffff) x = (x & 0xffff) + Math.floor(x / 0x10000);
      return x;
    };
    const seg = tcpPacket(app, 40000, server, 443, SYN);
    seg.writeUInt16BE(pseudo(seg), l4 + 16);
    assert.equal(nat.translate(seg, 0, true), 'forward');
    assert.equal(seg.readUInt16BE(l4 + 16), pseudo(seg), 'forward');
    if (v4) assert.equal(internetChecksum(seg, 0, 20), 0, 'the IPv4 header checksum is always full');
    const port = seg.readUInt16BE(l4);
    const reply = tcpPacket(v4 ? addrs.local4 : addrs.local6, seg.readUInt16BE(l4 + 2), v4 ? addrs.fake4 : addrs.fake6, port, SYN | ACK, Buffer.from('data'));
    reply.writeUInt16BE(pseudo(reply), l4 + 16);
    assert.equal(nat.translate(reply, 1, true), 'forward');
    assert.equal(reply.readUInt16BE(l4 + 16), pseudo(reply), 'reverse');
  }
});
