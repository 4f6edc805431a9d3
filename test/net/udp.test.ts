// UdpSocket against the real kernel: two namespaces over a veth, IPv4 and IPv6, batches both
// ways, UDP GSO received as separate datagrams by an independent receiver (Python's socket
// module), GRO coalescing, many-destination sendmmsg, typed errors, and no leaks on close.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { TestNet, nsExec, nsRun, nsSpawn } from '../helpers/netns.js';
import { UdpSocket, EndpointTable } from '../../src/net/index.js';
import { TuntapError } from '../../src/errors.js';
import type { DatagramBatch } from '../../src/net/index.js';

const net = new TestNet();
let nsA = '';
let nsB = '';
let vethB = '';
const A4 = '198.18.0.1';
const B4 = '198.18.0.2';
const A6 = 'fd00:0:11::1';
const B6 = 'fd00:0:11::2';

before(() => {
  nsA = net.namespace('udpa');
  nsB = net.namespace('udpb');
  const { a, b } = net.veth(nsA, nsB);
  vethB = b;
  net.configure(nsA, a, { addresses: [`${A4}/30`, { address: `${A6}/64`, nodad: true }] });
  net.configure(nsB, b, { addresses: [`${B4}/30`, { address: `${B6}/64`, nodad: true }] });
});
after(() => net.cleanup());

function payload(i: number, size = 100): Buffer {
  const b = Buffer.alloc(size, i & 0xff);
  b.writeUInt32BE(i, 0);
  return b;
}

/** Collects `total` datagrams (copied) with their source keys, counting batches. */
async function collect(sock: UdpSocket, total: number, timeoutMs = 5000): Promise<{ data: Buffer[]; sources: string[]; batches: number; messages: number }> {
  const data: Buffer[] = [];
  const sources: string[] = [];
  let batches = 0;
  let messages = 0;
  const timer = setTimeout(() => void sock.close(), timeoutMs);
  try {
    for await (const batch of sock) {
      batches++;
      messages += batch.messages;
      for (let i = 0; i < batch.count; i++) {
        data.push(Buffer.from(batch.datagram(i)));
        const ep = batch.endpoint(i);
        sources.push(`${ep.address}:${ep.port}`);
      }
      if (data.length >= total) break;
    }
  } finally {
    clearTimeout(timer);
  }
  return { data, sources, batches, messages };
}

for (const [family, a, b] of [[4, A4, B4], [6, A6, B6]] as const) {
  test(`IPv${family}: a batch goes out in one sendmmsg, arrives in batches, and echoes back to its sources`, async () => {
    const sa = UdpSocket.open({ netns: nsA, bind: { address: a } });
    const sb = UdpSocket.open({ netns: nsB, bind: { address: b } });
    try {
      assert.equal(sa.family, family);
      const pa = sa.localEndpoint;
      const pb = sb.localEndpoint;
      assert.equal(pb.address, b);
      assert.ok(pb.port > 0);
      const count = 48;
      const out = Array.from({ length: count }, (_, i) => payload(i, 64 + i));
      const received = collect(sb, count);
      await sa.sendBatch(out, { address: b, port: pb.port });
      assert.equal(sa.stats.sent, count);
      assert.equal(sa.stats.sendCalls, 1, 'one native send for the whole batch');
      const got = await received;
      assert.deepEqual(got.data, out);
      assert.ok(got.sources.every((s) => s === `${pa.address}:${pa.port}`));
      assert.ok(got.batches < count, `received in ${got.batches} batches`);

      // Echo: B sends each datagram of a batch back to its source straight from the receive buffer.
      const echoed = collect(sa, count);
      const echoer = UdpSocket.open({ netns: nsB, bind: { address: b } });
      const table = new EndpointTable();
      const bp = echoer.localEndpoint.port;
      await sa.sendBatch(out, { address: b, port: bp });
      let seen = 0;
      for await (const batch of echoer) {
        const ids = new Uint32Array(batch.count);
        for (let i = 0; i < batch.count; i++) ids[i] = table.addRecord(batch.endpoints, batch.endpointOffset(i));
        await echoer.sendPacked(batch, { table, ids });
        seen += batch.count;
        if (seen >= count) break;
      }
      assert.equal(table.count, 1);
      assert.deepEqual(table.get(0), { address: pa.address, port: pa.port, family });
      assert.deepEqual((await echoed).data, out);
      await echoer.close();
    } finally {
      await sa.close();
      await sb.close();
    }
  });
}

