// Upstream proxies: how one relayed connection reaches its destination. Each kind speaks its
// handshake over a plain net.Socket and hands back that socket once it carries the destination's
// byte stream: SOCKS5 (RFC 1928, username/password RFC 1929), SOCKS4a, HTTP CONNECT (Basic
// auth), direct, or reject. The messages themselves are packet's codecs (socks.ts,
// http-connect.ts); here they are sent and read, and what goes wrong becomes an UpstreamError.
// Destination names are checked (names.ts) before any handshake carries them, and credentials
// never appear in a message.
import net from 'node:net';
import { isDestinationHost, printable } from './names.js';
import { UserError } from '../errors.js';
import { PacketParseError } from '../packet/errors.js';
import {
  SOCKS4_REPLY_LENGTH, SOCKS5_CHOICE_LENGTH, Socks5Command, Socks5Method, Socks5ReplyCode, decodeSocks4Reply,
  decodeSocks5Choice, decodeSocks5Reply, encodeSocks4aConnect, encodeSocks5Credentials, encodeSocks5Greeting,
  encodeSocks5Request, socks5CredentialsAccepted, type HostPort, type Socks5Reply,
} from '../packet/socks.js';
import { encodeHttpConnect, httpHeadLength, parseHttpStatus } from '../packet/http-connect.js';

export type UpstreamKind = 'socks5' | 'socks4a' | 'http' | 'direct' | 'reject';

export interface Upstream {
  kind: UpstreamKind;
  host: string;
  port: number;
  username?: string;
  password?: string;
}

/** Where a relayed connection goes: a host name (fake-IP DNS mode) or an address. */
export type Destination = HostPort;

/**
 * A failure to reach a destination through an upstream; `refused` says the destination said no,
 * `invalid` that the destination is no host name; `code` is the errno name of a socket failure.
 */
export class UpstreamError extends UserError {
  constructor(message: string,
    readonly reason: 'refused' | 'proxy-down' | 'auth' | 'protocol' | 'timeout' | 'rejected' | 'unreachable' | 'invalid',
    readonly code?: string) {
    super(message);
    this.name = 'UpstreamError';
  }
}

const defaultPorts: Record<string, number> = { socks5: 1080, socks5h: 1080, socks4a: 1080, socks4: 1080, http: 8080 };

