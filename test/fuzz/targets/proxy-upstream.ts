// Proxy layer, upstream side: the replies of a hostile SOCKS5, SOCKS4a or HTTP proxy. The reply
// parsers live inside connectThrough and socks5UdpAssociate and read from a socket, so each input
// is served by a real TCP server on 127.0.0.1 — inside a private network namespace that only the
// fuzz worker's thread enters — which writes the input as its whole answer and closes its side.
// The only error allowed out is UpstreamError; since the proxy has said everything and closed,
// waiting for the handshake timeout is a finding too.
import net from 'node:net';
import { isMainThread } from 'node:worker_threads';
import { connectThrough, socks5UdpAssociate, UpstreamError, type Upstream } from '../../../src/proxy/upstream.js';
import { Netns } from '../../../src/netns.js';
import { addon } from '../../../src/native.js';
import { configureInterface } from '../../../src/netlink/index.js';
import { Violation, type BytesTarget, type Instance, type TextTarget } from '../framework.js';

let isolated = false;

/**
 * Moves the calling worker thread (not the process) into a new network namespace with loopback
 * up, so the test servers and their traffic exist only there. It vanishes when the thread ends.
 */
function isolateThread(): void {
  if (isolated) return;
  if (isMainThread) throw new Error('the upstream targets run in the fuzz worker (test/fuzz/job.ts), never on the main thread');
  const ns = Netns.create();
  try {
    (addon as { setns(fd: number): void }).setns(ns.fd);
  } finally {
    ns.close();
  }
  configureInterface('lo', { up: true });
  isolated = true;
}

/** A proxy that answers each connection with the next queued reply, then closes its side. */
class ReplyServer {
  private readonly replies: Buffer[] = [];
  private readonly sockets = new Set<net.Socket>();

  private constructor(private readonly server: net.Server, readonly port: number) {
    server.on('connection', (sock) => {
      this.sockets.add(sock);
      sock.on('close', () => this.sockets.delete(sock));
      sock.on('error', () => sock.destroy());
      sock.on('data', () => { /* the client's requests: read and ignored */ });
      sock.on('end', () => sock.destroy());
      sock.end(this.replies.shift() ?? Buffer.alloc(0));
    });
  }

  static async start(): Promise<ReplyServer> {
    isolateThread();
    const server = net.createServer({ allowHalfOpen: true });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    return new ReplyServer(server, (server.address() as net.AddressInfo).port);
  }

