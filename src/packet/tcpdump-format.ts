// The pieces of a `tcpdump -n -S` line that need more than the header fields: TCP flags and
// options, ICMP and ICMPv6 messages (with the quoted packet of an error), and the IPv6
// extension headers tcpdump names before the upper layer. Each function reads only inside
// [start, end) of the bytes it is given, so a short or lying packet yields shorter text, never a
// read past the end. decode.ts assembles the line; this file only renders parts of it.
import { u16, u32, formatIPv4, formatIPv6 } from './bytes.js';
import { IpProtocol } from './protocols.js';
import { isIpv6Extension, ipv6ExtensionLength } from './ipv6.js';

/** Flag letters in tcpdump's order (ACK's "." after PSH, before URG). */
const FLAG_LETTERS: [number, string][] = [[0x01, 'F'], [0x02, 'S'], [0x04, 'R'], [0x08, 'P'], [0x10, '.'], [0x20, 'U'], [0x40, 'E'], [0x80, 'W']];

export function tcpdumpFlags(flags: number): string {
  let s = '';
  for (const [bit, letter] of FLAG_LETTERS) if (flags & bit) s += letter;
  return s || 'none';
}

const TCP_OPTION_NAMES: Record<number, string> = {
  0: 'eol', 1: 'nop', 2: 'mss', 3: 'wscale', 4: 'sackOK', 5: 'sack', 6: 'echo', 7: 'echoreply', 8: 'TS',
  11: 'cc', 12: 'ccnew', 13: 'ccecho', 19: 'md5', 28: 'uto', 29: 'tcp-ao', 30: 'mptcp', 34: 'tfo', 254: 'exp',
};

function hex(b: Uint8Array, start: number, end: number): string {
  let s = '';
  for (let i = start; i < end; i++) s += b[i]!.toString(16).padStart(2, '0');
  return s;
}

/**
 * TCP options in [start, end) as tcpdump lists them inside `options [...]`: every option in
 * order, nop and eol included, the walk ending at eol. Like tcpdump, a known option is read at
 * its own size and the walk moves on by that size, with "[len N]" when the length byte said
 * otherwise; `bad` means the rest of the header could not be walked ("[bad opt]" ends the line).
 */
export function tcpOptionsText(b: Uint8Array, start: number, end: number): { text: string; bad: boolean } {
  const parts: string[] = [];
  let o = start;
  while (o < end) {
    const kind = b[o]!;
    const name = TCP_OPTION_NAMES[kind] ?? `unknown-${kind}`;
    if (kind === 0 || kind === 1) {
      parts.push(name);
      o++;
      if (kind === 0) break;
      continue;
    }
    if (o + 2 > end) return { text: [...parts, '[bad opt]'].join(','), bad: true };
    const len = b[o + 1]!;
    if (len < 2 || o + len > end) return { text: [...parts, '[bad opt]'].join(','), bad: true };
    const data = o + 2;
    // Bytes the printer reads for this kind; known kinds have a fixed size whatever `len` says.
    let size: number;
    let text = name;
    switch (kind) {
      case 2: size = 2; break;
      case 3: size = 1; break;
      case 4: size = 0; break;
      case 5: size = len - 2; break;
      case 6: case 7: case 11: case 12: case 13: size = 4; break;
      case 8: size = 8; break;
      default: size = len - 2;
    }
    if (data + size > end) return { text: [...parts, '[bad opt]'].join(','), bad: true };
    switch (kind) {
      case 2: text += ` ${u16(b, data)}`; break;
      case 3: text += ` ${b[data]!}`; break;
      case 4: break;
      case 5:
        if (size % 8 !== 0) { text += ' invalid sack'; break; }
        text += ` ${size / 8} `;
        for (let i = data; i < data + size; i += 8) text += `{${u32(b, i)}:${u32(b, i + 4)}}`;
        break;
      case 6: case 7: case 11: case 12: case 13: text += ` ${u32(b, data)}`; break;
      case 8: text += ` val ${u32(b, data)} ecr ${u32(b, data + 4)}`; break;
      default: if (size > 0) text += ` 0x${hex(b, data, data + size)}`;
    }
    if (size + 2 !== len) text += `[len ${len}]`;
    parts.push(text);
    o = data + size;
  }
  return { text: parts.join(','), bad: false };
}

// ---- ICMP (IPv4) ----------------------------------------------------------------------------

/** What an ICMP error quotes: the offending packet's addresses, protocol and ports if present. */
interface Quoted4 { src: string; dst: string; protocol: number; dstPort?: number }

