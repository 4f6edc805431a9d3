// Findings in files the fuzzer does not own, reported and waiting for their fix. A job counts an
// input that fails this way (as "known F1") and goes on; FUZZ_STRICT=1 stops on them too. Each
// one has a regression case in fuzz.test.ts, a todo until the fix lands; then delete it here.
import type { KnownFinding } from './framework.js';

// Every finding so far (F1-F10) is fixed; its reproducer stays in fuzz.test.ts as a regression case.
export const knownFindings: readonly KnownFinding[] = [];
