// The UDP relay against a hostile SOCKS5 server, on real sockets inside a namespace: the server
// grants UDP ASSOCIATE on an IPv6 relay and answers an IPv4 application's datagram with more
// payload than one IPv4 packet can carry. That answer is counted and dropped: it neither stops
// the process (a throw in the socket's handler) nor reaches the TUN with a wrapped length, and
// the answers around it still arrive.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { TestNet, nsRun } from '../helpers/netns.js';

const net = new TestNet();
after(() => net.cleanup());

const src = new URL('../../src/', import.meta.url).pathname;

const script = `
const net = require('node:net'), dgram = require('node:dgram');
const src = process.argv[1];
Promise.all([import(src + 'proxy/udp.ts'), import(src + 'packet/index.ts')]).then(async ([{ UdpRelay }, packet]) => {
  // The relay end: answers each datagram with 'small', then 65,517 bytes, then 'after'.
  const relay = dgram.createSocket('udp6');
  await new Promise((r) => relay.bind(0, '::1', r));
  relay.on('message', (msg, from) => {
    const { from: dest } = packet.socks5UdpUnwrap(msg);
    for (const payload of [Buffer.from('small'), Buffer.alloc(65517, 0x61), Buffer.from('after')]) {
      relay.send(packet.socks5UdpWrap(dest, payload), from.port, from.address);
    }
  });
  // The control end: no authentication; UDP ASSOCIATE answered with the IPv6 relay.
  const server = net.createServer((s) => {
    let step = 0;
    s.on('data', () => {
      if (step++ === 0) { s.write(Buffer.from([5, 0])); return; }
      const port = relay.address().port;
      s.write(Buffer.from([5, 0, 0, 4, ...new Array(15).fill(0), 1, port >> 8, port & 255]));
    });
    s.on('error', () => {});
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const written = [];
  const udp = new UdpRelay({ upstream: { kind: 'socks5', host: '127.0.0.1', port: server.address().port }, write: (p) => written.push(p) });
  udp.handle({ family: 4, srcAddr: Buffer.from([198, 18, 1, 1]), srcPort: 40000, dstAddr: Buffer.from([198, 18, 2, 2]), dstPort: 53,
    payload: Buffer.from('query') });
  setTimeout(() => {
    console.log(JSON.stringify({
      packets: written.map((p) => ({ size: p.length, totalLength: p.readUInt16BE(2), payload: packet.parseUdpPacket(p)?.payload.toString() })),
      counters: udp.counters,
    }));
    udp.close(); relay.close(); server.close();
    process.exit(0);
  }, 1500);
});
`;

test('UDP relay: an answer too large for the application\'s IP version is dropped; the process goes on', async () => {
  const ns = net.namespace('pxu');
  const r = await nsRun(ns, process.execPath, ['--import', 'tsx', '-e', script, src], 30_000);
  assert.equal(r.code, 0, r.stderr);
  const res = JSON.parse(r.stdout) as { packets: { size: number; totalLength: number; payload?: string }[]; counters: Record<string, number> };
  console.log(`# ${JSON.stringify(res)}`);
  for (const p of res.packets) assert.equal(p.totalLength, p.size, `every packet written says its own length (${JSON.stringify(p)})`);
  assert.deepEqual(res.packets.map((p) => p.payload), ['small', 'after']);
  assert.equal(res.counters.dropped, 1);
  assert.equal(res.counters.received, 3, 'all three came from the relay, as answers of the peer');
});

