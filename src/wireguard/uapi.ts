// The cross-platform userspace API (wireguard.com/xplatform): a unix socket at
// /var/run/wireguard/NAME.sock speaking `get=1` / `set=1` text, so the standard `wg` tool can
// show and configure our interface exactly as it does wireguard-go's.
import { createServer, Socket, type Server } from 'node:net';
import { mkdirSync, unlinkSync, existsSync } from 'node:fs';
import { isIP } from 'node:net';
import type { WireGuardEngine, Peer } from './engine.js';
import { parseCidr } from '../addr.js';
import { parseEndpoint } from './config.js';
import { encodeEndpoint } from '../net/endpoint.js';

export const UAPI_DIR = '/var/run/wireguard';

/** What the UAPI configures beyond the engine: the UDP port and fwmark of the interface. */
export interface UapiDevice {
  readonly engine: WireGuardEngine;
  readonly listenPort: number;
  setListenPort(port: number): void;
  readonly fwmark: number;
  setFwmark(mark: number): void;
}

const EINVAL = 22;
const ENOENT = 2;
const EPROTO = 71;

class UapiError extends Error {
  constructor(readonly errno: number, message: string) { super(message); }
}

const hexKey = (b: Uint8Array) => Buffer.from(b).toString('hex');
function parseHexKey(v: string, what: string): Buffer {
  if (!/^[0-9a-fA-F]{64}$/.test(v)) throw new UapiError(EINVAL, `${what} must be 64 hex digits`);
  return Buffer.from(v, 'hex');
}

/** Whether `key` is the engine's private key (an all-zero one stands for none). */
function sameKey(current: Buffer | undefined, key: Buffer): boolean {
  return current ? current.equals(key) : key.every((b) => b === 0);
}

/** A decimal integer 0..max, digits only (no sign, space, exponent or hex prefix). */
function parseUint(v: string, max: number, what: string): number {
  const n = Number(v);
  if (!/^\d{1,10}$/.test(v) || n > max) throw new UapiError(EINVAL, `${what} must be a decimal number 0..${max}`);
  return n;
}

/**
 * Whether the engine can take this endpoint (it encodes it as the native core reads it): tried
 * while parsing, so an address it cannot take (an IPv6 zone by name) fails the request there,
 * not halfway through applying it.
 */
function encodable(address: string, port: number): boolean {
  try {
    encodeEndpoint(address, port);
    return true;
  } catch {
    return false;
  }
}

function parseTrue(v: string, key: string): void {
  if (v !== 'true') throw new UapiError(EINVAL, `${key} only takes true`);
}

function formatEndpoint(e: { address: string; port: number }): string {
  return e.address.includes(':') ? `[${e.address}]:${e.port}` : `${e.address}:${e.port}`;
}

/** The `get=1` answer (without the final errno line). */
export function uapiGet(dev: UapiDevice): string {
  const e = dev.engine;
  const out: string[] = [];
  if (e.privateKey) out.push(`private_key=${hexKey(e.privateKey)}`);
  out.push(`listen_port=${dev.listenPort}`);
  if (dev.fwmark) out.push(`fwmark=${dev.fwmark}`);
  for (const peer of e.peers.values()) {
    out.push(`public_key=${hexKey(peer.publicKey)}`);
    out.push(`preshared_key=${hexKey(peer.presharedKey)}`);
    out.push('protocol_version=1');
    if (peer.endpoint) out.push(`endpoint=${formatEndpoint(peer.endpoint)}`);
    const ms = peer.lastHandshake;
    out.push(`last_handshake_time_sec=${Math.floor(ms / 1000)}`);
    out.push(`last_handshake_time_nsec=${(ms % 1000) * 1_000_000}`);
    out.push(`tx_bytes=${peer.txBytes}`);
    out.push(`rx_bytes=${peer.rxBytes}`);
    out.push(`persistent_keepalive_interval=${peer.persistentKeepalive}`);
    for (const { cidr } of e.allowedIps.entries(peer)) out.push(`allowed_ip=${cidr}`);
  }
  return out.map((l) => `${l}\n`).join('');
}

/**
 * Applies a `set=1` body (key=value lines). The whole body is checked first and nothing is
 * changed unless all of it is valid: a bad line throws UapiError (with an errno) before any
 * change. Of the changes, only binding a new listen port can still fail when made (the port may
 * be taken), so it is made first: its failure too leaves everything as it was.
 */
