// Runs inside a test namespace (test/proxy/relay.test.ts): a client, the native relay
// (SocketRelay) and a server on loopback, connected as client ⇄ [a relay b] ⇄ server, and one
// scenario between them. Prints a JSON result on stdout.
import net from 'node:net';
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { SocketRelay, type RelayEnd } from '../../src/proxy/socket-relay.js';

const fds = (): number => readdirSync('/proc/self/fd').length;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Rig {
  relay: SocketRelay;
  ends: RelayEnd[];
  /** Connects a client through the relay; resolves with both ends once the relay holds the pair. */
  connect(): Promise<{ client: net.Socket; server: net.Socket; id: number }>;
  close(): Promise<void>;
}

async function rig(opts: { heldLimit?: number; early?: Buffer } = {}): Promise<Rig> {
  const ends: RelayEnd[] = [];
  const relay = new SocketRelay({ maxPairs: 100_000, heldLimit: opts.heldLimit, onFinished: (e) => ends.push(e) });
  const waiting: ((s: net.Socket) => void)[] = [];
  // With `early`, the server speaks first, and the relay takes over only once Node has read it
  // from side b (as a proxy's reply can carry the destination's first bytes).
  const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (s) => {
    if (opts.early) s.write(opts.early);
    waiting.shift()!(s);
  });
  await new Promise<void>((r) => server.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, r));
  const adopted: ((v: { server: net.Socket; id: number }) => void)[] = [];
  const front = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (a) => {
    const b = net.connect({ port: (server.address() as net.AddressInfo).port, host: '127.0.0.1', allowHalfOpen: true });
    const got = new Promise<net.Socket>((r) => waiting.push(r));
    b.once('connect', async () => {
      const s = await got;
      while (opts.early && b.readableLength < opts.early.length) await sleep(5);
      const id = relay.adopt(a, b);
      adopted.shift()!({ server: s, id });
    });
  });
  await new Promise<void>((r) => front.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, r));
  return {
    relay, ends,
    connect: () => new Promise((resolve) => {
      const client = net.connect({ port: (front.address() as net.AddressInfo).port, host: '127.0.0.1', allowHalfOpen: true });
      client.on('error', () => {});
      adopted.push(({ server: s, id }) => { s.on('error', () => {}); resolve({ client, server: s, id }); });
    }),
    close: async () => {
      relay.close();
      await new Promise((r) => server.close(r));
      await new Promise((r) => front.close(r));
    },
  };
}

/** Reads a socket to its end: the SHA-256 and length of what came, or the error code that ended it. */
function drain(s: net.Socket): Promise<{ hash: string; length: number; error?: string }> {
  return new Promise((resolve) => {
    const h = createHash('sha256');
    let length = 0;
    s.on('data', (d: Buffer) => { h.update(d); length += d.length; });
    s.once('end', () => resolve({ hash: h.digest('hex'), length }));
    s.once('error', (e: NodeJS.ErrnoException) => resolve({ hash: '', length, error: e.code }));
    s.resume();
  });
}

