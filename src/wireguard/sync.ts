// Applying a changed config to a running interface the way `wg syncconf` does: peers not in the
// file are removed, new ones added, changed ones updated, and an unchanged peer is not touched at
// all, so its keys, sessions and counters carry on. The WireGuard side goes through one UAPI
// `set` (checked whole before any of it is made, uapi.ts): in this process for a reload of our
// own interface, over the UAPI socket for `tuntap wg syncconf` (which works on wireguard-go's
// too). Then addresses, routes and rules are brought to what the file asks (routing.ts).
import { UserError } from '../errors.js';
import { keyToBase64 } from './crypto.js';
import { canonicalPrefix, routingPlan, reconcileRouting, type RoutingChanges } from './routing.js';
import { resolvePeers } from './quick.js';
import { uapiGet, uapiSet, type UapiDevice } from './uapi.js';
import { uapiRequest } from './status.js';
import type { WgConfig } from './config.js';
import { formatEndpoint } from './settings.js';
import type { NetnsRef } from '../netns.js';
import type { PeerConfig } from './peer.js';

/** A peer as the UAPI `get` reports it (keys in hex, as the protocol writes them). */
interface RunningPeer {
  presharedKey: string;
  endpoint: string | undefined;
  keepalive: number;
  allowedIps: string[];
}

/** The interface as the UAPI `get` reports it. */
export interface RunningDevice {
  privateKey: string | undefined;
  listenPort: number;
  fwmark: number;
  peers: Map<string, RunningPeer>;
}

const ZERO_KEY = '0'.repeat(64);
const hex = (b: Uint8Array | undefined) => (b ? Buffer.from(b).toString('hex') : undefined);

/** Reads a `get=1` answer; a failed one (errno other than 0) is an error. */
export function parseGet(lines: string[]): RunningDevice {
  const dev: RunningDevice = { privateKey: undefined, listenPort: 0, fwmark: 0, peers: new Map() };
  let peer: RunningPeer | undefined;
  for (const line of lines) {
    const eq = line.indexOf('=');
    if (eq <= 0) continue;
    const key = line.slice(0, eq);
    const value = line.slice(eq + 1);
    switch (key) {
      case 'private_key': dev.privateKey = value.toLowerCase(); break;
      case 'listen_port': dev.listenPort = Number(value); break;
      case 'fwmark': dev.fwmark = Number(value); break;
      case 'public_key':
        peer = { presharedKey: ZERO_KEY, endpoint: undefined, keepalive: 0, allowedIps: [] };
        dev.peers.set(value.toLowerCase(), peer);
        break;
      case 'preshared_key': if (peer) peer.presharedKey = value.toLowerCase(); break;
      case 'endpoint': if (peer) peer.endpoint = value; break;
      case 'persistent_keepalive_interval': if (peer) peer.keepalive = Number(value); break;
      case 'allowed_ip': if (peer) peer.allowedIps.push(canonicalPrefix(value)); break;
      case 'errno': if (value !== '0') throw new UserError(`the interface did not answer its configuration (errno ${value})`); break;
      default: break;
    }
  }
  return dev;
}

/** What the file wants of the WireGuard side (endpoints resolved). */
export interface WantedDevice {
  privateKey?: Uint8Array;
  listenPort?: number;
  fwmark?: number;
  peers: PeerConfig[];
}

export interface PeerChanges {
  added: string[];
  removed: string[];
  changed: string[];
  unchanged: number;
}

const sameSet = (a: string[], b: string[]) => a.length === b.length && a.every((x) => b.includes(x));

/**
 * The `set=1` body that takes `running` to `wanted`, naming each peer only when something of it
 * changes, and each setting only when it differs: the private key, above all, since a new key
 * voids every session. What the file leaves out (ListenPort, an Endpoint, FwMark) is left as it
 * is, as `wg syncconf` leaves it.
 */