// Every datagram from a new application address and port opens a session with a socket of its
// own; a source inside the TUN chooses its ports, so the table and each session's backlog are
// bounded. Sent directly to an echo server on the namespace's loopback.
const limitsScript = `
const dgram = require('node:dgram');
const { readdirSync } = require('node:fs');
const src = process.argv[1];
Promise.all([import(src + 'proxy/udp.ts'), import(src + 'proxy/limits.ts'), import(src + 'packet/index.ts')]).then(async ([{ UdpRelay }, { MAX_UDP_SESSIONS }, packet]) => {
  const echo = dgram.createSocket('udp4');
  let echoed = 0;
  echo.on('message', (msg, from) => { echoed++; echo.send(msg, from.port, from.address); });
  await new Promise((r) => echo.bind(0, '127.0.0.1', r));
  const fds = () => readdirSync('/proc/self/fd').length;
  const datagram = (srcPort) => ({ family: 4, srcAddr: Buffer.from([198, 18, 1, 1]), srcPort,
    dstAddr: Buffer.from([127, 0, 0, 1]), dstPort: echo.address().port, payload: Buffer.from('q' + srcPort) });
  const settle = async (done) => { for (let i = 0; i < 200 && !done(); i++) await new Promise((r) => setTimeout(r, 50)); };
  const out = { max: MAX_UDP_SESSIONS };

  // More sources than the table holds.
  const fdsBefore = fds();
  const written = [];
  const many = new UdpRelay({ upstream: { kind: 'direct' }, write: (p) => written.push(p) });
  const sources = MAX_UDP_SESSIONS + 200;
  for (let i = 0; i < sources; i++) {
    many.handle(datagram(20000 + i));
    if (i % 100 === 99) await new Promise((r) => setTimeout(r, 20)); // paced: the echo server's receive buffer is not the test
  }
  await settle(() => many.counters.sent >= MAX_UDP_SESSIONS);
  await new Promise((r) => setTimeout(r, 300)); // room for answers that should not come
  out.many = { counters: { ...many.counters }, answered: written.length, fdsAdded: fds() - fdsBefore };
  many.close();

  // One new session, a burst before its socket is ready: what waits is bounded.
  echoed = 0;
  const burst = new UdpRelay({ upstream: { kind: 'direct' }, write: () => {} });
  for (let i = 0; i < 100; i++) burst.handle(datagram(30000));
  await settle(() => echoed >= 64);
  await new Promise((r) => setTimeout(r, 300));
  out.burst = { counters: { ...burst.counters }, echoed };
  burst.close();

  // One session sending to more remote ports than it remembers: the oldest is forgotten, and
  // its late answer is unsolicited (nothing is written for it).
  const late = dgram.createSocket('udp4');
  late.on('message', (msg, from) => setTimeout(() => late.send(msg, from.port, from.address), 1000));
  await new Promise((r) => late.bind(0, '127.0.0.1', r));
  const toLate = [];
  const spread = new UdpRelay({ upstream: { kind: 'direct' }, write: (p) => toLate.push(p) });
  spread.handle({ ...datagram(31000), dstPort: late.address().port });
  await settle(() => spread.counters.sent >= 1);
  // 256 more remote ports (nothing listens on them), each after the socket is ready.
  for (let i = 0; i < 256; i++) spread.handle({ ...datagram(31000), dstPort: 40000 + i });
  await settle(() => spread.counters.unsolicited + toLate.length >= 1); // the late answer, a second after the query
  out.spread = { counters: { ...spread.counters }, written: toLate.length };
  spread.close();
  late.close();
  echo.close();
  console.log(JSON.stringify(out));
  process.exit(0);
});
`;

test('UDP relay: sessions are capped however many source ports the application uses, a session\'s backlog before its socket is ready is bounded, and so are the remote ports it remembers', async () => {
  const ns = net.namespace('pxl');
  const r = await nsRun(ns, process.execPath, ['--import', 'tsx', '-e', limitsScript, src], 60_000);
  assert.equal(r.code, 0, r.stderr);
  const res = JSON.parse(r.stdout) as { max: number; many: { counters: Record<string, number>; answered: number; fdsAdded: number };
    burst: { counters: Record<string, number>; echoed: number }; spread: { counters: Record<string, number>; written: number } };
  console.log(`# ${JSON.stringify(res)}`);
  assert.equal(res.many.counters.sessionsOpened, res.max, 'no session past the cap');
  assert.equal(res.many.counters.dropped, 200, 'the sources past the cap are counted as drops');
  // Each session within the cap sent its datagram; answers are not all counted on, since the
  // echo server's receive buffer may overflow under load.
  assert.equal(res.many.counters.sent, res.max, 'every session within the cap sent');
  assert.ok(res.many.answered > 0 && res.many.answered === res.many.counters.received, `answers came back (${res.many.answered})`);
  assert.ok(res.many.fdsAdded <= res.max + 16, `one socket per session at most (${res.many.fdsAdded} fds added)`);
  assert.equal(res.burst.counters.sessionsOpened, 1);
  assert.equal(res.burst.echoed, 64, 'what waited for the socket was sent');
  assert.equal(res.burst.counters.dropped, 36, 'the rest of the burst was counted as dropped');
  assert.equal(res.spread.counters.sent, 257);
  assert.equal(res.spread.written, 0, 'the answer of a forgotten remote port is not written');
  assert.equal(res.spread.counters.unsolicited, 1, 'it is counted as unsolicited');
});
