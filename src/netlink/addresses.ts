// Interface addresses, IPv4 and IPv6: add (with peer, broadcast, flags such as nodad), delete, list.
import {
  AF_INET, AF_INET6, AF_UNSPEC, IFA_ADDRESS, IFA_BROADCAST, IFA_CACHEINFO, IFA_FLAGS, IFA_LABEL,
  IFA_LOCAL, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE, RTM_DELADDR, RTM_GETADDR, RTM_NEWADDR,
  addressFlagBits, numberNamed, scopeNames,
} from './constants.js';
import { attrStr, attrU32, bytesAttr, parseAttrs, strAttr, u32Attr, type Attr, type Message } from './codec.js';
import { badAddress, bytesToIp, ipToBytes, parseCidr, type Family } from './ip.js';
import { linkIndex, namesFor, type LinkRef } from './links.js';
import { withNetlink, type Target } from './socket.js';

export interface Address {
  family: Family;
  /** ifindex of the device. */
  index: number;
  /** Device name, when known (listAddresses fills it in). */
  dev?: string;
  /** The interface's own address (IFA_LOCAL, or IFA_ADDRESS when there is no local). */
  address: string;
  prefixLength: number;
  /** The other end of a point-to-point link. */
  peer?: string;
  broadcast?: string;
  label?: string;
  scope: string;
  /** Flag names as `ip` prints them: permanent, nodad, noprefixroute, tentative, ... */
  flags: string[];
  /** Seconds; 0xffffffff means forever. */
  validLifetime?: number;
  preferredLifetime?: number;
}

export interface AddressSpec {
  /** "198.18.0.1/24" or "fd00::1/64" (bare: full-length prefix). */
  address: string;
  /** Peer for point-to-point links; its prefix (if given) sets the prefix length, like ip. */
  peer?: string;
  /** IPv4 broadcast address, or true to derive it from the prefix (ip's "brd +"). */
  broadcast?: string | true;
  label?: string;
  scope?: 'global' | 'site' | 'link' | 'host' | number;
  nodad?: boolean;
  noprefixroute?: boolean;
  /** Seconds (IPv6 lifetimes; default forever). */
  validLifetime?: number;
  preferredLifetime?: number;
}

function ifaddrmsg(family: number, prefixLength: number, flags: number, scope: number, index: number): Buffer {
  const b = Buffer.alloc(8);
  b[0] = family;
  b[1] = prefixLength;
  b[2] = flags & 0xff;
  b[3] = scope;
  b.writeUInt32LE(index, 4);
  return b;
}

export function parseAddress(m: Message): Address | undefined {
  const p = m.payload;
  if (p.length < 8) return undefined;
  const familyNum = p[0];
  if (familyNum !== AF_INET && familyNum !== AF_INET6) return undefined;
  const a = parseAttrs(p, 8);
  const local = a.get(IFA_LOCAL);
  const addr = a.get(IFA_ADDRESS);
  const own = local ?? addr;
  if (!own) return undefined;
  const flagBits = attrU32(a, IFA_FLAGS) ?? p[2]!;
  const scope = p[3]!;
  const out: Address = {
    family: familyNum === AF_INET ? 4 : 6,
    index: p.readUInt32LE(4),
    address: bytesToIp(own),
    prefixLength: p[1]!,
    scope: scopeNames[scope] ?? String(scope),
    flags: Object.entries(addressFlagBits).filter(([, bit]) => flagBits & bit).map(([n]) => n),
  };
  if (local && addr && !local.equals(addr)) out.peer = bytesToIp(addr);
  const brd = a.get(IFA_BROADCAST);
  if (brd) out.broadcast = bytesToIp(brd);
  const label = attrStr(a, IFA_LABEL);
  if (label !== undefined) out.label = label;
  const cache = a.get(IFA_CACHEINFO);
  if (cache && cache.length >= 8) {
    out.preferredLifetime = cache.readUInt32LE(0);
    out.validLifetime = cache.readUInt32LE(4);
  }
  return out;
}

