// The cross-platform userspace API (wireguard.com/xplatform): a unix socket at
// /var/run/wireguard/NAME.sock speaking `get=1` / `set=1` text, so the standard `wg` tool can
// show and configure our interface exactly as it does wireguard-go's.
import { createServer, Socket, type Server } from 'node:net';
import { mkdirSync, unlinkSync, existsSync, chmodSync } from 'node:fs';
import { isIP } from 'node:net';
import type { WireGuardEngine, Peer } from './engine.js';
import { parseCidr } from '../addr.js';
import { parseEndpoint } from './config.js';

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

/** Applies a `set=1` body (key=value lines). Throws UapiError with an errno on bad input. */
export function uapiSet(dev: UapiDevice, lines: string[]): void {
  const e = dev.engine;
  let peer: Peer | undefined;
  let peerSkipped = false; // update_only for a peer that does not exist, or a peer removed
  let newPeer = false;
  for (const line of lines) {
    const eq = line.indexOf('=');
    if (eq <= 0) throw new UapiError(EPROTO, `malformed line "${line}"`);
    const key = line.slice(0, eq);
    const value = line.slice(eq + 1);
    if (key === 'public_key') {
      const pub = parseHexKey(value, 'public_key');
      peer = e.getPeer(pub);
      newPeer = peer === undefined;
      peerSkipped = false;
      if (!peer) {
        // Our own public key as a peer is silently ignored, as wireguard-go does.
        if (e.publicKey && e.publicKey.equals(pub)) { peerSkipped = true; continue; }
        peer = e.setPeer({ publicKey: pub });
      }
      continue;
    }
    if (!peer && !peerSkipped) {
      switch (key) {
        case 'private_key': e.setPrivateKey(parseHexKey(value, 'private_key')); break;
        case 'listen_port': {
          const port = Number(value);
          if (!/^\d+$/.test(value) || port > 65535) throw new UapiError(EINVAL, 'listen_port must be 0..65535');
          dev.setListenPort(port);
          break;
        }
        case 'fwmark': {
          const mark = value === '' ? 0 : Number(value);
          if (!Number.isInteger(mark) || mark < 0 || mark > 0xffffffff) throw new UapiError(EINVAL, 'fwmark must be a 32-bit number');
          dev.setFwmark(mark);
          break;
        }
        case 'replace_peers':
          if (value !== 'true') throw new UapiError(EINVAL, 'replace_peers only takes true');
          for (const p of [...e.peers.values()]) e.removePeer(p.publicKey);
          break;
        default: throw new UapiError(EINVAL, `unknown interface key ${key}`);
      }
      continue;
    }
    if (peerSkipped) continue;
    const p = peer!;
    switch (key) {
      case 'update_only':
        if (newPeer) { e.removePeer(p.publicKey); peerSkipped = true; peer = undefined; }
        break;
      case 'remove':
        if (value !== 'true') throw new UapiError(EINVAL, 'remove only takes true');
        e.removePeer(p.publicKey);
        peerSkipped = true;
        peer = undefined;
        break;
      case 'preshared_key': p.presharedKey = parseHexKey(value, 'preshared_key'); break;
      case 'endpoint': {
        const ep = parseEndpoint(value);
        if (!ep || isIP(ep.host) === 0) throw new UapiError(EINVAL, `endpoint must be IP:port, got "${value}"`);
        e.setPeer({ publicKey: p.publicKey, endpoint: { address: ep.host, port: ep.port } });
        break;
      }
      case 'persistent_keepalive_interval': {
        const s = Number(value);
        if (!/^\d+$/.test(value) || s > 65535) throw new UapiError(EINVAL, 'persistent_keepalive_interval must be 0..65535');
        e.setPeer({ publicKey: p.publicKey, persistentKeepalive: s });
        break;
      }
      case 'replace_allowed_ips':
        if (value !== 'true') throw new UapiError(EINVAL, 'replace_allowed_ips only takes true');
        e.replaceAllowedIps(p);
        break;
      case 'allowed_ip': {
        try { parseCidr(value); } catch { throw new UapiError(EINVAL, `allowed_ip "${value}" is not a prefix`); }
        e.setPeer({ publicKey: p.publicKey, allowedIps: [value] });
        break;
      }
      case 'protocol_version':
        if (value !== '1') throw new UapiError(EINVAL, 'only protocol_version 1 exists');
        break;
      default: throw new UapiError(EINVAL, `unknown peer key ${key}`);
    }
  }
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
      server.listen(this.path, () => { server.off('error', reject); resolve(); });
    });
    chmodSync(this.path, 0o600);
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