function quotedIpv4(b: Uint8Array, start: number, end: number): Quoted4 | undefined {
  if (end - start < 20) return undefined;
  const hl = (b[start]! & 15) * 4;
  const q: Quoted4 = { src: formatIPv4(b, start + 12), dst: formatIPv4(b, start + 16), protocol: b[start + 9]! };
  if (hl >= 20 && start + hl + 4 <= end) q.dstPort = u16(b, start + hl + 2);
  return q;
}

const UNREACH4: Record<number, (dst: string) => string> = {
  0: (d) => `net ${d} unreachable`,
  1: (d) => `host ${d} unreachable`,
  5: (d) => `${d} unreachable - source route failed`,
  6: (d) => `net ${d} unreachable - unknown`,
  7: (d) => `host ${d} unreachable - unknown`,
  8: (d) => `${d} unreachable - source host isolated`,
  9: (d) => `net ${d} unreachable - admin prohibited`,
  10: (d) => `host ${d} unreachable - admin prohibited`,
  11: (d) => `net ${d} unreachable - tos prohibited`,
  12: (d) => `host ${d} unreachable - tos prohibited`,
  13: (d) => `host ${d} unreachable - admin prohibited filter`,
  14: (d) => `host ${d} unreachable - host precedence violation`,
  15: (d) => `host ${d} unreachable - precedence cutoff`,
};

const SIMPLE4: Record<number, string> = {
  4: 'source quench', 10: 'router solicitation', 15: 'information request', 16: 'information reply', 17: 'address mask request',
};

/** The text after "ICMP " for the message in b[start..end) (at least the 8-byte header). */
export function icmpText(b: Uint8Array, start: number, end: number): string {
  const type = b[start]!; const code = b[start + 1]!;
  const quoted = quotedIpv4(b, start + 8, end);
  switch (type) {
    case 0: case 8: return `echo ${type === 8 ? 'request' : 'reply'}, id ${u16(b, start + 4)}, seq ${u16(b, start + 6)}`;
    case 3: {
      if (!quoted) return `unreachable, code ${code}`;
      const d = quoted.dst;
      if (code === 2) return `${d} protocol ${quoted.protocol} unreachable`;
      if (code === 3) {
        const port = quoted.dstPort ?? 0;
        const proto = quoted.protocol === IpProtocol.TCP ? 'tcp' : quoted.protocol === IpProtocol.UDP ? 'udp' : undefined;
        return proto ? `${d} ${proto} port ${port} unreachable` : `${d} protocol ${quoted.protocol} port ${port} unreachable`;
      }
      if (code === 4) {
        const mtu = u16(b, start + 6);
        return `${d} unreachable - need to frag${mtu ? ` (mtu ${mtu})` : ''}`;
      }
      return UNREACH4[code]?.(d) ?? `${d} unreachable - #${code}`;
    }
    case 5: {
      const gateway = formatIPv4(b, start + 4);
      const kind = ['redirect', 'redirect', 'redirect-tos', 'redirect-tos'][code];
      const to = ['net', 'host', 'net', 'host'][code];
      const d = quoted?.dst ?? '?';
      return kind ? `${kind} ${d} to ${to} ${gateway}` : `redirect-#${code} ${d} to ${gateway}`;
    }
    case 11: return code === 0 ? 'time exceeded in-transit' : code === 1 ? 'ip reassembly time exceeded' : `time exceeded-#${code}`;
    case 12: return `parameter problem - octet ${b[start + 4]!}`;
    case 13: return `time stamp query id ${u16(b, start + 4)} seq ${u16(b, start + 6)}`;
    default: return SIMPLE4[type] ?? `type-#${type}`;
  }
}

// ---- ICMPv6 ---------------------------------------------------------------------------------

interface Quoted6 { src: string; dst: string; protocol: number; dstPort?: number }

/** The quoted IPv6 packet, its extension headers walked (as far as the quote goes) to the upper layer. */
function quotedIpv6(b: Uint8Array, start: number, end: number): Quoted6 | undefined {
  if (end - start < 40) return undefined;
  let nh = b[start + 6]!;
  let o = start + 40;
  for (let n = 0; n < 8 && isIpv6Extension(nh) && o + 2 <= end; n++) {
    const len = ipv6ExtensionLength(nh, b, o);
    nh = b[o]!;
    o += len;
  }
  const q: Quoted6 = { src: formatIPv6(b, start + 8), dst: formatIPv6(b, start + 24), protocol: nh };
  if (o + 4 <= end) q.dstPort = u16(b, o + 2);
  return q;
}

const UNREACH6: Record<number, (q: Quoted6) => string> = {
  0: (q) => `unreachable route ${q.dst}`,
  1: (q) => ` unreachable prohibited ${q.dst}`,
  2: (q) => `beyond scope ${q.dst}, source address ${q.src}`,
  3: (q) => `unreachable address ${q.dst}`,
  4: (q) => `unreachable port, ${q.dst} ${q.protocol === IpProtocol.TCP ? 'tcp' : q.protocol === IpProtocol.UDP ? 'udp' : `ip-proto-${q.protocol}`} port ${q.dstPort ?? 0}`,
};