export function uapiSet(dev: UapiDevice, lines: string[]): void {
  const secrets: Buffer[] = [];
  try {
    const { device, rest } = parseSet(dev, lines, secrets);
    for (const change of device) change();
    for (const change of rest) change();
  } finally {
    for (const k of secrets) k.fill(0); // the engine keeps copies of its own
  }
}

type Change = () => void;
type PeerChange = (e: WireGuardEngine, p: Peer) => 'next' | 'stop';

/**
 * Checks every line of a `set` body and returns the changes it asks for, in order, none made
 * yet: device-level ones (made first) and the rest. Keys parsed go into `secrets`.
 */
function parseSet(dev: UapiDevice, lines: string[], secrets: Buffer[]): { device: Change[]; rest: Change[] } {
  const e = dev.engine;
  const device: Change[] = [];
  const rest: Change[] = [];
  // The peer section being read: its changes run together, in order, when the request is applied.
  let section: { publicKey: Buffer; updateOnly: boolean; changes: PeerChange[] } | undefined;
  for (const line of lines) {
    const eq = line.indexOf('=');
    if (eq <= 0) throw new UapiError(EPROTO, `malformed line "${line}"`);
    const key = line.slice(0, eq);
    const value = line.slice(eq + 1);
    if (key === 'public_key') {
      const publicKey = parseHexKey(value, 'public_key');
      if (publicKey.every((b) => b === 0)) throw new UapiError(EINVAL, 'public_key is all zero, which is no key');
      section = { publicKey, updateOnly: false, changes: [] };
      rest.push(peerSection(e, section));
      continue;
    }
    if (!section) {
      switch (key) {
        case 'private_key': {
          const priv = parseHexKey(value, 'private_key');
          secrets.push(priv);
          // The key it has already is no change: setting it would void every session, and
          // `wg syncconf` sends the key along with any change.
          rest.push(() => { if (!sameKey(e.privateKey, priv)) e.setPrivateKey(priv); });
          break;
        }
        case 'listen_port': {
          const port = parseUint(value, 65535, 'listen_port');
          device.push(() => dev.setListenPort(port));
          break;
        }
        case 'fwmark': {
          const mark = parseUint(value, 0xffffffff, 'fwmark');
          device.push(() => dev.setFwmark(mark));
          break;
        }
        case 'replace_peers':
          parseTrue(value, key);
          rest.push(() => { for (const p of [...e.peers.values()]) e.removePeer(p.publicKey); });
          break;
        default: throw new UapiError(EINVAL, `unknown interface key ${key}`);
      }
      continue;
    }
    const changes = section.changes;
    switch (key) {
      case 'update_only':
        parseTrue(value, key);
        section.updateOnly = true;
        break;
      case 'remove':
        parseTrue(value, key);
        changes.push((eng, p) => { eng.removePeer(p.publicKey); return 'stop'; });
        break;
      case 'preshared_key': {
        const psk = parseHexKey(value, 'preshared_key');
        secrets.push(psk);
        changes.push((eng, p) => { eng.setPeer({ publicKey: p.publicKey, presharedKey: psk }); return 'next'; });
        break;
      }
      case 'endpoint': {
        const ep = parseEndpoint(value);
        if (!ep || isIP(ep.host) === 0 || !encodable(ep.host, ep.port)) {
          throw new UapiError(EINVAL, `endpoint must be IP:port (an IPv6 zone by number), got "${value}"`);
        }
        const endpoint = { address: ep.host, port: ep.port };
        changes.push((eng, p) => { eng.setPeer({ publicKey: p.publicKey, endpoint }); return 'next'; });
        break;
      }
      case 'persistent_keepalive_interval': {
        const seconds = parseUint(value, 65535, 'persistent_keepalive_interval');
        changes.push((eng, p) => { eng.setPeer({ publicKey: p.publicKey, persistentKeepalive: seconds }); return 'next'; });
        break;
      }
      case 'replace_allowed_ips':
        parseTrue(value, key);
        changes.push((eng, p) => { eng.replaceAllowedIps(p); return 'next'; });
        break;
      case 'allowed_ip': {
        try { parseCidr(value); } catch { throw new UapiError(EINVAL, `allowed_ip "${value}" is not a prefix`); }
        changes.push((eng, p) => { eng.setPeer({ publicKey: p.publicKey, allowedIps: [value] }); return 'next'; });
        break;
      }
      case 'protocol_version':
        if (value !== '1') throw new UapiError(EINVAL, 'only protocol_version 1 exists');
        break;
      default: throw new UapiError(EINVAL, `unknown peer key ${key}`);
    }
  }
  return { device, rest };
}