test('UDP GSO: one send of many equal segments reaches a plain receiver as separate datagrams', async () => {
  const port = 40000 + (process.pid % 1000);
  const segments = 40;
  const script = [
    'import socket, json, sys',
    's = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)',
    `s.bind(("${B4}", ${port}))`,
    's.settimeout(5)',
    'print("ready", flush=True)',
    'sizes = []',
    'try:',
    `    while len(sizes) < ${segments + 1}:`,
    '        d = s.recv(70000)',
    '        sizes.append([len(d), d[0]])',
    'except socket.timeout:',
    '    pass',
    'print(json.dumps(sizes), flush=True)',
  ].join('\n');
  const child = nsSpawn(nsB, 'python3', ['-c', script]);
  let output = '';
  child.stdout!.on('data', (d) => { output += d; });
  const exited = new Promise((resolve) => child.once('close', resolve));
  await new Promise<void>((resolve) => {
    const check = () => (output.includes('ready') ? resolve() : setTimeout(check, 20));
    check();
  });
  const sa = UdpSocket.open({ netns: nsA, bind: { address: A4 } });
  try {
    const datagrams = Array.from({ length: segments }, (_, i) => Buffer.alloc(1000, i));
    datagrams.push(Buffer.alloc(300, 0xee));
    await sa.sendBatch(datagrams, { address: B4, port }, { gsoSize: 1000 });
    assert.equal(sa.stats.sent, segments + 1);
    assert.equal(sa.stats.sendMessages, 1, 'all datagrams went out in one GSO message');
    await exited;
    const sizes = JSON.parse(output.split('\n')[1]!) as [number, number][];
    assert.equal(sizes.length, segments + 1);
    assert.deepEqual(sizes.slice(0, segments), datagrams.slice(0, segments).map((_, i) => [1000, i]));
    assert.deepEqual(sizes[segments], [300, 0xee]);
  } finally {
    await sa.close();
  }
});

test('UDP GRO: a GSO burst arrives coalesced and is split back into the original datagrams', async () => {
  const sa = UdpSocket.open({ netns: nsA, bind: { address: A4 } });
  const sb = UdpSocket.open({ netns: nsB, bind: { address: B4 }, gro: true, recvBufferSize: 4 << 20 });
  try {
    const port = sb.localEndpoint.port;
    const total = 128;
    const datagrams = Array.from({ length: total }, (_, i) => payload(i, 1200));
    const received = collect(sb, total);
    await sa.sendBatch(datagrams, { address: B4, port }, { gsoSize: 1200 });
    const got = await received;
    assert.deepEqual(got.data, datagrams);
    assert.ok(sb.stats.received === total);
    // Each GRO message carried many datagrams: far fewer receive messages than datagrams.
    assert.ok(sa.stats.sendMessages <= 2 + total / 64, `send messages ${sa.stats.sendMessages}`);
    assert.ok(got.messages <= total / 8, `${total} datagrams arrived in ${got.messages} messages`);
  } finally {
    await sa.close();
    await sb.close();
  }
});

test('sendmmsg to many destinations in one call, by endpoint id', async () => {
  const sa = UdpSocket.open({ netns: nsA, bind: { address: A4 } });
  const receivers = [0, 1, 2].map(() => UdpSocket.open({ netns: nsB, bind: { address: B4 } }));
  try {
    const table = new EndpointTable();
    for (const r of receivers) table.add(B4, r.localEndpoint.port);
    const total = 30;
    const ids = new Uint32Array(total).map((_, i) => i % 3);
    const datagrams = Array.from({ length: total }, (_, i) => payload(i));
    const results = receivers.map((r) => collect(r, total / 3));
    await sa.sendBatch(datagrams, { table, ids });
    assert.equal(sa.stats.sendCalls, 1);
    const got = await Promise.all(results);
    got.forEach((g, r) => assert.deepEqual(g.data, datagrams.filter((_, i) => i % 3 === r)));
  } finally {
    await sa.close();
    for (const r of receivers) await r.close();
  }
});

