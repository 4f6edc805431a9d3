// Findings in files the fuzzer does not own, reported and waiting for their fix. A job counts an
// input that fails this way (as "known F1") and goes on; FUZZ_STRICT=1 stops on them too. Each
// one has a regression case in fuzz.test.ts, a todo until the fix lands; then delete it here.
import type { KnownFinding } from './framework.js';

/** True when `e` was thrown from (or through) function `fn` in src/. */
const thrownIn = (e: unknown, fn: string) => e instanceof Error && new RegExp(`at ${fn} \\(.*/src/`).test(e.stack ?? '');

export const knownFindings: readonly KnownFinding[] = [
  {
    id: 'F1', target: 'netlink-batch',
    summary: 'parseLink (src/netlink/links.ts) throws RangeError on an RTM_NEWLINK shorter than ifinfomsg, where parseAddress/parseRoute/parseRule return undefined; through Netlink.get/dump it reaches the caller untyped',
    matches: (e) => e instanceof RangeError && thrownIn(e, 'parseLink'),
  },
];
