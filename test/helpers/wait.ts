// Waiting in tests: a pause, a condition polled until true, and a line a child process prints.
import type { ChildProcess } from 'node:child_process';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `fn` every 50 ms until it returns true; throws after `timeoutMs` naming `what`. */
export async function waitFor(what: string, fn: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await fn()) return;
    await sleep(50);
  }
  throw new Error(`timed out waiting for ${what}`);
}

/**
 * Resolves with the first match of `pattern` in what `child` prints on `stream` (stdout by
 * default); rejects if the child exits first or nothing matches within `timeoutMs`.
 */
export function waitForOutput(child: ChildProcess, pattern: RegExp | string, what: string,
  opts: { stream?: 'stdout' | 'stderr'; timeoutMs?: number } = {}): Promise<RegExpMatchArray> {
  const stream = child[opts.stream ?? 'stdout']!;
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const re = typeof pattern === 'string' ? new RegExp(pattern.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')) : pattern;
  return new Promise((resolve, reject) => {
    let out = '';
    const onData = (d: Buffer) => {
      out += d;
      const m = out.match(re);
      if (m) { done(); resolve(m); }
    };
    const onExit = (code: number | null) => { done(); reject(new Error(`${what} exited (${code}) before printing "${re.source}": ${out.trim()}`)); };
    const timer = setTimeout(() => { done(); reject(new Error(`${what}: no "${re.source}" within ${timeoutMs} ms: ${out.trim()}`)); }, timeoutMs);
    const done = () => { clearTimeout(timer); stream.off('data', onData); child.off('exit', onExit); };
    stream.on('data', onData);
    child.once('exit', onExit);
  });
}