test("gsoSize 'auto' groups runs of equal size per destination; other sizes go out alone", async () => {
  const sa = UdpSocket.open({ netns: nsA, bind: { address: A4 } });
  const receivers = [0, 1].map(() => UdpSocket.open({ netns: nsB, bind: { address: B4 } }));
  try {
    const table = new EndpointTable();
    for (const r of receivers) table.add(B4, r.localEndpoint.port);
    // To r0: 5 x 700 + 1 x 300 (one GSO message), 1 x 900 (alone); to r1: 4 x 400 (one message).
    const sizes = [700, 700, 700, 700, 700, 300, 900, 400, 400, 400, 400];
    const dest = [0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1];
    const datagrams = sizes.map((n, i) => payload(i, n));
    const results = receivers.map((r, k) => collect(r, dest.filter((d) => d === k).length));
    await sa.sendBatch(datagrams, { table, ids: Uint32Array.from(dest) }, { gsoSize: 'auto' });
    assert.equal(sa.stats.sent, sizes.length);
    assert.equal(sa.stats.sendMessages, 3);
    const got = await Promise.all(results);
    got.forEach((g, k) => assert.deepEqual(g.data, datagrams.filter((_, i) => dest[i] === k)));
  } finally {
    await sa.close();
    for (const r of receivers) await r.close();
  }
});

test('sendBatch waits for POLLOUT when the send buffer is full and loses nothing', async () => {
  // A second, rate-limited link: tbf holds packets queued, charged to the sender's small buffer.
  const { a, b } = net.veth(nsA, nsB);
  net.configure(nsA, a, { addresses: ['198.18.0.5/30'] });
  net.configure(nsB, b, { addresses: ['198.18.0.6/30'] });
  nsExec(nsA, 'tc', 'qdisc', 'add', 'dev', a, 'root', 'tbf', 'rate', '100mbit', 'burst', '16kb', 'limit', '8mb');
  const sa = UdpSocket.open({ netns: nsA, bind: { address: '198.18.0.5' }, sendBufferSize: 16 << 10 });
  const sb = UdpSocket.open({ netns: nsB, bind: { address: '198.18.0.6' }, recvBufferSize: 8 << 20 });
  try {
    const total = 1000;
    const half = total / 2;
    const datagrams = Array.from({ length: total }, (_, i) => payload(i, 1000));
    const received = collect(sb, total, 10_000);
    const to = { address: '198.18.0.6', port: sb.localEndpoint.port };
    const first = sa.sendBatch(datagrams.slice(0, half), to);
    // The second half queues behind the first, packed, and the caller reuses its offset and
    // length arrays at once: the queued send must have kept copies.
    const offsets = Uint32Array.from({ length: half }, (_, i) => i * 1000);
    const lengths = new Uint32Array(half).fill(1000);
    sa.post({ buffer: Buffer.concat(datagrams.slice(half)), offsets, lengths, count: half }, to);
    offsets.fill(0);
    lengths.fill(1);
    await first;
    assert.deepEqual((await received).data, datagrams);
    assert.equal(sa.stats.sent, total);
    assert.equal(sa.stats.sendErrors, 0);
    assert.ok(sa.stats.writeWaits > 0, 'the sender never had to wait: no backpressure seen');
  } finally {
    await sa.close();
    await sb.close();
  }
});