export function syncRequest(running: RunningDevice, wanted: WantedDevice): { lines: string[]; peers: PeerChanges } {
  const lines: string[] = [];
  const peers: PeerChanges = { added: [], removed: [], changed: [], unchanged: 0 };
  const privateKey = hex(wanted.privateKey);
  if (privateKey !== undefined && privateKey !== (running.privateKey ?? ZERO_KEY)) lines.push(`private_key=${privateKey}`);
  if (wanted.listenPort !== undefined && wanted.listenPort !== running.listenPort) lines.push(`listen_port=${wanted.listenPort}`);
  if (wanted.fwmark !== undefined && wanted.fwmark !== running.fwmark) lines.push(`fwmark=${wanted.fwmark}`);
  const kept = new Set<string>();
  for (const p of wanted.peers) {
    const key = hex(p.publicKey)!;
    kept.add(key);
    const now = running.peers.get(key);
    const psk = hex(p.presharedKey) ?? ZERO_KEY;
    const endpoint = p.endpoint ? formatEndpoint(p.endpoint) : undefined;
    const keepalive = p.persistentKeepalive ?? 0;
    const allowed = [...new Set((p.allowedIps ?? []).map(canonicalPrefix))];
    const section: string[] = [];
    if (!now || psk !== now.presharedKey) section.push(`preshared_key=${psk}`);
    if (endpoint !== undefined && endpoint !== now?.endpoint) section.push(`endpoint=${endpoint}`);
    if (!now || keepalive !== now.keepalive) section.push(`persistent_keepalive_interval=${keepalive}`);
    if (!now || !sameSet(allowed, now.allowedIps)) section.push('replace_allowed_ips=true', ...allowed.map((a) => `allowed_ip=${a}`));
    if (now && section.length === 0) { peers.unchanged++; continue; }
    (now ? peers.changed : peers.added).push(keyToBase64(p.publicKey));
    lines.push(`public_key=${key}`, ...section);
  }
  for (const key of running.peers.keys()) {
    if (kept.has(key)) continue;
    lines.push(`public_key=${key}`, 'remove=true');
    peers.removed.push(keyToBase64(Buffer.from(key, 'hex')));
  }
  return { lines, peers };
}

/** Reads and sets one interface's WireGuard configuration: in this process, or over its UAPI socket. */
export interface UapiChannel {
  get(): Promise<string[]>;
  /** Applies a `set=1` body whole, or throws and changes nothing. */
  set(lines: string[]): Promise<void>;
}

/** The channel to an interface this process serves. */
export function localChannel(dev: UapiDevice): UapiChannel {
  return {
    get: async () => uapiGet(dev).split('\n'),
    set: async (lines) => {
      try {
        uapiSet(dev, lines);
      } catch (e) {
        throw new UserError(`the interface refused the change: ${(e as Error).message}`, { cause: e });
      }
    },
  };
}

/** The channel to interface `name`'s UAPI socket (tuntap's or wireguard-go's). */
export function socketChannel(name: string, dir?: string): UapiChannel {
  const ask = async (request: string) => {
    try {
      return await uapiRequest(name, request, dir);
    } catch (e) {
      throw new UserError((e as Error).message, { cause: e });
    }
  };
  return {
    get: () => ask('get=1\n\n'),
    set: async (lines) => {
      const answer = await ask(`set=1\n${lines.map((l) => `${l}\n`).join('')}\n`);
      const errno = answer.find((l) => l.startsWith('errno='))?.slice('errno='.length);
      if (errno !== '0') throw new UserError(`${name} refused the change (errno ${errno ?? 'missing'})`);
    },
  };
}

export interface SyncOptions {
  netns?: NetnsRef;
  /** false where IPv6 is disabled (IPv6 AllowedIPs get no route). */
  ipv6?: boolean;
  log?: (line: string) => void;
}

export interface SyncResult {
  peers: PeerChanges;
  routing: RoutingChanges;
}

/**
 * Applies `cfg` to the running interface `name`: first the WireGuard side in one `set` (nothing
 * of it is made if any of it is refused), then its addresses, routes and policy rules.
 */
export async function syncConfig(channel: UapiChannel, name: string, cfg: WgConfig, opts: SyncOptions = {}): Promise<SyncResult> {
  const log = opts.log ?? (() => {});
  const wantedPeers = await resolvePeers(cfg);
  const running = parseGet(await channel.get());
  const plan = routingPlan(cfg, opts.ipv6 !== false);
  const i = cfg.interface;
  const { lines, peers } = syncRequest(running, {
    privateKey: i.privateKey, listenPort: i.listenPort, fwmark: plan.fwmark, peers: wantedPeers,
  });
  if (lines.length > 0) await channel.set(lines);
  for (const k of peers.added) log(`[#] peer ${k} added`);
  for (const k of peers.changed) log(`[#] peer ${k} updated`);
  for (const k of peers.removed) log(`[#] peer ${k} removed`);
  const previous = { allowed: [...running.peers.values()].flatMap((p) => p.allowedIps), fwmark: running.fwmark };
  const routing = reconcileRouting(name, cfg, plan, previous, opts.netns, log);
  for (const a of routing.addressesAdded) log(`[#] address ${a} added`);
  for (const a of routing.addressesRemoved) log(`[#] address ${a} removed`);
  for (const r of routing.routesAdded) log(`[#] route ${r} dev ${name} added`);
  for (const r of routing.routesRemoved) log(`[#] route ${r} dev ${name} removed`);
  return { peers, routing };
}
