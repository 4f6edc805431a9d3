// Simple routing rules: the first rule whose matchers all hold decides whether a destination goes
// through the proxy, directly, or is rejected. Written as `action [cidr=…] [domain=…] [port=…]`,
// e.g. `direct cidr=198.18.0.0/15`, `reject port=25`, `reject domain=ads.example`; a rules file
// holds one a line (read again on a reload, so it is checked as strictly as the command line).
import { readFileSync } from 'node:fs';
import { parseCidr, parseIP } from '../addr.js';
import { UserError, fileError } from '../errors.js';
import { isHostName } from './names.js';

/** At most this many rules: each destination of a new connection is matched against all of them. */
export const MAX_RULES = 10_000;
/** A rules file larger than this is refused unread. */
const MAX_RULES_FILE_BYTES = 1 << 20;

export type RuleAction = 'proxy' | 'direct' | 'reject';

export interface Rule {
  action: RuleAction;
  cidr?: { base: Buffer; bits: number };
  /** Matches the name and every subdomain of it (only known in fake-IP DNS mode). */
  domain?: string;
  port?: number;
  text: string;
}

export function parseRule(text: string): Rule {
  const [action, ...matchers] = text.trim().split(/\s+/);
  if (action !== 'proxy' && action !== 'direct' && action !== 'reject') {
    throw new TypeError(`rule "${text}": the action must be proxy, direct or reject`);
  }
  const rule: Rule = { action, text };
  for (const m of matchers) {
    const [k, v] = m.split('=', 2) as [string, string | undefined];
    if (!v) throw new TypeError(`rule "${text}": "${m}" is not key=value`);
    if (k === 'cidr') {
      const { bytes, prefixLength } = parseCidr(v);
      rule.cidr = { base: bytes, bits: prefixLength };
    } else if (k === 'domain') {
      const domain = v.toLowerCase().replace(/^\.+|\.+$/g, '');
      if (!isHostName(domain)) throw new TypeError(`rule "${text}": "${v}" is not a domain name`);
      rule.domain = domain;
    } else if (k === 'port') {
      if (!/^\d{1,5}$/.test(v) || Number(v) < 1 || Number(v) > 65535) throw new TypeError(`rule "${text}": port must be 1..65535, not "${v}"`);
      rule.port = Number(v);
    } else throw new TypeError(`rule "${text}": unknown matcher "${k}" (use cidr, domain, port)`);
  }
  return rule;
}

/** The rules of a file: one a line, `#` starts a comment; a bad line is "FILE:LINE: why". */
export function parseRulesFile(text: string, file: string): Rule[] {
  const rules: Rule[] = [];
  const lines = text.split(/\r?\n/);
  for (let n = 0; n < lines.length; n++) {
    const line = lines[n]!.replace(/#.*/, '').trim();
    if (line === '') continue;
    if (rules.length === MAX_RULES) throw new UserError(`${file}:${n + 1}: more than ${MAX_RULES} rules`);
    try {
      rules.push(parseRule(line));
    } catch (e) {
      throw new UserError(`${file}:${n + 1}: ${(e as Error).message}`, { cause: e });
    }
  }
  return rules;
}

/** Reads and parses a rules file (a UserError names what is wrong with it). */
export function readRulesFile(path: string): Rule[] {
  let text: string;
  try {
    const bytes = readFileSync(path);
    if (bytes.length > MAX_RULES_FILE_BYTES) throw new UserError(`${path}: over ${MAX_RULES_FILE_BYTES} bytes, too large for a rules file`);
    text = bytes.toString('utf8');
  } catch (e) {
    throw fileError(path, 'read', e);
  }
  return parseRulesFile(text, path);
}

/** True when `addr` (4 or 16 bytes) lies in `cidr`. */
export function inCidr(addr: Uint8Array, cidr: { base: Uint8Array; bits: number }): boolean {
  if (addr.length !== cidr.base.length) return false;
  let bits = cidr.bits;
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((addr[i]! & mask) !== (cidr.base[i]! & mask)) return false;
  }
  return true;
}

/** The action for a destination (address text, optional host name, port); 'proxy' by default. */
export function decide(rules: readonly Rule[], address: string, name: string | undefined, port: number): RuleAction {
  if (rules.length === 0) return 'proxy';
  let addr: Uint8Array | undefined;
  try { addr = parseIP(address); } catch { addr = undefined; }
  for (const r of rules) {
    if (r.port !== undefined && r.port !== port) continue;
    if (r.cidr && (!addr || !inCidr(addr, r.cidr))) continue;
    if (r.domain && (!name || (name !== r.domain && !name.endsWith(`.${r.domain}`)))) continue;
    return r.action;
  }
  return 'proxy';
}