/**
 * Applies one peer section as wireguard-go does: our own public key is ignored; a peer that
 * does not exist is made, unless the section says update_only; `remove` ends the section.
 */
function peerSection(e: WireGuardEngine, section: { publicKey: Buffer; updateOnly: boolean; changes: PeerChange[] }): Change {
  return () => {
    if (e.publicKey?.equals(section.publicKey)) return;
    let peer = e.getPeer(section.publicKey);
    if (!peer) {
      if (section.updateOnly) return;
      peer = e.setPeer({ publicKey: section.publicKey });
    }
    for (const change of section.changes) if (change(e, peer) === 'stop') return;
  };
}

/** Serves the UAPI socket for `name` until close(). */
export class UapiServer {
  readonly path: string;
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  /** Called after every successful set (the interface may react, e.g. rebind). */
  onSet: (() => void) | undefined;

  constructor(readonly name: string, private readonly dev: UapiDevice, dir = UAPI_DIR) {
    this.path = `${dir}/${name}.sock`;
    this.dir = dir;
  }
  private readonly dir: string;

  async listen(): Promise<void> {
    mkdirSync(this.dir, { recursive: true, mode: 0o755 });
    if (existsSync(this.path)) {
      // A socket left by a dead process is stale; a live one means the name is in use.
      const alive = await new Promise<boolean>((resolve) => {
        const s = new Socket();
        s.once('connect', () => { s.destroy(); resolve(true); });
        s.once('error', () => resolve(false));
        s.connect(this.path);
      });
      if (alive) throw new Error(`${this.path} is in use: another process serves interface ${this.name}`);
      unlinkSync(this.path);
    }
    const server = createServer((sock) => this.serve(sock));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      // The socket is created by bind() inside listen(), synchronously: with this umask it is
      // born 0600, so there is no moment when others may connect (a chmod afterwards leaves one).
      const umask = process.umask(0o177);
      try {
        server.listen(this.path, () => { server.off('error', reject); resolve(); });
      } finally {
        process.umask(umask);
      }
    });
  }

  private serve(sock: Socket): void {
    this.sockets.add(sock);
    sock.on('close', () => this.sockets.delete(sock));
    sock.on('error', () => sock.destroy());
    let pending = '';
    sock.setEncoding('utf8');
    sock.on('data', (chunk: string) => {
      pending += chunk;
      if (pending.length > 1 << 20) { sock.destroy(); return; }
      for (;;) {
        const end = pending.indexOf('\n\n');
        if (end < 0) break;
        const request = pending.slice(0, end).split('\n');
        pending = pending.slice(end + 2);
        sock.write(this.handle(request));
      }
    });
  }

  private handle(request: string[]): string {
    const [op, ...body] = request;
    try {
      if (op === 'get=1') {
        if (body.length > 0) throw new UapiError(EINVAL, 'get takes no arguments');
        return `${uapiGet(this.dev)}errno=0\n\n`;
      }
      if (op === 'stats=1') {
        // tuntap's own extension (not part of the wg protocol; `tuntap wg show` asks for it):
        // the engine's counters, dropped packets by reason first.
        const st = this.dev.engine.stats;
        const lines = Object.entries(st.dropped).map(([k, v]) => `dropped_${k}=${v}`);
        for (const [k, v] of Object.entries(st)) if (typeof v === 'number') lines.push(`${k}=${v}`);
        return `${lines.join('\n')}\nerrno=0\n\n`;
      }
      if (op === 'set=1') {
        uapiSet(this.dev, body);
        this.onSet?.();
        return 'errno=0\n\n';
      }
      throw new UapiError(EINVAL, `unknown operation ${op}`);
    } catch (e) {
      // Our own errors carry their errno; system errors (a taken port) carry theirs.
      const errno = e instanceof UapiError ? e.errno : (e as { errno?: number }).errno ?? ENOENT;
      return `errno=${errno}\n\n`;
    }
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
    try { unlinkSync(this.path); } catch { /* already gone */ }
  }
}