test('connected sockets, socket options and typed errors', async () => {
  const sb = UdpSocket.open({ netns: nsB, bind: { address: B4 }, mark: 0x51, bindToDevice: vethB });
  const sa = UdpSocket.open({ netns: nsA, connect: { address: B4, port: sb.localEndpoint.port }, recvBufferSize: 8 << 20, sendBufferSize: 8 << 20 });
  try {
    assert.equal(sb.mark, 0x51);
    // FORCE lets root exceed net.core.rmem_max; the kernel reports double the request.
    assert.equal(sa.recvBufferSize, 16 << 20);
    assert.equal(sa.sendBufferSize, 16 << 20);
    const got = collect(sb, 1);
    await sa.send(Buffer.from('hello'));
    assert.equal((await got).data[0]!.toString(), 'hello');

    assert.throws(() => UdpSocket.open({ netns: nsA, bind: { address: B4 } }),
      (e: unknown) => e instanceof TuntapError && e.code === 'EADDRNOTAVAIL' && e.syscall === 'bind');
    assert.throws(() => UdpSocket.open({ netns: nsB, bind: { address: B4, port: sb.localEndpoint.port } }),
      (e: unknown) => e instanceof TuntapError && e.code === 'EADDRINUSE' && /already in use/.test(e.message));
    assert.throws(() => UdpSocket.open({ netns: nsA, bindToDevice: 'nosuchdev0' }),
      (e: unknown) => e instanceof TuntapError && e.code === 'ENODEV');
    assert.throws(() => UdpSocket.open({ bind: { address: 'not-an-ip' } }), TypeError);

    // Nothing listens on port 9: the ICMP port-unreachable makes a later send fail, counted not thrown.
    const lonely = UdpSocket.open({ netns: nsA, connect: { address: B4, port: 9 } });
    await lonely.send(Buffer.from('x'));
    await new Promise((r) => setTimeout(r, 100));
    await lonely.send(Buffer.from('y'));
    assert.equal(lonely.stats.sendErrors, 1);
    assert.equal(lonely.stats.lastSendError?.code, 'ECONNREFUSED');
    await lonely.close();

    // post(): no promise. The caller's offset arrays may change as soon as it returns.
    const posted = collect(sb, 2);
    const offsets = Uint32Array.of(0, 3);
    const lengths = Uint32Array.of(3, 4);
    sa.post({ buffer: Buffer.from('onetwo!'), offsets, lengths, count: 2 });
    offsets.fill(0);
    lengths.fill(0);
    assert.deepEqual((await posted).data.map(String), ['one', 'two!']);

    await sa.close();
    await assert.rejects(sa.send(Buffer.from('late')), (e: unknown) => e instanceof TuntapError && e.code === 'EBADF');
    // A post that fails as a whole (closed socket) is counted, not thrown.
    const errors = sa.stats.sendErrors;
    sa.post({ buffer: Buffer.from('late'), offsets: Uint32Array.of(0), lengths: Uint32Array.of(4), count: 1 });
    await new Promise((r) => setImmediate(r));
    assert.equal(sa.stats.sendErrors, errors + 1);
    assert.equal(sa.stats.lastSendError?.code, 'EBADF');
  } finally {
    await sa.close();
    await sb.close();
  }
});

test('an ICMP error for an earlier send is counted and the waiting receive carries on', async () => {
  const first = UdpSocket.open({ netns: nsB, bind: { address: B4 } });
  const port = first.localEndpoint.port;
  const sa = UdpSocket.open({ netns: nsA, connect: { address: B4, port } });
  try {
    const waiting = collect(sa, 1);
    await first.close();
    await sa.send(Buffer.from('into the void')); // port closed now: ICMP port unreachable comes back
    await new Promise((r) => setTimeout(r, 100));
    const second = UdpSocket.open({ netns: nsB, bind: { address: B4, port } });
    await second.send(Buffer.from('reply'), sa.localEndpoint);
    const got = await waiting;
    assert.equal(got.data[0]?.toString(), 'reply');
    assert.equal(sa.stats.peerErrors, 1);
    assert.equal(sa.stats.lastPeerError, 'ECONNREFUSED');
    await second.close();
  } finally {
    await sa.close();
  }
});

test('oversize datagrams are counted and dropped; an abort ends iteration and keeps the socket', async () => {
  const sa = UdpSocket.open({ netns: nsA, bind: { address: A4 } });
  const sb = UdpSocket.open({ netns: nsB, bind: { address: B4 }, maxDatagramSize: 512 });
  try {
    const to = { address: B4, port: sb.localEndpoint.port };
    await sa.sendBatch([Buffer.alloc(1000, 1), Buffer.from('fits'), Buffer.alloc(513, 2)], to);
    const controller = new AbortController();
    const seen: string[] = [];
    setTimeout(() => controller.abort(), 300);
    for await (const batch of sb.batches({ signal: controller.signal })) {
      for (const d of batch) seen.push(d.toString());
    }
    assert.deepEqual(seen, ['fits']);
    assert.equal(sb.stats.truncated, 2);
    // The abort ended only the wait: the socket still receives.
    assert.ok(!sb.closed);
    const again = collect(sb, 1);
    await sa.send(Buffer.from('after'), to);
    assert.equal((await again).data[0]?.toString(), 'after');
  } finally {
    await sa.close();
    await sb.close();
  }
});