function sendAll(s: net.Socket, data: Buffer, end: boolean): Promise<void> {
  return new Promise((resolve) => {
    const step = 1 << 20;
    let off = 0;
    const more = () => {
      while (off < data.length) {
        const ok = s.write(data.subarray(off, off + step));
        off += step;
        if (!ok) { s.once('drain', more); return; }
      }
      if (end) s.end(resolve); else resolve();
    };
    more();
  });
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

const scenarios: Record<string, () => Promise<unknown>> = {
  // 48 MiB each way at once; both ends compare hashes; the pair ends normally.
  async bulk() {
    const r = await rig();
    const { client, server } = await r.connect();
    const up = randomBytes(48 << 20), down = randomBytes(48 << 20);
    const [gotUp, gotDown] = await Promise.all([drain(server), drain(client), sendAll(client, up, true), sendAll(server, down, true)]);
    await sleep(100);
    const result = { upOk: gotUp.hash === sha(up), downOk: gotDown.hash === sha(down), upLength: gotUp.length, downLength: gotDown.length, ends: r.ends };
    await r.close();
    return result;
  },
  // The client ends its sending first, then still receives; and the other way round.
  async halfClose() {
    const r = await rig();
    const out: Record<string, unknown> = {};
    {
      const { client, server } = await r.connect();
      const request = randomBytes(300_000), reply = randomBytes(500_000);
      const gotRequest = drain(server);
      const gotReply = drain(client);
      await sendAll(client, request, true);
      const req = await gotRequest;  // the client's FIN reached the server
      await sendAll(server, reply, true);  // ...which can still answer
      const rep = await gotReply;
      out.clientFirst = { requestOk: req.hash === sha(request), replyOk: rep.hash === sha(reply) };
    }
    {
      const { client, server } = await r.connect();
      const greeting = randomBytes(200_000), upload = randomBytes(700_000);
      const gotGreeting = drain(client);
      const gotUpload = drain(server);
      await sendAll(server, greeting, true);
      const g = await gotGreeting;
      await sendAll(client, upload, true);
      const u = await gotUpload;
      out.serverFirst = { greetingOk: g.hash === sha(greeting), uploadOk: u.hash === sha(upload) };
    }
    await sleep(100);
    out.ends = r.ends;
    out.size = r.relay.size;
    await r.close();
    return out;
  },
  // A reset from one side reaches the other as a reset.
  async reset() {
    const r = await rig();
    const out: Record<string, unknown> = {};
    for (const who of ['client', 'server'] as const) {
      const { client, server, id } = await r.connect();
      const [from, to] = who === 'client' ? [client, server] : [server, client];
      const seen = drain(to);
      await sendAll(from, Buffer.alloc(10_000, 1), false);
      await sleep(50);
      from.resetAndDestroy();
      const got = await seen;
      await sleep(50);
      out[who] = { otherSaw: got.error ?? 'end', bytes: got.length, end: r.ends.find((e) => e.id === id) };
    }
    await r.close();
    return out;
  },
  // Bytes Node read from a socket before the handover reach the other side first, in order.
  async leftover() {
    const early = randomBytes(3000), rest = randomBytes(100_000);
    const r = await rig({ early });
    const { client, server } = await r.connect();
    const got = drain(client);
    await sendAll(server, rest, true);
    const g = await got;
    client.destroy();
    server.destroy();
    await r.close();
    return { ok: g.hash === sha(Buffer.concat([early, rest])), length: g.length };
  },
  // The server never reads: the relay holds at most one read, the client's writes stall.
  async stalled() {
    const r = await rig();
    const { client, server, id } = await r.connect();
    let accepted = 0, maxHeld = 0;
    const chunk = Buffer.alloc(1 << 20, 7);
    const stop = Date.now() + 3000;
    while (Date.now() < stop) {
      if (client.writableLength < (4 << 20)) { client.write(chunk); accepted += chunk.length; }
      maxHeld = Math.max(maxHeld, r.relay.held);
      await sleep(5);
    }
    const counts = r.relay.bytes(id);
    const result = { written: accepted, relayed: counts?.bytesAToB, maxHeld, rss: process.memoryUsage().rss };
    client.destroy();
    server.destroy();
    await r.close();
    return result;
  },
  // 2000 pairs at once, each echoing a message; then fds are back where they were.
  async many() {
    const before = fds();
    const r = await rig();
    const n = 2000;
    const pairs = await Promise.all(Array.from({ length: n }, () => r.connect()));
    const mid = r.relay.size;
    const ok = await Promise.all(pairs.map(async ({ client, server }, i) => {
      const msg = Buffer.from(`message ${i} `.repeat(100));
      const got = drain(client);
      server.on('data', (d) => server.write(d));
      server.once('end', () => server.end());
      server.resume();
      client.end(msg);
      return (await got).hash === sha(msg);
    }));
    await sleep(200);
    const result = { size: mid, echoed: ok.filter(Boolean).length, endsNormal: r.ends.filter((e) => e.failed === null).length };
    await r.close();
    await sleep(200);
    return { ...result, fdsBefore: before, fdsAfter: fds() };
  },
  // Pairs still open when the set closes, and pairs dropped by the caller, release their fds.
  async fds() {
    const before = fds();
    const r = await rig();
    const pairs = await Promise.all(Array.from({ length: 200 }, () => r.connect()));
    const during = fds();
    for (const p of pairs.slice(0, 100)) r.relay.drop(p.id);
    const afterDrop = fds();
    for (const p of pairs) { p.client.destroy(); p.server.destroy(); }
    await r.close();
    await sleep(200);
    return { before, during, afterDrop, after: fds() };
  },
};

const which = process.argv[2]!;
scenarios[which]!().then((r) => { console.log(JSON.stringify(r)); process.exit(0); },
  (e) => { console.error(e); process.exit(1); });