  serve(reply: Buffer): void {
    this.replies.push(reply);
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/**
 * Handshake deadlines: far more than a loopback handshake needs, and small, since every input
 * that stalls waits this long. HTTP gets more: its head is read a byte at a time (see F7).
 */
const SOCKS_HANDSHAKE_MS = 150;
const HTTP_HANDSHAKE_MS = 2000;
const isTyped = (e: unknown) => e instanceof UpstreamError;

/** Runs one handshake against `server` serving `reply`; a stall until the timeout becomes a Violation. */
async function handshake(server: ReplyServer, reply: Buffer,
  run: (up: (kind: Upstream['kind'], auth: boolean) => Upstream) => Promise<net.Socket>): Promise<string> {
  server.serve(reply);
  const up = (kind: Upstream['kind'], auth: boolean): Upstream => ({
    kind, host: '127.0.0.1', port: server.port, ...(auth ? { username: 'fuzz', password: 'pass' } : {}),
  });
  try {
    const sock = await run(up);
    sock.destroy();
    return 'connected';
  } catch (e) {
    if (e instanceof UpstreamError && e.reason === 'timeout') {
      throw new Violation(`the handshake waited for its timeout although the proxy had answered and closed (${e.message})`);
    }
    throw e;
  }
}

function upstreamSession(run: (server: ReplyServer, input: Uint8Array) => Promise<string>): () => Promise<Instance<Uint8Array>> {
  return async () => {
    const server = await ReplyServer.start();
    return { run: (input) => run(server, input), close: () => server.close() };
  };
}

const dest = { host: '198.18.200.1', port: 443 };
const u16 = (n: number) => [n >> 8, n & 0xff];

// SOCKS5 input layout: [mode][the proxy's bytes]. Mode bit 0: we offer username/password;
// bit 1: UDP ASSOCIATE instead of CONNECT; bit 2: the destination is a host name.
const socks5Corpus = [
  [0, 5, 0, 5, 0, 0, 1, 198, 18, 5, 1, ...u16(40000)],
  [1, 5, 2, 1, 0, 5, 0, 0, 1, 198, 18, 5, 1, ...u16(40000)],
  [2, 5, 0, 5, 0, 0, 1, 0, 0, 0, 0, ...u16(5000)],
  [6, 5, 0, 5, 0, 0, 4, 0xfd, ...new Array(14).fill(0), 1, ...u16(5000)],
  [4, 5, 0, 5, 0, 0, 3, 11, ...Buffer.from('relay.local'), ...u16(1080)],
  [0, 5, 0, 5, 5, 0, 1, 0, 0, 0, 0, 0, 0],
  [1, 5, 2, 1, 1],
  [0, 5, 0xff],
].map((b) => Uint8Array.from(b));

export const socks5ReplyTarget: BytesTarget = {
  kind: 'bytes', name: 'proxy-socks5-reply', layer: 'proxy', weight: 0.1, maxLength: 600, timeoutMs: 10 * SOCKS_HANDSHAKE_MS,
  about: 'a SOCKS5 proxy\'s method choice, auth status and CONNECT / UDP ASSOCIATE reply, over a real TCP connection',
  isTyped,
  corpus: () => socks5Corpus,
  create: upstreamSession((server, input) => handshake(server, Buffer.from(input.subarray(1)), async (up) => {
    const mode = input[0] ?? 0;
    const upstream = up('socks5', (mode & 1) !== 0);
    if (mode & 2) return (await socks5UdpAssociate(upstream, { timeoutMs: SOCKS_HANDSHAKE_MS })).control;
    return connectThrough(upstream, mode & 4 ? { host: 'www.example.test', port: 443 } : dest, { timeoutMs: SOCKS_HANDSHAKE_MS });
  })),
};

export const socks4aReplyTarget: BytesTarget = {
  kind: 'bytes', name: 'proxy-socks4a-reply', layer: 'proxy', weight: 0.05, maxLength: 64, timeoutMs: 10 * SOCKS_HANDSHAKE_MS,
  about: 'a SOCKS4a proxy\'s reply, over a real TCP connection',
  isTyped,
  corpus: () => [Uint8Array.from([0, 0x5a, 0, 0, 0, 0, 0, 0]), Uint8Array.from([0, 0x5b, 0, 0, 0, 0, 0, 0])],
  create: upstreamSession((server, input) =>
    handshake(server, Buffer.from(input), (up) => connectThrough(up('socks4a', false), dest, { timeoutMs: SOCKS_HANDSHAKE_MS }))),
};

export const httpReplyTarget: TextTarget = {
  kind: 'text', name: 'proxy-http-reply', layer: 'proxy', weight: 0.1, maxLength: 20000, timeoutMs: 3 * HTTP_HANDSHAKE_MS,
  about: 'an HTTP proxy\'s answer to CONNECT (status line, headers, body bytes), over a real TCP connection',
  isTyped,
  dictionary: ['HTTP/1.1', 'HTTP/1.0', 'HTTP/2', '200', '407', '403', '502', 'Connection established',
    'Proxy-Authenticate: Basic realm="x"', 'Content-Length: 5', '\r\n', '\r\n\r\n', ' '],
  corpus: () => ['HTTP/1.1 200 Connection established\r\n\r\n', 'HTTP/1.0 200 OK\r\nProxy-Agent: fuzz\r\n\r\nearly bytes',
    'HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="x"\r\n\r\n',
    'HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n', 'HTTP/1.1 403 Forbidden\r\n\r\n'],
  create: async () => {
    const server = await ReplyServer.start();
    return {
      run: (text: string) => handshake(server, Buffer.from(text, 'utf8'),
        (up) => connectThrough(up('http', true), dest, { timeoutMs: HTTP_HANDSHAKE_MS })),
      close: () => server.close(),
    };
  },
};
