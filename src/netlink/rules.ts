// Policy routing rules (ip rule): add, delete, list; fwmark/mask, table, priority, from/to,
// input/output device, and blackhole/unreachable/prohibit actions.
import {
  AF_INET, AF_INET6, FIB_RULE_INVERT, FRA_DST, FRA_FWMARK, FRA_FWMASK, FRA_GOTO, FRA_IIFNAME,
  FRA_OIFNAME, FRA_PRIORITY, FRA_PROTOCOL, FRA_SRC, FRA_SUPPRESS_PREFIXLEN, FRA_TABLE, NLM_F_CREATE,
  NLM_F_EXCL, RTM_DELRULE, RTM_GETRULE, RTM_NEWRULE, RT_TABLE_UNSPEC, protocolNames, ruleActionNames,
  type RuleAction,
} from './constants.js';
import { attrStr, attrU32, attrU8, bytesAttr, parseAttrs, strAttr, u32Attr, type Attr, type Message } from './codec.js';
import { badAddress, bytesToIp, parseCidr, type Family } from './ip.js';
import { withNetlink, type Target } from './socket.js';

export interface Rule {
  family: Family;
  priority: number;
  action: RuleAction;
  table?: number;
  /** Source prefix ("from"), absent for "all". */
  from?: string;
  /** Destination prefix ("to"). */
  to?: string;
  fwmark?: number;
  fwmask?: number;
  iif?: string;
  oif?: string;
  /** "not": the rule matches what the selectors do not. */
  invert: boolean;
  goto?: number;
  suppressPrefixLength?: number;
  protocol?: string;
}

export interface RuleSpec {
  /** Default: from `from`/`to`, else 4. */
  family?: Family;
  priority?: number;
  /** Lookup table (implies action "lookup"). */
  table?: number;
  action?: RuleAction;
  from?: string;
  to?: string;
  fwmark?: number;
  fwmask?: number;
  iif?: string;
  oif?: string;
  invert?: boolean;
  goto?: number;
  suppressPrefixLength?: number;
}

function fibRuleHdr(family: number, dstLen: number, srcLen: number, table: number, action: number, flags: number): Buffer {
  const b = Buffer.alloc(12);
  b[0] = family;
  b[1] = dstLen;
  b[2] = srcLen;
  b[4] = table < 256 ? table : RT_TABLE_UNSPEC;
  b[7] = action;
  b.writeUInt32LE(flags, 8);
  return b;
}

export function parseRule(m: Message): Rule | undefined {
  const p = m.payload;
  if (p.length < 12 || (p[0] !== AF_INET && p[0] !== AF_INET6)) return undefined;
  const a = parseAttrs(p, 12);
  const rule: Rule = {
    family: p[0] === AF_INET ? 4 : 6,
    priority: attrU32(a, FRA_PRIORITY) ?? 0,  // the kernel omits priority 0
    action: ruleActionNames[p[7]!] ?? 'unspec',
    invert: (p.readUInt32LE(8) & FIB_RULE_INVERT) !== 0,
  };
  const set = <K extends keyof Rule>(k: K, v: Rule[K] | undefined) => { if (v !== undefined) rule[k] = v; };
  const table = attrU32(a, FRA_TABLE) ?? (p[4] || undefined);
  if (rule.action === 'lookup') set('table', table);
  const src = a.get(FRA_SRC);
  if (src) rule.from = `${bytesToIp(src)}/${p[2]}`;
  const dst = a.get(FRA_DST);
  if (dst) rule.to = `${bytesToIp(dst)}/${p[1]}`;
  set('fwmark', attrU32(a, FRA_FWMARK));
  set('fwmask', attrU32(a, FRA_FWMASK));
  set('iif', attrStr(a, FRA_IIFNAME));
  set('oif', attrStr(a, FRA_OIFNAME));
  set('goto', attrU32(a, FRA_GOTO));
  const suppress = attrU32(a, FRA_SUPPRESS_PREFIXLEN);
  if (suppress !== undefined && suppress !== 0xffffffff) rule.suppressPrefixLength = suppress;
  const proto = attrU8(a, FRA_PROTOCOL);
  if (proto !== undefined) rule.protocol = protocolNames[proto] ?? String(proto);
  return rule;
}