/** A proxy URL with whatever stands between `user:` and `@` replaced, for messages. */
export function redactProxyUrl(text: string): string {
  // The last '@' of the authority ends the user information, as URL parsing has it.
  return text.replace(/^([^:/]*:\/\/[^:@/]*:)[^/?#]*@/, '$1***@');
}

/**
 * Parses `socks5://user:pass@host:port`, `socks4a://host:port`, `http://user:pass@host:port`,
 * `direct://`, `reject://`. Error messages show the URL with its password replaced.
 */
export function parseUpstream(text: string): Upstream {
  if (text === 'direct' || text === 'direct://') return { kind: 'direct', host: '', port: 0 };
  if (text === 'reject' || text === 'reject://') return { kind: 'reject', host: '', port: 0 };
  const shown = redactProxyUrl(text);
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new TypeError(`"${shown}" is not a proxy URL (like socks5://user:pass@host:1080 or http://host:3128)`);
  }
  const scheme = url.protocol.replace(/:$/, '');
  const kind: UpstreamKind | undefined = scheme === 'socks5' || scheme === 'socks5h' ? 'socks5'
    : scheme === 'socks4a' || scheme === 'socks4' ? 'socks4a'
    : scheme === 'http' ? 'http' : undefined;
  if (!kind) throw new TypeError(`proxy scheme "${scheme}" is not supported (use socks5, socks4a or http)`);
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (!host) throw new TypeError(`proxy URL "${shown}" has no host`);
  const port = url.port ? Number(url.port) : defaultPorts[scheme]!;
  const up: Upstream = { kind, host, port };
  try {
    if (url.username) up.username = decodeURIComponent(url.username);
    if (url.password) up.password = decodeURIComponent(url.password);
  } catch {
    throw new TypeError(`proxy URL "${shown}" has a malformed %-escape in its credentials`);
  }
  checkCredentials(up);
  return up;
}

/**
 * Throws when the username or password cannot be carried by the upstream's handshake: SOCKS5
 * sends each with a one-byte length (RFC 1929), SOCKS4a ends the user id at a NUL.
 */
export function checkCredentials(up: Upstream): void {
  for (const [what, value] of [['username', up.username], ['password', up.password]] as const) {
    if (value === undefined) continue;
    if (up.kind === 'socks5' && Buffer.byteLength(value, 'utf8') > 255) {
      throw new TypeError(`the SOCKS5 ${what} is longer than 255 bytes (RFC 1929 cannot carry it)`);
    }
    if (value.includes('\0')) throw new TypeError(`the proxy ${what} contains a NUL character`);
  }
}

export function describeUpstream(up: Upstream): string {
  if (up.kind === 'direct' || up.kind === 'reject') return up.kind;
  return `${up.kind}://${up.username ? `${up.username}@` : ''}${formatHostPort(up.host, up.port)}`;
}

export interface ConnectOptions {
  /** Local address to bind upstream sockets to (keeps them out of the TUN, see routing.ts). */
  localAddress?: string;
  /** Handshake deadline in ms. */
  timeoutMs?: number;
}

/**
 * Reads one message of a handshake from a paused socket: `complete` looks at what has arrived
 * and returns the message's length once it is all there (or throws). Bytes after it go back to
 * the socket, for the next message or the relay. A proxy that closes before the message is
 * complete (even before this read began) fails it at once, not at the handshake's timeout.
 */
function readMessage(sock: net.Socket, complete: (buffered: Buffer) => number | undefined): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let buffered: Buffer = Buffer.alloc(0);
    const fail = (e: unknown): void => { cleanup(); reject(e); };
    const closed = (): void => fail(new UpstreamError('the proxy closed the connection during the handshake', 'protocol'));
    const attempt = (): void => {
      try {
        for (let chunk = sock.read() as Buffer | null; chunk !== null; chunk = sock.read() as Buffer | null) {
          buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
          const n = complete(buffered);
          if (n === undefined) continue;
          if (n < buffered.length) sock.unshift(buffered.subarray(n));
          cleanup();
          resolve(buffered.subarray(0, n));
          return;
        }
      } catch (e) {
        fail(e instanceof PacketParseError ? new UpstreamError(`the proxy sent a malformed reply (${e.message})`, 'protocol') : e);
        return;
      }
      if (sock.readableEnded || sock.destroyed) closed();
    };
    const cleanup = (): void => {
      sock.off('readable', attempt); sock.off('end', closed); sock.off('close', closed); sock.off('error', fail);
    };
    sock.on('readable', attempt); sock.once('end', closed); sock.once('close', closed); sock.once('error', fail);
    attempt();
  });
}

/** Reads exactly `n` bytes of a handshake. */
function readExactly(sock: net.Socket, n: number): Promise<Buffer> {
  return readMessage(sock, (buffered) => (buffered.length >= n ? n : undefined));
}

/** Reads an HTTP response head (up to the blank line), leaving the body bytes buffered. */
async function readHttpHead(sock: net.Socket): Promise<string> {
  let searched = 0;
  const head = await readMessage(sock, (buffered) => {
    let n: number | undefined;
    try {
      n = httpHeadLength(buffered, searched);
    } catch (e) {
      throw new UpstreamError(`the HTTP proxy sent an oversized response head (${(e as Error).message})`, 'protocol');
    }
    searched = buffered.length;
    return n;
  });
  return head.toString('latin1');
}

function tcpConnect(host: string, port: number, opts: ConnectOptions): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({
      host, port, allowHalfOpen: true, noDelay: true,
      ...(opts.localAddress ? { localAddress: opts.localAddress } : {}),
    });
    const onError = (e: NodeJS.ErrnoException): void => {
      sock.destroy();
      reject(e);
    };
    sock.once('error', onError);
    sock.once('connect', () => { sock.off('error', onError); resolve(sock); });
  });
}

const socks5Replies: Record<number, [string, UpstreamError['reason']]> = {
  1: ['general SOCKS server failure', 'unreachable'],
  2: ['connection not allowed by the proxy\'s rules', 'rejected'],
  3: ['network unreachable', 'unreachable'],
  4: ['host unreachable', 'unreachable'],
  5: ['connection refused by the destination', 'refused'],
  6: ['TTL expired', 'unreachable'],
  7: ['command not supported by the proxy', 'protocol'],
  8: ['address type not supported by the proxy', 'protocol'],
};

