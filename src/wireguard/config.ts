// wg-quick configuration files ([Interface] and [Peer] sections, `Key = value` lines), parsed
// strictly: an error names the file, line and key. The `wg setconf` format is the same minus
// the wg-quick-only keys (Address, DNS, MTU, Table, Pre/Post Up/Down, SaveConfig).
import { readFileSync, statSync } from 'node:fs';
import { keyFromBase64 } from './crypto.js';
import { parseCidr } from '../addr.js';
import { UserError } from '../errors.js';

/** A config file the user wrote is wrong: "FILE:LINE: KEY: reason" (line 0: the whole file). */
export class ConfigError extends UserError {
  constructor(readonly file: string, readonly line: number, readonly key: string, reason: string) {
    super(`${file}${line > 0 ? `:${line}` : ''}: ${key ? `${key}: ` : ''}${reason}`);
    this.name = 'ConfigError';
  }
}

export interface EndpointSpec {
  host: string;
  port: number;
}

export interface InterfaceSection {
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

export interface PeerSection {
  publicKey: Buffer;
  presharedKey?: Buffer;
  allowedIps: string[];
  endpoint?: EndpointSpec;
  persistentKeepalive?: number;
  /** Line of the [Peer] header, for messages. */
  line: number;
}

export interface WgConfig {
  file: string;
  interface: InterfaceSection;
  peers: PeerSection[];
  /** Things the user should know that do not stop the interface (ignored keys, permissions). */
  warnings: string[];
}

/** Parses "host:port", "[v6]:port" (a bare IPv6 address needs the brackets). */
export function parseEndpoint(text: string): EndpointSpec | undefined {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(text) ?? /^([^:[\]]+):(\d+)$/.exec(text);
  if (!m) return undefined;
  const port = Number(m[2]);
  if (!Number.isInteger(port) || port < 1 || port > 65535) return undefined;
  return { host: m[1]!, port };
}

export function formatEndpoint(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

const list = (v: string) => v.split(',').map((s) => s.trim()).filter((s) => s.length > 0);

export function parseConfig(text: string, file = '<config>'): WgConfig {
  const cfg: WgConfig = {
    file,
    interface: { addresses: [], dns: [], preUp: [], postUp: [], preDown: [], postDown: [] },
    peers: [],
    warnings: [],
  };
  let section: 'interface' | 'peer' | undefined;
  let peer: Partial<PeerSection> & { allowedIps: string[]; line: number } | undefined;
  let sawInterface = false;
  const finishPeer = () => {
    if (!peer) return;
    if (!peer.publicKey) throw new ConfigError(file, peer.line, 'PublicKey', 'every [Peer] needs a PublicKey');
    cfg.peers.push(peer as PeerSection);
    peer = undefined;
  };
  const lines = text.split(/\r?\n/);
  for (let n = 0; n < lines.length; n++) {
    const lineNo = n + 1;
    const raw = lines[n]!;
    const hash = raw.indexOf('#');
    const line = (hash >= 0 ? raw.slice(0, hash) : raw).trim();
    if (line === '') continue;
    const header = /^\[(\w+)\]$/.exec(line);
    if (header) {
      finishPeer();
      const name = header[1]!.toLowerCase();
      if (name === 'interface') {
        if (sawInterface) throw new ConfigError(file, lineNo, '', 'a second [Interface] section');
        sawInterface = true;
        section = 'interface';
      } else if (name === 'peer') {
        section = 'peer';
        peer = { allowedIps: [], line: lineNo };
      } else {
        throw new ConfigError(file, lineNo, '', `unknown section [${header[1]}] (expected [Interface] or [Peer])`);
      }
      continue;
    }
    const eq = line.indexOf('=');
    if (eq <= 0) throw new ConfigError(file, lineNo, '', `expected "Key = value", got "${line}"`);
    const key = line.slice(0, eq).trim();
    const value = line.slice(eq + 1).trim();
    const lower = key.toLowerCase();
    const fail = (reason: string): never => { throw new ConfigError(file, lineNo, key, reason); };
    const keyValue = (): Buffer => { try { return keyFromBase64(value); } catch (e) { return fail((e as Error).message); } };
    const int = (min: number, max: number): number => {
      const v = Number(value);
      if (!/^\d+$/.test(value) || v < min || v > max) fail(`expected a whole number ${min}..${max}, got "${value}"`);
      return v;
    };
    const cidrs = (): string[] => list(value).map((c) => {
      try { const p = parseCidr(c); return `${p.address}/${p.prefixLength}`; } catch { return fail(`"${c}" is not an address/prefix`); }
    });
    if (!section) fail('settings must follow an [Interface] or [Peer] header');
    if (section === 'interface') {
      const i = cfg.interface;
      switch (lower) {
        case 'privatekey': i.privateKey = keyValue(); break;
        case 'listenport': i.listenPort = int(0, 65535); break;
        case 'fwmark':
          if (/^0x[0-9a-fA-F]{1,8}$/.test(value)) i.fwmark = Number(value);
          else i.fwmark = value === 'off' ? 0 : int(0, 0xffffffff);
          break;
        case 'address': i.addresses.push(...cidrs()); break;
        case 'dns':
          i.dns.push(...list(value));
          cfg.warnings.push(`${file}:${lineNo}: DNS is ignored (tuntap does not change the system resolver)`);
          break;
        case 'mtu': i.mtu = int(576, 65535); break;
        case 'table':
          // A routing table id is 32 bits, and 0 is "unspecified", not a table.
          if (!/^(off|auto|main|[1-9]\d{0,9})$/.test(value) || Number(value) > 0xffffffff) {
            fail(`expected off, auto, main or a table number 1..4294967295, got "${value}"`);
          }
          i.table = value;
          break;
        case 'preup': i.preUp.push(value); break;
        case 'postup': i.postUp.push(value); break;
        case 'predown': i.preDown.push(value); break;
        case 'postdown': i.postDown.push(value); break;
        case 'saveconfig': i.saveConfig = value === 'true'; break;
        default: fail('unknown key in [Interface]');
      }
    } else {
      const p = peer!;
      switch (lower) {
        case 'publickey':
          p.publicKey = keyValue();
          if (p.publicKey.every((b) => b === 0)) fail('an all-zero key is no key');
          break;
        case 'presharedkey': p.presharedKey = keyValue(); break;
        case 'allowedips': p.allowedIps.push(...cidrs()); break;
        case 'endpoint': p.endpoint = parseEndpoint(value) ?? fail(`expected host:port or [IPv6]:port, got "${value}"`); break;
        case 'persistentkeepalive': p.persistentKeepalive = value === 'off' ? 0 : int(0, 65535); break;
        default: fail('unknown key in [Peer]');
      }
    }
  }
  finishPeer();
  if (!sawInterface) throw new ConfigError(file, 1, '', 'no [Interface] section');
  const seen = new Set<string>();
  for (const p of cfg.peers) {
    const k = p.publicKey.toString('base64');
    if (seen.has(k)) throw new ConfigError(file, p.line, 'PublicKey', 'the same peer appears twice');
    seen.add(k);
  }
  return cfg;
}

/** Reads and parses a config file, warning when others may read the private key in it. */
export function readConfig(path: string): WgConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError(path, 0, '', `cannot read: ${(e as Error).message}`);
  }
  const cfg = parseConfig(text, path);
  const mode = statSync(path).mode;
  if (cfg.interface.privateKey && (mode & 0o077) !== 0) {
    cfg.warnings.push(`${path} holds a private key and is readable by others (mode ${(mode & 0o777).toString(8)}); run chmod 600 ${path}`);
  }
  return cfg;
}

/** The interface name wg-quick derives from a file path: /etc/wireguard/wg0.conf → wg0. */
export function interfaceNameOf(path: string): string | undefined {
  const m = /(?:^|\/)([a-zA-Z0-9_=+.-]{1,15})\.conf$/.exec(path);
  return m ? m[1] : undefined;
}
