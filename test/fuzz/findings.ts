// Findings in files the fuzzer does not own, reported and waiting for their fix. A job counts an
// input that fails this way (as "known F1") and goes on; FUZZ_STRICT=1 stops on them too. Each
// one has a regression case in fuzz.test.ts, a todo until the fix lands; then delete it here.
import type { KnownFinding } from './framework.js';

/** True when `e` was thrown from (or through) function `fn` in src/. */
const thrownIn = (e: unknown, fn: string) => e instanceof Error && new RegExp(`at ${fn} \\(.*/src/`).test(e.stack ?? '');

export const knownFindings: readonly KnownFinding[] = [
  {
    id: 'F2', target: 'wg-config',
    summary: 'parseConfig (src/wireguard/config.ts) accepts "Table = N" for any N of digits; quickUp passes Number(N) to netlink as a u32, so 4294967297 routes into table 1',
    matches: (e) => e instanceof Error && /^Table \d+ accepted/.test(e.message),
  },
  {
    id: 'F3', target: 'wg-config',
    summary: 'parseConfig (src/wireguard/config.ts) takes "FwMark = 0x..." through Number() unchecked: "0x" and "0xZZ" give NaN, "0x1ffffffff" a mark past 32 bits; both reach the interface and its fwmark rules',
    matches: (e) => e instanceof Error && /^FwMark \S+ accepted/.test(e.message),
  },
  {
    id: 'F4', target: 'proxy-dns',
    summary: 'parseQuery (src/proxy/dns.ts) returns labels with any bytes (CR, LF, NUL, ":", "/", "." inside a label); in fake-IP mode the engine hands that name to the upstream, e.g. "CONNECT a\\r\\nX-Injected: 1:443" to an HTTP proxy',
    matches: (e) => e instanceof Error && /hands the proxy the name/.test(e.message),
  },
  {
    id: 'F5', target: 'proxy-socks5-udp',
    summary: 'socks5UdpUnwrap (src/proxy/upstream.ts) reads the domain length past the end of [0,0,0,3] and throws RangeError (offset NaN); it runs in a dgram "message" handler, so one 4-byte datagram to a UDP session\'s port kills tun2socks',
    matches: (e) => (e instanceof RangeError || e instanceof Error && e.name === 'ReadPastEnd') && thrownIn(e, 'socks5UdpUnwrap'),
  },
  {
    id: 'F6', target: 'proxy-socks5-reply',
    summary: 'readExactly (src/proxy/upstream.ts) mishandles a reply cut short by the proxy closing: it returns fewer bytes than asked (then readUInt16BE throws RangeError, e.g. 05 00 | 05 00 00 01 c6 12 05 01 40), or waits for an "end" already emitted, so the handshake hangs until its timeout (10 s by default; e.g. 05 00 | 05 00 00 03 0b 72)',
    matches: (e) => e instanceof Error && (/waited for its timeout/.test(e.message) || (e instanceof RangeError && thrownIn(e, 'socks5Request'))),
  },
  {
    id: 'F8', target: 'wg-uapi-set',
    summary: 'uapiSet (src/wireguard/uapi.ts) admits "endpoint=[fe80::1%eth0]:51820" (net.isIP accepts a zone name), then encodeEndpoint throws TypeError (it wants a numeric scope): not a UapiError, so the socket answers errno=2 instead of 22',
    matches: (e) => e instanceof TypeError && thrownIn(e, 'encodeEndpoint'),
  },
  {
    id: 'F7', target: 'proxy-http-reply',
    summary: 'readHttpHead (src/proxy/upstream.ts) reads the head one byte per promise and copies it whole on every byte: a 16 KiB head that never ends takes 150-400 ms of CPU per connection before it is refused',
    matches: () => false,  // a matter of time, not of an error: fuzz.test.ts measures it
  },
];
