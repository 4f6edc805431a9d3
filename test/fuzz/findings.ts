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
    id: 'F8', target: 'wg-uapi-set',
    summary: 'uapiSet (src/wireguard/uapi.ts) admits "endpoint=[fe80::1%eth0]:51820" (net.isIP accepts a zone name), then encodeEndpoint throws TypeError (it wants a numeric scope): not a UapiError, so the socket answers errno=2 instead of 22',
    matches: (e) => e instanceof TypeError && thrownIn(e, 'encodeEndpoint'),
  },
];
