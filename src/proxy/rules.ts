// Simple routing rules: the first rule whose matchers all hold decides whether a destination goes
// through the proxy, directly, or is rejected. Written as `action [cidr=…] [domain=…] [port=…]`,
// e.g. `direct cidr=198.18.0.0/15`, `reject port=25`, `reject domain=ads.example`.
import { parseCidr, parseIP } from '../addr.js';

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
    } else if (k === 'domain') rule.domain = v.toLowerCase().replace(/^\.+|\.+$/g, '');
    else if (k === 'port') rule.port = Number(v);
    else throw new TypeError(`rule "${text}": unknown matcher "${k}" (use cidr, domain, port)`);
  }
  return rule;
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