async function socks5Greet(sock: net.Socket, up: Upstream): Promise<void> {
  const { NoAuthentication, UsernamePassword, NoneAcceptable } = Socks5Method;
  sock.write(encodeSocks5Greeting(up.username !== undefined ? [NoAuthentication, UsernamePassword] : [NoAuthentication]));
  let method: number;
  try {
    method = decodeSocks5Choice(await readExactly(sock, SOCKS5_CHOICE_LENGTH));
  } catch (e) {
    if (!(e instanceof PacketParseError)) throw e;
    throw new UpstreamError(`${formatHostPort(up.host, up.port)} does not speak SOCKS5`, 'protocol');
  }
  if (method === NoneAcceptable) throw new UpstreamError('the SOCKS5 proxy accepts none of our authentication methods (needs a username and password?)', 'auth');
  if (method === UsernamePassword) {
    let request: Buffer;
    try {
      request = encodeSocks5Credentials(up.username ?? '', up.password ?? '');
    } catch {
      throw new UpstreamError('the SOCKS5 username or password is longer than 255 bytes', 'auth');
    }
    sock.write(request);
    if (!socks5CredentialsAccepted(await readExactly(sock, SOCKS5_CHOICE_LENGTH))) {
      throw new UpstreamError('the SOCKS5 proxy rejected the username or password', 'auth');
    }
  } else if (method !== NoAuthentication) {
    throw new UpstreamError(`the SOCKS5 proxy chose unsupported method ${method}`, 'protocol');
  }
}

/** Sends a SOCKS5 request and returns the bound address of the reply. */
async function socks5Request(sock: net.Socket, command: number, host: string, port: number): Promise<Destination> {
  let request: Buffer;
  try {
    request = encodeSocks5Request(command, host, port);
  } catch {
    throw new UpstreamError(`refusing to send ${printable(host)} to a SOCKS5 proxy: not a host name`, 'invalid');
  }
  sock.write(request);
  let reply: Socks5Reply | undefined;
  await readMessage(sock, (buffered) => {
    reply = decodeSocks5Reply(buffered);
    return reply?.length;
  });
  const { code, bound } = reply!;
  if (code !== Socks5ReplyCode.Succeeded) {
    const [text, reason] = socks5Replies[code] ?? [`SOCKS5 error ${code}`, 'unreachable'];
    // An association names no destination (0.0.0.0:0): the refusal is of UDP itself.
    if (command === Socks5Command.UdpAssociate) {
      throw new UpstreamError(code === Socks5ReplyCode.CommandNotSupported ? 'the SOCKS5 proxy does not support UDP ASSOCIATE'
        : `the SOCKS5 proxy refused UDP ASSOCIATE (${text})`, reason === 'refused' ? 'rejected' : reason);
    }
    throw new UpstreamError(`the SOCKS5 proxy could not reach ${formatHostPort(host, port)}: ${text}`, reason);
  }
  return bound;
}

export function formatHostPort(host: string, port: number): string {
  return net.isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
}

async function socks4aConnect(sock: net.Socket, dest: Destination, up: Upstream): Promise<void> {
  let request: Buffer;
  try {
    request = encodeSocks4aConnect(dest, up.username ?? '');
  } catch (e) {
    throw new UpstreamError((e as Error).message, 'protocol');
  }
  sock.write(request);
  const { granted, status } = decodeSocks4Reply(await readExactly(sock, SOCKS4_REPLY_LENGTH));
  if (!granted) {
    throw new UpstreamError(`the SOCKS4a proxy could not reach ${formatHostPort(dest.host, dest.port)} (reply ${status})`, 'unreachable');
  }
}

async function httpConnect(sock: net.Socket, dest: Destination, up: Upstream): Promise<void> {
  const target = formatHostPort(dest.host, dest.port);
  let request: string;
  try {
    request = encodeHttpConnect(target, up.username !== undefined ? { username: up.username, password: up.password } : undefined);
  } catch {
    throw new UpstreamError(`refusing to send ${printable(target)} in an HTTP CONNECT request`, 'invalid');
  }
  sock.write(request);
  const response = parseHttpStatus(await readHttpHead(sock));
  if (!response) throw new UpstreamError('the HTTP proxy sent a malformed response', 'protocol');
  const { status } = response;
  if (status === 200) return;
  const why = `${status}${response.reason}`.trim();
  if (status === 407 || status === 401) throw new UpstreamError(`the HTTP proxy wants credentials (${why})`, 'auth');
  if (status === 403) throw new UpstreamError(`the HTTP proxy forbids ${target} (${why})`, 'rejected');
  throw new UpstreamError(`the HTTP proxy could not reach ${target} (${why})`, status === 502 || status === 503 ? 'refused' : 'unreachable');
}