const PARAM_PROBLEM6 = ['erroneous', 'next header', 'option', 'incomplete header chain'];

const SIMPLE6: Record<number, string> = { 133: 'router solicitation', 134: 'router advertisement' };
const MLD1: Record<number, string> = { 130: 'query', 131: 'report', 132: 'done' };

/** The text after "ICMP6, " for the message in b[start..end) (at least the 4-byte header). */
export function icmp6Text(b: Uint8Array, start: number, end: number): string {
  const type = b[start]!; const code = b[start + 1]!;
  const len = end - start;
  switch (type) {
    case 1: {
      const q = quotedIpv6(b, start + 8, end);
      const text = q ? UNREACH6[code]?.(q) : undefined;
      return `destination unreachable, ${text ?? `unknown unreach code (${code})`}`;
    }
    case 2: return len >= 8 ? `packet too big, mtu ${u32(b, start + 4)}` : 'packet too big';
    case 3: {
      if (code === 1) return 'time exceeded in-transit (reassembly)';
      if (code !== 0) return `time exceeded in-transit, unknown code (${code})`;
      const q = quotedIpv6(b, start + 8, end);
      return q ? `time exceeded in-transit for ${q.dst}` : 'time exceeded in-transit';
    }
    case 4: {
      const what = PARAM_PROBLEM6[code] ?? `code-#${code}`;
      return len >= 8 ? `parameter problem, ${what} - octet ${u32(b, start + 4)}` : `parameter problem, ${what}`;
    }
    case 128: case 129:
      return len >= 8 ? `echo ${type === 128 ? 'request' : 'reply'}, id ${u16(b, start + 4)}, seq ${u16(b, start + 6)}` : `echo ${type === 128 ? 'request' : 'reply'}`;
    case 130: case 131: case 132:
      if (type === 130 && len >= 28) return `multicast listener query v2 [gaddr ${formatIPv6(b, start + 8)}]`;
      // tcpdump prints these fields straight after the name, without a separator.
      return len >= 24 ? `multicast listener ${MLD1[type]}max resp delay: ${u16(b, start + 4)} addr: ${formatIPv6(b, start + 8)}` : `multicast listener ${MLD1[type]}`;
    case 135: return len >= 24 ? `neighbor solicitation, who has ${formatIPv6(b, start + 8)}` : 'neighbor solicitation';
    case 136: return len >= 24 ? `neighbor advertisement, tgt is ${formatIPv6(b, start + 8)}` : 'neighbor advertisement';
    case 137: return len >= 40 ? `redirect, ${formatIPv6(b, start + 8)} to ${formatIPv6(b, start + 24)}` : 'redirect';
    case 143: return len >= 8 ? `multicast listener report v2, ${u16(b, start + 6)} group record(s)` : 'multicast listener report v2';
    default: return SIMPLE6[type] ?? `unknown icmp6 type (${type})`;
  }
}

// ---- IPv6 extension headers -----------------------------------------------------------------

/**
 * The label tcpdump prints for the extension header at b[start] (of `len` bytes) of type `nh`,
 * ending in a space when the walk goes on to the next header. `payloadEnd` bounds a fragment.
 */
export function ipv6ExtensionText(b: Uint8Array, nh: number, start: number, len: number, payloadEnd: number): string {
  switch (nh) {
    case IpProtocol.HopByHop: return 'HBH ';
    case IpProtocol.IPv6Opts: return 'DSTOPT ';
    case IpProtocol.IPv6Frag: {
      const offset = u16(b, start + 2) & 0xfff8;
      return `frag (${offset}|${payloadEnd - start - 8})${offset === 0 ? ' ' : ''}`;
    }
    case IpProtocol.IPv6Route: {
      const type = b[start + 2]!;
      let text = `RT6 (len=${b[start + 1]!}, type=${type}${type === 0 ? ' [Deprecated]' : ''}, segleft=${b[start + 3]!}`;
      if (type === 0 || type === 2) {
        for (let i = 0, a = start + 8; a + 16 <= start + len; i++, a += 16) text += `, [${i}]${formatIPv6(b, a)}`;
      }
      return `${text}) `;
    }
    case IpProtocol.AH: // the walk guarantees 8 bytes; the sequence number needs 12
      if (len < 12) return `AH(spi=0x${hex(b, start + 4, start + 8)}): `;
      return `AH(spi=0x${hex(b, start + 4, start + 8)},seq=0x${u32(b, start + 8).toString(16)},icv=0x${hex(b, start + 12, start + len)}): `;
    default: return '';
  }
}