function buildRule(spec: RuleSpec, deleting: boolean): { header: Buffer; attrs: Attr[]; text: string } {
  const from = spec.from !== undefined ? parseCidr(spec.from) : undefined;
  const to = spec.to !== undefined ? parseCidr(spec.to) : undefined;
  const family: Family = spec.family ?? from?.family ?? to?.family ?? 4;
  for (const [text, c] of [[spec.from, from], [spec.to, to]] as const) {
    if (c && c.family !== family) throw badAddress(text!, `expected an IPv${family} prefix`);
  }
  const action = spec.action ?? (spec.goto !== undefined ? 'goto' : spec.table !== undefined || !deleting ? 'lookup' : 'unspec');
  const actionNum = ruleActionNames.indexOf(action);
  if (actionNum < 0) throw badAddress(String(action), 'unknown rule action');
  const table = spec.table ?? (action === 'lookup' && !deleting ? 254 : RT_TABLE_UNSPEC);
  const attrs: Attr[] = [];
  if (table) attrs.push(u32Attr(FRA_TABLE, table));
  if (spec.priority !== undefined) attrs.push(u32Attr(FRA_PRIORITY, spec.priority));
  if (from) attrs.push(bytesAttr(FRA_SRC, from.bytes));
  if (to) attrs.push(bytesAttr(FRA_DST, to.bytes));
  if (spec.fwmark !== undefined) attrs.push(u32Attr(FRA_FWMARK, spec.fwmark));
  if (spec.fwmask !== undefined) attrs.push(u32Attr(FRA_FWMASK, spec.fwmask));
  if (spec.iif !== undefined) attrs.push(strAttr(FRA_IIFNAME, spec.iif));
  if (spec.oif !== undefined) attrs.push(strAttr(FRA_OIFNAME, spec.oif));
  if (spec.goto !== undefined) attrs.push(u32Attr(FRA_GOTO, spec.goto));
  if (spec.suppressPrefixLength !== undefined) attrs.push(u32Attr(FRA_SUPPRESS_PREFIXLEN, spec.suppressPrefixLength));
  const header = fibRuleHdr(family === 4 ? AF_INET : AF_INET6, to?.prefixLength ?? 0, from?.prefixLength ?? 0,
    table, actionNum, spec.invert ? FIB_RULE_INVERT : 0);
  const parts = [spec.priority !== undefined ? `pref ${spec.priority}` : '', from ? `from ${spec.from}` : '',
    to ? `to ${spec.to}` : '', spec.fwmark !== undefined ? `fwmark ${spec.fwmark}` : '', table ? `table ${table}` : '']
    .filter(Boolean);
  return { header, attrs, text: `rule ${parts.join(' ') || action}` };
}

const explainRule = (code: string) => ({ EEXIST: 'the rule already exists', ENOENT: 'no such rule' })[code];

export function addRule(spec: RuleSpec, target?: Target): void {
  withNetlink(target, (nl) => {
    const { header, attrs, text } = buildRule(spec, false);
    nl.request(RTM_NEWRULE, NLM_F_CREATE | NLM_F_EXCL, header, attrs, `adding ${text}`, explainRule);
  });
}

/** Deletes the first rule matching every selector given. */
export function deleteRule(spec: RuleSpec, target?: Target): void {
  withNetlink(target, (nl) => {
    const { header, attrs, text } = buildRule(spec, true);
    nl.request(RTM_DELRULE, 0, header, attrs, `deleting ${text}`, explainRule);
  });
}

export function listRules(target?: Target & { family?: Family }): Rule[] {
  return withNetlink(target, (nl) => {
    const family = target?.family === 6 ? AF_INET6 : target?.family === 4 ? AF_INET : 0;
    return nl.dump(RTM_GETRULE, fibRuleHdr(family, 0, 0, 0, 0, 0), [], parseRule, 'listing rules')
      .filter((r) => !family || r.family === target?.family);
  });
}