/**
 * Opens a byte stream to `dest` through `up`. The returned socket is connected, past the
 * handshake, paused-free, and allowHalfOpen (so FINs propagate in each direction separately).
 */
export async function connectThrough(up: Upstream, dest: Destination, opts: ConnectOptions = {}): Promise<net.Socket> {
  if (!isDestinationHost(dest.host)) {
    throw new UpstreamError(`refusing to connect to ${printable(dest.host)}: not an address or a host name`, 'invalid');
  }
  if (up.kind === 'reject') throw new UpstreamError(`${formatHostPort(dest.host, dest.port)} is rejected by the rules`, 'rejected');
  const target = up.kind === 'direct' ? dest : { host: up.host, port: up.port };
  let sock: net.Socket;
  try {
    sock = await tcpConnect(target.host, target.port, opts);
  } catch (e) {
    const errno = (e as NodeJS.ErrnoException).code;
    const code = errno ?? String(e);
    if (up.kind === 'direct') {
      throw new UpstreamError(`cannot connect to ${formatHostPort(dest.host, dest.port)}: ${code}`, code === 'ECONNREFUSED' ? 'refused' : 'unreachable', errno);
    }
    throw new UpstreamError(`the ${up.kind} proxy at ${formatHostPort(up.host, up.port)} is unreachable (${code})`, 'proxy-down', errno);
  }
  if (up.kind === 'direct') return sock;
  const timer = setTimeout(() => sock.destroy(new UpstreamError(`the proxy at ${formatHostPort(up.host, up.port)} did not answer the handshake in time`, 'timeout')), opts.timeoutMs ?? 10_000);
  try {
    if (up.kind === 'socks5') {
      await socks5Greet(sock, up);
      await socks5Request(sock, Socks5Command.Connect, dest.host, dest.port);
    } else if (up.kind === 'socks4a') {
      await socks4aConnect(sock, dest, up);
    } else {
      await httpConnect(sock, dest, up);
    }
  } catch (e) {
    sock.destroy();
    throw e;
  } finally {
    clearTimeout(timer);
  }
  return sock;
}

/** A SOCKS5 UDP ASSOCIATE: the control connection plus the relay's UDP address. */
export interface UdpAssociation {
  control: net.Socket;
  relay: Destination;
}

/** Asks a SOCKS5 proxy for a UDP relay (RFC 1928 §7). The association lives as long as `control`. */
export async function socks5UdpAssociate(up: Upstream, opts: ConnectOptions = {}): Promise<UdpAssociation> {
  if (up.kind !== 'socks5') throw new UpstreamError(`${up.kind} upstreams cannot relay UDP`, 'protocol');
  let control: net.Socket;
  try {
    control = await tcpConnect(up.host, up.port, opts);
  } catch (e) {
    const errno = (e as NodeJS.ErrnoException).code;
    throw new UpstreamError(`the socks5 proxy at ${formatHostPort(up.host, up.port)} is unreachable (${errno ?? e})`, 'proxy-down', errno);
  }
  const timer = setTimeout(() => control.destroy(new UpstreamError('the SOCKS5 proxy did not answer UDP ASSOCIATE in time', 'timeout')), opts.timeoutMs ?? 10_000);
  try {
    await socks5Greet(control, up);
    const anyHost = net.isIPv6(up.host) ? '::' : '0.0.0.0';
    const relay = await socks5Request(control, Socks5Command.UdpAssociate, anyHost, 0);
    // A relay bound to the wildcard address is reached at the proxy's own address.
    if (relay.host === '0.0.0.0' || relay.host === '::') relay.host = up.host;
    if (!isDestinationHost(relay.host) || relay.port === 0) {
      throw new UpstreamError(`the SOCKS5 proxy named an unusable UDP relay ${printable(relay.host)} port ${relay.port}`, 'protocol');
    }
    return { control, relay };
  } catch (e) {
    control.destroy();
    throw e;
  } finally {
    clearTimeout(timer);
  }
}