function buildAddress(index: number, spec: AddressSpec | string): { header: Buffer; attrs: Attr[]; text: string } {
  const s: AddressSpec = typeof spec === 'string' ? { address: spec } : spec;
  const own = parseCidr(s.address);
  const peer = s.peer !== undefined ? parseCidr(s.peer, -1) : undefined;
  if (peer && peer.family !== own.family) throw badAddress(s.peer!, `peer must be IPv${own.family} like ${s.address}`);
  let prefixLength = own.prefixLength;
  if (peer && peer.prefixLength >= 0) prefixLength = peer.prefixLength;
  else if (peer && !s.address.includes('/')) prefixLength = own.family === 4 ? 32 : 128;
  let flags = 0;
  if (s.nodad) flags |= addressFlagBits.nodad!;
  if (s.noprefixroute) flags |= addressFlagBits.noprefixroute!;
  const attrs: Attr[] = [bytesAttr(IFA_LOCAL, own.bytes), bytesAttr(IFA_ADDRESS, peer ? peer.bytes : own.bytes)];
  if (s.broadcast !== undefined && own.family === 4) {
    let brd: Buffer;
    if (s.broadcast === true) {
      brd = Buffer.from(own.bytes);
      for (let bit = prefixLength; bit < 32; bit++) brd[bit >> 3]! |= 0x80 >> (bit & 7);
    } else {
      brd = ipToBytes(s.broadcast);
    }
    attrs.push(bytesAttr(IFA_BROADCAST, brd));
  }
  if (s.label !== undefined) attrs.push(strAttr(IFA_LABEL, s.label));
  if (flags) attrs.push(u32Attr(IFA_FLAGS, flags));
  if (s.validLifetime !== undefined || s.preferredLifetime !== undefined) {
    const c = Buffer.alloc(16);
    c.writeUInt32LE(s.preferredLifetime ?? s.validLifetime ?? 0xffffffff, 0);
    c.writeUInt32LE(s.validLifetime ?? 0xffffffff, 4);
    attrs.push(bytesAttr(IFA_CACHEINFO, c));
  }
  const scope = s.scope === undefined ? 0 : numberNamed(scopeNames, s.scope, 'scope');
  const header = ifaddrmsg(own.family === 4 ? AF_INET : AF_INET6, prefixLength, flags, scope, index);
  return { header, attrs, text: `${own.address}/${prefixLength}` };
}

const explainAddr = (dev: LinkRef) => (code: string) => ({
  EEXIST: 'the address is already assigned',
  EADDRNOTAVAIL: `the address is not assigned to ${dev}`,
  ENODEV: `device "${dev}" does not exist`,
})[code];

/** Adds an address to a device; `replace` updates an existing one instead of failing. */
export function addAddress(dev: LinkRef, spec: AddressSpec | string, target?: Target & { replace?: boolean }): void {
  withNetlink(target, (nl) => {
    const index = linkIndex(nl, dev);
    const { header, attrs, text } = buildAddress(index, spec);
    const flags = NLM_F_CREATE | (target?.replace ? NLM_F_REPLACE : NLM_F_EXCL);
    nl.request(RTM_NEWADDR, flags, header, attrs, `adding ${text} to ${dev}`, explainAddr(dev));
  });
}

export function deleteAddress(dev: LinkRef, spec: AddressSpec | string, target?: Target): void {
  withNetlink(target, (nl) => {
    const index = linkIndex(nl, dev);
    const { header, attrs, text } = buildAddress(index, spec);
    nl.request(RTM_DELADDR, 0, header, attrs, `deleting ${text} from ${dev}`, explainAddr(dev));
  });
}

/** Lists addresses, optionally of one device and/or one family. */
export function listAddresses(target?: Target & { dev?: LinkRef; family?: Family }): Address[] {
  return withNetlink(target, (nl) => {
    const family = target?.family === 4 ? AF_INET : target?.family === 6 ? AF_INET6 : AF_UNSPEC;
    const { index, names } = namesFor(nl, target?.dev);
    const all = nl.dump(RTM_GETADDR, ifaddrmsg(family, 0, 0, 0, 0), [], parseAddress, 'listing addresses');
    return all
      .filter((a) => (index === undefined || a.index === index) && (family === AF_UNSPEC || a.family === target?.family))
      .map((a) => ({ ...a, dev: names.get(a.index) }));
  });
}