test('closing releases every fd and ends a waiting receive or receiveEach loop', async () => {
  const fds = () => readdirSync('/proc/self/fd').length;
  const before = fds();
  for (let i = 0; i < 200; i++) {
    const s = UdpSocket.open({ netns: nsA, bind: { address: A4 }, gro: i % 2 === 0 });
    if (i % 4 === 1) {
      // So must closing under a receiveEach loop, whose wait stays armed across wake-ups.
      const ends: unknown[] = [];
      s.receiveEach(() => {}, (err) => ends.push(err));
      await s.close();
      assert.deepEqual(ends, [null], 'the loop ended once, without an error');
      continue;
    }
    const waiting: Promise<DatagramBatch | null> = s.receive();
    await s.close();
    assert.equal(await waiting, null);
  }
  // Handles are freed on the next loop turn.
  await new Promise((r) => setImmediate(r));
  assert.equal(fds(), before);
  const r = await nsRun(nsA, 'true', []);
  assert.equal(r.code, 0);
});

test('a worker that ends with a socket open and a receive waiting releases it', async () => {
  const fds = () => readdirSync('/proc/self/fd').length;
  // Warm-up: the first worker loads modules and opens files that stay cached.
  const code = `
    const { parentPort, workerData } = require('node:worker_threads');
    import(workerData.tsxApi).then(({ register }) => { register(); return import(workerData.net); }).then(({ UdpSocket }) => {
      const s = UdpSocket.open({ bind: { address: '127.0.0.1' } });
      void s.receive();
      parentPort.postMessage(s.fd);
    });`;
  const workerData = { tsxApi: import.meta.resolve('tsx/esm/api'), net: new URL('../../src/net/index.ts', import.meta.url).href };
  const runOne = async () => {
    const w = new Worker(code, { eval: true, workerData });
    const fd = await new Promise<number>((resolve, reject) => { w.once('message', resolve); w.once('error', reject); });
    assert.ok(fd > 2);
    await w.terminate();
  };
  await runOne();
  const before = fds();
  for (let i = 0; i < 3; i++) await runOne();
  assert.equal(fds(), before);
});

test('receiveEach: every datagram arrives through the callback loop; one reader only; close ends it once', async () => {
  const ra = UdpSocket.open({ netns: nsA, bind: { address: A4 } });
  const sb = UdpSocket.open({ netns: nsB, bind: { address: B4 } });
  const port = ra.localEndpoint.port;
  const got: number[] = [];
  let ends = 0;
  let endError: unknown = 'not ended';
  let allIn!: () => void;
  const arrived = new Promise<void>((r) => { allIn = r; });
  const ended = new Promise<void>((resolve) => {
    ra.receiveEach((batch) => {
      for (let i = 0; i < batch.count; i++) {
        got.push(batch.datagram(i).readUInt32BE(0));
        assert.equal(batch.endpoint(i).address, B4);
      }
      if (got.length >= 300) allIn();
    }, (err) => { ends++; endError = err; resolve(); });
  });
  const timer = setTimeout(() => void ra.close(), 5000);
  try {
    await assert.rejects(ra.receive(), /only one receive/);
    for (let k = 0; k < 3; k++) {
      await sb.sendBatch(Array.from({ length: 100 }, (_, i) => payload(k * 100 + i)), { address: A4, port });
      await new Promise((r) => setTimeout(r, 20));
    }
    // The timer's close ends the loop: a lost datagram fails here instead of hanging the test.
    await Promise.race([arrived, ended]);
    assert.deepEqual(got, Array.from({ length: 300 }, (_, i) => i));
  } finally {
    clearTimeout(timer);
    await ra.close();
    await sb.close();
  }
  await ended;
  assert.equal(ends, 1);
  assert.equal(endError, null);
});
