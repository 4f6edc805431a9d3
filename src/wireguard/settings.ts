// The settings a user can set on a WireGuard interface, one row each: its key in a wg-quick file,
// its key in a UAPI `set`, and how a value is checked and stored. The file parser (config.ts) and
// the UAPI (uapi.ts) both read through these rows, so a value is accepted or refused, with the
// same reason, whichever way it came; a new option is a new row. The two syntaxes differ only in
// spelling: a file writes keys in base64 and may say `off`, a hex fwmark or a host name; UAPI
// writes keys in hex and numbers in decimal, as the `wg` tool sends them.
import { isIP } from 'node:net';
import { parseCidr } from '../addr.js';
import { encodeEndpoint } from '../net/endpoint.js';
import { keyFromBase64 } from './crypto.js';

export type Syntax = 'file' | 'uapi';

/** A value that is not acceptable; the message says why, the caller says where (file and line, or UAPI key). */
export class SettingError extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = 'SettingError';
  }
}

export interface EndpointSpec {
  /** An IP address, or (in a file) a host name resolved when the interface comes up. */
  host: string;
  port: number;
}

/** What the [Interface] section of a file, or the device part of a UAPI `set`, sets. */
export interface InterfaceSettings {
  privateKey?: Buffer;
  listenPort?: number;
  fwmark?: number;
  addresses: string[];
  dns: string[];
  mtu?: number;
  table?: string;
  preUp: string[];
  postUp: string[];
  preDown: string[];
  postDown: string[];
  saveConfig?: boolean;
}

/** What a [Peer] section of a file, or a peer's part of a UAPI `set`, sets (the public key names the peer). */
export interface PeerSettings {
  presharedKey?: Buffer;
  allowedIps: string[];
  endpoint?: EndpointSpec;
  persistentKeepalive?: number;
}

export const newInterfaceSettings = (): InterfaceSettings => ({ addresses: [], dns: [], preUp: [], postUp: [], preDown: [], postDown: [] });
export const newPeerSettings = (): PeerSettings => ({ allowedIps: [] });

export interface Setting<S> {
  /** Its key in a wg-quick file (matched without regard to case); undefined: UAPI only. */
  readonly file?: string;
  /** Its key in a UAPI request; undefined: the host's business around the interface (wg-quick only). */
  readonly uapi?: string;
  /** Checks `value` as written in `syntax` and stores it in `into`; returns a warning the user should see, if any. */
  read(into: S, value: string, syntax: Syntax): string | void;
}

// ---- values ----

/** A 32-byte key: base64 in a file, 64 hex digits in UAPI. */
export function readKey(value: string, syntax: Syntax): Buffer {
  if (syntax === 'uapi') {
    if (!/^[0-9a-fA-F]{64}$/.test(value)) throw new SettingError('a key must be 64 hex digits');
    return Buffer.from(value, 'hex');
  }
  try {
    return keyFromBase64(value);
  } catch (e) {
    throw new SettingError((e as Error).message);
  }
}

/** A peer's public key, which may not be all zero (that is no key). */
export function readPublicKey(value: string, syntax: Syntax): Buffer {
  const key = readKey(value, syntax);
  if (key.every((b) => b === 0)) throw new SettingError('an all-zero key is no key');
  return key;
}

/** A decimal whole number min..max: digits only (no sign, space, exponent or hex prefix). */
function whole(value: string, min: number, max: number): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < min || n > max) throw new SettingError(`expected a whole number ${min}..${max}, got "${value}"`);
  return n;
}

/** A file may also write `off` for a number whose 0 means off. */
const wholeOrOff = (value: string, max: number, syntax: Syntax) => (syntax === 'file' && value === 'off' ? 0 : whole(value, 0, max));

/** A firewall mark (32 bits); a file may also write it in hex, as wg-quick does. */
function mark(value: string, syntax: Syntax): number {
  if (syntax === 'file' && /^0x[0-9a-fA-F]{1,8}$/.test(value)) return Number(value);
  return wholeOrOff(value, 0xffffffff, syntax);
}

/** One address/prefix, in the form the kernel prints it. */
function prefix(text: string): string {
  try {
    const p = parseCidr(text);
    return `${p.address}/${p.prefixLength}`;
  } catch {
    throw new SettingError(`"${text}" is not an address/prefix`);
  }
}

const list = (v: string) => v.split(',').map((s) => s.trim()).filter((s) => s.length > 0);

