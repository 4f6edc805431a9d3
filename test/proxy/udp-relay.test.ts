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
