// `--metrics [ADDR:]PORT`: Prometheus text format on GET /metrics and nothing else. It runs on
// the event loop the data path uses, so what a client can make it do is bounded: small request
// heads, no bodies, timeouts on slow or idle connections, few connections at once, and at most
// one rendering a second however often it is asked (the others get the last one).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { isIP, type Socket } from 'node:net';
import { TuntapError } from '../errors.js';
import { renderFamilies, type MetricFamily } from './prometheus.js';

export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

export interface MetricsAddress {
  host: string;
  port: number;
}

export interface MetricsServerOptions {
  /** The families of one scrape. */
  collect: () => MetricFamily[];
  /** A rendering is reused for this long (default 1000 ms). */
  minRenderIntervalMs?: number;
  /** Connections served at once; more are closed on arrival (default 16). */
  maxConnections?: number;
  /** Told when collecting failed (the scrape gets a 500). */
  onError?: (e: unknown) => void;
}

// Limits on what a client may send and how long it may take.
const MAX_HEADER_BYTES = 8192;
const HEADERS_TIMEOUT_MS = 5000;
const REQUEST_TIMEOUT_MS = 10_000;
const IDLE_TIMEOUT_MS = 5000;

/**
 * Parses `[ADDR:]PORT`: a port alone listens on 127.0.0.1; an IPv6 address goes in brackets.
 * Throws a RangeError saying what is wrong.
 */
export function parseMetricsAddress(text: string): MetricsAddress {
  const m = /^(?:(?:\[([^\]]+)\]|([^:[\]]+)):)?(\d{1,5})$/.exec(text);
  if (!m) throw new RangeError(`"${text}" is not [ADDRESS:]PORT (an IPv6 address in brackets: [::1]:9586)`);
  const port = Number(m[3]);
  if (port < 1 || port > 65535) throw new RangeError(`port ${m[3]} is not 1..65535`);
  const host = m[1] ?? m[2] ?? '127.0.0.1';
  const family = isIP(host);
  if (family === 0 || (m[1] !== undefined && family !== 6)) throw new RangeError(`"${host}" is not an IP address`);
  return { host, port };
}

/** Whether `host` is a loopback address (the metrics are then readable only on this host). */
export function isLoopback(host: string): boolean {
  return /^127\./.test(host) || host === '::1';
}

export class MetricsServer {
  private rendered = '';
  private renderedAt = -Infinity;
  private collect: () => MetricFamily[];

  private constructor(private readonly server: Server, readonly address: MetricsAddress, private readonly opts: MetricsServerOptions) {
    this.collect = opts.collect;
  }

  static async listen(address: MetricsAddress, opts: MetricsServerOptions): Promise<MetricsServer> {
    let self: MetricsServer | undefined;
    const server = createServer({
      maxHeaderSize: MAX_HEADER_BYTES,
      headersTimeout: HEADERS_TIMEOUT_MS,
      requestTimeout: REQUEST_TIMEOUT_MS,
      keepAliveTimeout: IDLE_TIMEOUT_MS,
      // How often the two timeouts above are checked (Node's default is every 30 s).
      connectionsCheckingInterval: 1000,
    }, (req, res) => self!.handle(req, res));
    server.maxConnections = opts.maxConnections ?? 16;
    // Node's head timeout starts with the first byte, and a socket timeout set on the server
    // does not fire alongside it: a connection that sends nothing gets a deadline of its own.
    const silent = new WeakMap<Socket, NodeJS.Timeout>();
    server.on('connection', (sock: Socket) => {
      silent.set(sock, setTimeout(() => sock.destroy(), HEADERS_TIMEOUT_MS));
      sock.once('close', () => clearTimeout(silent.get(sock)));
    });
    server.on('request', (req: IncomingMessage) => clearTimeout(silent.get(req.socket)));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: address.host, port: address.port, exclusive: true }, () => {
        server.off('error', reject);
        resolve();
      });
    }).catch((e: NodeJS.ErrnoException) => {
      const where = `${address.host.includes(':') ? `[${address.host}]` : address.host}:${address.port}`;
      const why = e.code === 'EADDRINUSE' ? 'the port is in use'
        : e.code === 'EADDRNOTAVAIL' ? 'no interface here has that address'
          : e.code === 'EACCES' ? 'permission denied' : e.message;
      throw new TuntapError(e.syscall ?? 'listen', Math.abs(e.errno ?? 0), `serving metrics on ${where}: ${why} (${e.syscall ?? 'listen'}: ${e.code})`, { cause: e });
    });
    self = new MetricsServer(server, { host: address.host, port: (server.address() as { port: number }).port }, opts);
    return self;
  }

  /** Replaces what a scrape collects (the commands start serving before their service is up). */
  serve(collect: () => MetricFamily[]): void {
    this.collect = collect;
    this.renderedAt = -Infinity;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '').split('?')[0];
    if (req.method !== 'GET' || path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8', connection: 'close' });
      res.end('only GET /metrics is served here\n');
      return;
    }
    const length = req.headers['content-length'];
    if ((length !== undefined && length !== '0') || req.headers['transfer-encoding'] !== undefined) {
      res.writeHead(400, { 'content-type': 'text/plain; charset=utf-8', connection: 'close' });
      res.end('a scrape has no body\n');
      return;
    }
    const now = performance.now();
    if (now - this.renderedAt >= (this.opts.minRenderIntervalMs ?? 1000)) {
      try {
        this.rendered = renderFamilies(this.collect());
        this.renderedAt = now;
      } catch (e) {
        this.opts.onError?.(e);
        res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8', connection: 'close' });
        res.end('collecting the metrics failed\n');
        return;
      }
    }
    res.writeHead(200, { 'content-type': METRICS_CONTENT_TYPE, 'content-length': Buffer.byteLength(this.rendered) });
    res.end(this.rendered);
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
  }
}