/** Parses "host:port", "[v6]:port" (a bare IPv6 address needs the brackets); port 1..65535. */
export function parseEndpoint(text: string): EndpointSpec | undefined {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(text) ?? /^([^:[\]]+):(\d+)$/.exec(text);
  if (!m) return undefined;
  const port = Number(m[2]);
  if (!Number.isInteger(port) || port < 1 || port > 65535) return undefined;
  return { host: m[1]!, port };
}

/** "address:port", or "[address]:port" for IPv6: the form parseEndpoint reads back. */
export function formatEndpoint(e: { address: string; port: number }): string {
  return e.address.includes(':') ? `[${e.address}]:${e.port}` : `${e.address}:${e.port}`;
}

/**
 * An endpoint. UAPI sets a live peer, so its host must be an IP address the engine can take
 * (an IPv6 zone by number): checked here, so a bad one fails the request before any change.
 */
function endpoint(value: string, syntax: Syntax): EndpointSpec {
  const e = parseEndpoint(value);
  if (syntax === 'file') {
    if (!e) throw new SettingError(`expected host:port or [IPv6]:port, got "${value}"`);
    return e;
  }
  if (!e || isIP(e.host) === 0 || !encodable(e.host, e.port)) {
    throw new SettingError(`expected IP:port or [IPv6]:port (an IPv6 zone by number), got "${value}"`);
  }
  return e;
}

function encodable(address: string, port: number): boolean {
  try {
    encodeEndpoint(address, port);
    return true;
  } catch {
    return false;
  }
}

/** A routing table id is 32 bits, and 0 is "unspecified", not a table. */
function table(value: string): string {
  if (!/^(off|auto|main|[1-9]\d{0,9})$/.test(value) || Number(value) > 0xffffffff) {
    throw new SettingError(`expected off, auto, main or a table number 1..4294967295, got "${value}"`);
  }
  return value;
}

// ---- the rows ----

export const INTERFACE_SETTINGS: ReadonlyArray<Setting<InterfaceSettings>> = [
  { file: 'PrivateKey', uapi: 'private_key', read: (s, v, x) => { s.privateKey = readKey(v, x); } },
  { file: 'ListenPort', uapi: 'listen_port', read: (s, v) => { s.listenPort = whole(v, 0, 65535); } },
  { file: 'FwMark', uapi: 'fwmark', read: (s, v, x) => { s.fwmark = mark(v, x); } },
  { file: 'Address', read: (s, v) => { s.addresses.push(...list(v).map(prefix)); } },
  {
    file: 'DNS',
    read: (s, v) => { s.dns.push(...list(v)); return 'DNS is ignored (tuntap does not change the system resolver)'; },
  },
  { file: 'MTU', read: (s, v) => { s.mtu = whole(v, 576, 65535); } },
  { file: 'Table', read: (s, v) => { s.table = table(v); } },
  { file: 'PreUp', read: (s, v) => { s.preUp.push(v); } },
  { file: 'PostUp', read: (s, v) => { s.postUp.push(v); } },
  { file: 'PreDown', read: (s, v) => { s.preDown.push(v); } },
  { file: 'PostDown', read: (s, v) => { s.postDown.push(v); } },
  { file: 'SaveConfig', read: (s, v) => { s.saveConfig = v === 'true'; } },
];

export const PEER_SETTINGS: ReadonlyArray<Setting<PeerSettings>> = [
  { file: 'PresharedKey', uapi: 'preshared_key', read: (s, v, x) => { s.presharedKey = readKey(v, x); } },
  // A file lists prefixes; UAPI sends one per line.
  { file: 'AllowedIPs', uapi: 'allowed_ip', read: (s, v, x) => { s.allowedIps.push(...(x === 'file' ? list(v) : [v]).map(prefix)); } },
  { file: 'Endpoint', uapi: 'endpoint', read: (s, v, x) => { s.endpoint = endpoint(v, x); } },
  { file: 'PersistentKeepalive', uapi: 'persistent_keepalive_interval', read: (s, v, x) => { s.persistentKeepalive = wholeOrOff(v, 65535, x); } },
];

/** The row for `key` in `syntax` (file keys without regard to case), or undefined. */
export function settingOf<S>(rows: ReadonlyArray<Setting<S>>, key: string, syntax: Syntax): Setting<S> | undefined {
  if (syntax === 'uapi') return rows.find((r) => r.uapi === key);
  const lower = key.toLowerCase();
  return rows.find((r) => r.file?.toLowerCase() === lower);
}
