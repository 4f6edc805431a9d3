// `wg show`-style status from a UAPI socket (ours or wireguard-go's): list the interfaces that
// serve /var/run/wireguard/*.sock, fetch `get=1`, and format it as `wg show` prints it.
import { connect } from 'node:net';
import { readdirSync } from 'node:fs';
import { UAPI_DIR } from './uapi.js';
import { publicKey, keyToBase64 } from './crypto.js';

export interface PeerStatus {
  publicKey: string;
  presharedKey: boolean;
  endpoint?: string;
  allowedIps: string[];
  latestHandshake: number; // seconds since the epoch, 0 = never
  rxBytes: number;
  txBytes: number;
  persistentKeepalive: number;
}

export interface InterfaceStatus {
  name: string;
  publicKey?: string;
  listenPort: number;
  fwmark: number;
  peers: PeerStatus[];
  /** tuntap interfaces only: packets dropped, by reason (nonzero reasons). */
  dropped?: Record<string, number>;
}

export function listInterfaces(dir = UAPI_DIR): string[] {
  try {
    return readdirSync(dir).filter((f) => f.endsWith('.sock')).map((f) => f.slice(0, -5)).sort();
  } catch {
    return [];
  }
}

/** Characters of UAPI answer accepted: far more than `get` takes for thousands of peers. */
const UAPI_ANSWER_LIMIT = 64 << 20;

/** Sends one UAPI request and returns the answer's lines (without the blank line). */
export function uapiRequest(name: string, request: string, dir = UAPI_DIR): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const sock = connect(`${dir}/${name}.sock`);
    // Chunks are kept apart and only where one meets the next is searched for the blank line,
    // so a long answer costs its length, not its length squared.
    const chunks: string[] = [];
    let size = 0;
    const timer = setTimeout(() => { sock.destroy(); reject(new Error(`${name}: no answer from its UAPI socket`)); }, 5000);
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.write(request));
    sock.on('data', (d: string) => {
      const seam = (chunks.at(-1)?.slice(-1) ?? '') + d;
      chunks.push(d);
      size += d.length;
      // Another process's answer: a socket that never ends one must not fill this one's memory.
      if (size > UAPI_ANSWER_LIMIT) {
        clearTimeout(timer);
        sock.destroy();
        reject(new Error(`${name}: the answer from its UAPI socket is larger than ${UAPI_ANSWER_LIMIT} bytes`));
        return;
      }
      if (seam.includes('\n\n')) {
        clearTimeout(timer);
        sock.destroy();
        const data = chunks.join('');
        resolve(data.slice(0, data.indexOf('\n\n')).split('\n'));
      }
    });
    sock.on('error', (e) => { clearTimeout(timer); reject(new Error(`${name}: cannot reach ${dir}/${name}.sock (${e.message})`, { cause: e })); });
  });
}

export async function getStatus(name: string, dir = UAPI_DIR): Promise<InterfaceStatus> {
  const lines = await uapiRequest(name, 'get=1\n\n', dir);
  const st: InterfaceStatus = { name, listenPort: 0, fwmark: 0, peers: [] };
  let peer: PeerStatus | undefined;
  for (const line of lines) {
    const eq = line.indexOf('=');
    const key = line.slice(0, eq);
    const value = line.slice(eq + 1);
    switch (key) {
      case 'private_key': st.publicKey = keyToBase64(publicKey(Buffer.from(value, 'hex'))); break;
      case 'listen_port': st.listenPort = Number(value); break;
      case 'fwmark': st.fwmark = Number(value); break;
      case 'public_key':
        peer = { publicKey: keyToBase64(Buffer.from(value, 'hex')), presharedKey: false, allowedIps: [], latestHandshake: 0, rxBytes: 0, txBytes: 0, persistentKeepalive: 0 };
        st.peers.push(peer);
        break;
      case 'preshared_key': if (peer) peer.presharedKey = /[^0]/.test(value); break;
      case 'endpoint': if (peer) peer.endpoint = value; break;
      case 'allowed_ip': peer?.allowedIps.push(value); break;
      case 'last_handshake_time_sec': if (peer) peer.latestHandshake = Number(value); break;
      case 'rx_bytes': if (peer) peer.rxBytes = Number(value); break;
      case 'tx_bytes': if (peer) peer.txBytes = Number(value); break;
      case 'persistent_keepalive_interval': if (peer) peer.persistentKeepalive = Number(value); break;
      case 'errno': if (value !== '0') throw new Error(`${name}: UAPI get failed with errno ${value}`); break;
      default: break;
    }
  }
  // Our own interfaces also report their drop counters; wireguard-go does not know the request.
  try {
    const stats = await uapiRequest(name, 'stats=1\n\n', dir);
    if (stats.at(-1) === 'errno=0') {
      st.dropped = {};
      for (const l of stats) {
        const m = /^dropped_(\w+)=(\d+)$/.exec(l);
        if (m && m[2] !== '0') st.dropped[m[1]!] = Number(m[2]);
      }
    }
  } catch { /* not ours */ }
  return st;
}

function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let u = 0;
  let v = n;
  while (v >= 1024 && u < units.length - 1) { v /= 1024; u++; }
  return u === 0 ? `${n} B` : `${v.toFixed(2)} ${units[u]}`;
}

function ago(seconds: number): string {
  const parts: string[] = [];
  const add = (n: number, unit: string) => { if (n > 0) parts.push(`${n} ${unit}${n === 1 ? '' : 's'}`); };
  add(Math.floor(seconds / 86400), 'day');
  add(Math.floor(seconds / 3600) % 24, 'hour');
  add(Math.floor(seconds / 60) % 60, 'minute');
  add(seconds % 60, 'second');
  return parts.length ? `${parts.join(', ')} ago` : 'Now';
}

/** Formats like `wg show NAME`. */
export function formatStatus(st: InterfaceStatus, nowSeconds = Math.floor(Date.now() / 1000)): string {
  const out = [`interface: ${st.name}`];
  if (st.publicKey) out.push(`  public key: ${st.publicKey}`, '  private key: (hidden)');
  if (st.listenPort) out.push(`  listening port: ${st.listenPort}`);
  if (st.fwmark) out.push(`  fwmark: 0x${st.fwmark.toString(16)}`);
  if (st.dropped) {
    const d = Object.entries(st.dropped).map(([k, v]) => `${v} ${k}`);
    out.push(`  dropped: ${d.length ? d.join(', ') : 'none'}`);
  }
  const peers = [...st.peers].sort((a, b) => b.latestHandshake - a.latestHandshake);
  for (const p of peers) {
    out.push('', `peer: ${p.publicKey}`);
    if (p.presharedKey) out.push('  preshared key: (hidden)');
    if (p.endpoint) out.push(`  endpoint: ${p.endpoint}`);
    out.push(`  allowed ips: ${p.allowedIps.length ? p.allowedIps.join(', ') : '(none)'}`);
    if (p.latestHandshake) out.push(`  latest handshake: ${ago(Math.max(0, nowSeconds - p.latestHandshake))}`);
    if (p.rxBytes || p.txBytes) out.push(`  transfer: ${bytes(p.rxBytes)} received, ${bytes(p.txBytes)} sent`);
    if (p.persistentKeepalive) out.push(`  persistent keepalive: every ${p.persistentKeepalive} seconds`);
  }
  return out.join('\n');
}
