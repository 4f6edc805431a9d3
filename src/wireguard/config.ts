// wg-quick configuration files ([Interface] and [Peer] sections, `Key = value` lines), parsed
// strictly: an error names the file, line and key. The keys and their values are settings.ts's
// rows; the `wg setconf` format is the same minus the wg-quick-only keys (Address, DNS, MTU,
// Table, Pre/Post Up/Down, SaveConfig).
import { readFileSync, statSync } from 'node:fs';
import { UserError } from '../errors.js';
import {
  INTERFACE_SETTINGS, PEER_SETTINGS, SettingError, newInterfaceSettings, newPeerSettings, readPublicKey, settingOf,
  type InterfaceSettings, type PeerSettings,
} from './settings.js';

/** A config file the user wrote is wrong: "FILE:LINE: KEY: reason" (line 0: the whole file). */
export class ConfigError extends UserError {
  constructor(readonly file: string, readonly line: number, readonly key: string, reason: string) {
    super(`${file}${line > 0 ? `:${line}` : ''}: ${key ? `${key}: ` : ''}${reason}`);
    this.name = 'ConfigError';
  }
}

export type InterfaceSection = InterfaceSettings;

export interface PeerSection extends PeerSettings {
  publicKey: Buffer;
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

export function parseConfig(text: string, file = '<config>'): WgConfig {
  const cfg: WgConfig = { file, interface: newInterfaceSettings(), peers: [], warnings: [] };
  let section: 'interface' | 'peer' | undefined;
  let peer: (PeerSettings & { publicKey?: Buffer; line: number }) | undefined;
  let sawInterface = false;
  const finishPeer = () => {
    if (!peer) return;
    const { publicKey } = peer;
    if (!publicKey) throw new ConfigError(file, peer.line, 'PublicKey', 'every [Peer] needs a PublicKey');
    cfg.peers.push({ ...peer, publicKey });
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
        peer = { ...newPeerSettings(), line: lineNo };
      } else {
        throw new ConfigError(file, lineNo, '', `unknown section [${header[1]}] (expected [Interface] or [Peer])`);
      }
      continue;
    }
    const eq = line.indexOf('=');
    if (eq <= 0) throw new ConfigError(file, lineNo, '', `expected "Key = value", got "${line}"`);
    const key = line.slice(0, eq).trim();
    const value = line.slice(eq + 1).trim();
    try {
      if (!section) throw new SettingError('settings must follow an [Interface] or [Peer] header');
      let warning: string | void = undefined;
      if (section === 'interface') {
        const row = settingOf(INTERFACE_SETTINGS, key, 'file');
        if (!row) throw new SettingError('unknown key in [Interface]');
        warning = row.read(cfg.interface, value, 'file');
      } else if (key.toLowerCase() === 'publickey') {
        peer!.publicKey = readPublicKey(value, 'file');
      } else {
        const row = settingOf(PEER_SETTINGS, key, 'file');
        if (!row) throw new SettingError('unknown key in [Peer]');
        warning = row.read(peer!, value, 'file');
      }
      if (warning) cfg.warnings.push(`${file}:${lineNo}: ${warning}`);
    } catch (e) {
      if (e instanceof SettingError) throw new ConfigError(file, lineNo, key, e.message);
      throw e;
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
