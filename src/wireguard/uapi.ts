// The cross-platform userspace API (wireguard.com/xplatform): a unix socket at
// /var/run/wireguard/NAME.sock speaking `get=1` / `set=1` text, so the standard `wg` tool can
// show and configure our interface exactly as it does wireguard-go's.
import { createServer, Socket, type Server } from 'node:net';
import { mkdirSync, unlinkSync, existsSync } from 'node:fs';
import type { WireGuardEngine } from './engine.js';
import {
  INTERFACE_SETTINGS, PEER_SETTINGS, SettingError, formatEndpoint, newInterfaceSettings, newPeerSettings, readPublicKey,
  settingOf, type InterfaceSettings, type PeerSettings,
} from './settings.js';

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

function parseTrue(v: string, key: string): void {
  if (v !== 'true') throw new UapiError(EINVAL, `${key} only takes true`);
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

/** One peer's part of a `set`: what it sets, and the UAPI's own verbs for it. */
interface PeerRequest {
  publicKey: Buffer;
  /** Change the peer only if it exists. */
  updateOnly: boolean;
  /** Remove the peer; what follows in its section is checked but has no effect. */
  remove: boolean;
  /** Drop its AllowedIPs before adding those of `settings` (which then holds only the later ones). */
  replaceAllowedIps: boolean;
  settings: PeerSettings;
}

/** A whole `set` request, checked, nothing applied yet. */
interface SetRequest {
  device: InterfaceSettings;
  replacePeers: boolean;
  peers: PeerRequest[];
  /** Every key the request carried, to be zeroed once applied (the engine keeps copies of its own). */
  secrets: Set<Buffer>;
}

/**
 * Applies a `set=1` body (key=value lines). The whole body is checked first and nothing is
 * changed unless all of it is valid: a bad line throws UapiError (with an errno) before any
 * change. Of the changes, only binding a new listen port can still fail when made (the port may
 * be taken), so it is made first: its failure too leaves everything as it was.
 */
export function uapiSet(dev: UapiDevice, lines: string[]): void {
  const request: SetRequest = { device: newInterfaceSettings(), replacePeers: false, peers: [], secrets: new Set() };
  try {
    parseSet(lines, request);
    applySet(dev, request);
  } finally {
    for (const k of request.secrets) k.fill(0);
  }
}

/** Checks every line of a `set` body into `request`; each key it reads goes into its secrets at once. */
function parseSet(lines: string[], request: SetRequest): void {
  let peer: PeerRequest | undefined;
  for (const line of lines) {
    const eq = line.indexOf('=');
    if (eq <= 0) throw new UapiError(EPROTO, `malformed line "${line}"`);
    const key = line.slice(0, eq);
    const value = line.slice(eq + 1);
    try {
      if (key === 'public_key') {
        peer = { publicKey: readPublicKey(value, 'uapi'), updateOnly: false, remove: false, replaceAllowedIps: false, settings: newPeerSettings() };
        request.peers.push(peer);
      } else if (!peer) {
        if (key === 'replace_peers') { parseTrue(value, key); request.replacePeers = true; continue; }
        const row = settingOf(INTERFACE_SETTINGS, key, 'uapi');
        if (!row) throw new UapiError(EINVAL, `unknown interface key ${key}`);
        row.read(request.device, value, 'uapi');
      } else if (key === 'update_only') {
        parseTrue(value, key);
        peer.updateOnly = true;
      } else if (key === 'remove') {
        parseTrue(value, key);
        peer.remove = true;
      } else if (key === 'replace_allowed_ips') {
        parseTrue(value, key);
        peer.replaceAllowedIps = true;
        peer.settings.allowedIps = [];
      } else if (key === 'protocol_version') {
        if (value !== '1') throw new UapiError(EINVAL, 'only protocol_version 1 exists');
      } else {
        const row = settingOf(PEER_SETTINGS, key, 'uapi');
        if (!row) throw new UapiError(EINVAL, `unknown peer key ${key}`);
        row.read(peer.settings, value, 'uapi');
      }
    } catch (e) {
      if (e instanceof SettingError) throw new UapiError(EINVAL, `${key}: ${e.message}`);
      throw e;
    } finally {
      // A key the line just read (a later line for the same setting would replace it unseen).
      for (const k of [request.device.privateKey, peer?.settings.presharedKey]) if (k) request.secrets.add(k);
    }
  }
}

/**
 * Makes the changes of a checked request: the device's port and mark first (binding may fail),
 * then the key, then the peers as wireguard-go does (our own public key is ignored; a peer that
 * does not exist is made, unless its section says update_only or remove).
 */
/** Whether `key` is the engine's private key (an all-zero one stands for none). */
function sameKey(current: Buffer | undefined, key: Buffer): boolean {
  return current ? current.equals(key) : key.every((b) => b === 0);
}

function applySet(dev: UapiDevice, request: SetRequest): void {
  const e = dev.engine;
  const { device } = request;
  if (device.listenPort !== undefined) dev.setListenPort(device.listenPort);
  if (device.fwmark !== undefined) dev.setFwmark(device.fwmark);
  // The key it has already is no change: setting it would void every session, and `wg syncconf`
  // sends the key along with any change.
  if (device.privateKey && !sameKey(e.privateKey, device.privateKey)) e.setPrivateKey(device.privateKey);
  if (request.replacePeers) for (const p of [...e.peers.values()]) e.removePeer(p.publicKey);
  for (const p of request.peers) {
    if (e.publicKey?.equals(p.publicKey)) continue;
    let peer = e.getPeer(p.publicKey);
    if (!peer) {
      if (p.updateOnly || p.remove) continue;
      peer = e.setPeer({ publicKey: p.publicKey });
    }
    if (p.remove) { e.removePeer(p.publicKey); continue; }
    if (p.replaceAllowedIps) e.replaceAllowedIps(peer);
    const { endpoint, ...rest } = p.settings;
    e.setPeer({ publicKey: p.publicKey, ...rest, endpoint: endpoint && { address: endpoint.host, port: endpoint.port } });
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
