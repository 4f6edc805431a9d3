// The built CLI (dist/src/cli/main.js) as users run it, inside test namespaces, and the checks
// every CLI test makes: what it printed on stderr, and that it left nothing behind.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { nsExec, sh } from '../helpers/netns.js';
import { builtCli } from '../helpers/user.js';
import { waitForOutput } from '../helpers/wait.js';

export interface CliResult { code: number | null; stdout: string; stderr: string }

export interface CliOptions {
  /** Namespace to run in (`ip netns exec`); none: the test's own. */
  ns?: string;
  /** argv before node, e.g. asUser(...) or withTunNode(...). */
  prefix?: string[];
  /** main.js to run (a staged copy for another user); default the checkout's, built if stale. */
  main?: string;
  input?: string;
  timeoutMs?: number;
}

// Every run carries a marker in its environment, which its children inherit: a process left
// with it after the run is a leak (and may hold a namespace alive).
const MARKER = 'TUNTAP_CLI_TEST_RUN';

function argv(args: string[], opts: CliOptions, marker: string): string[] {
  return [...(opts.ns ? ['ip', 'netns', 'exec', opts.ns] : []), ...(opts.prefix ?? []), 'env', `${MARKER}=${marker}`,
    process.execPath, opts.main ?? builtCli(), ...args];
}

/** Runs the CLI to completion. */
export function cli(args: string[], opts: CliOptions = {}): CliResult & { marker: string } {
  const marker = randomUUID();
  const [cmd, ...rest] = argv(args, opts, marker);
  const r = spawnSync(cmd!, rest, { encoding: 'utf8', input: opts.input ?? '', timeout: opts.timeoutMs ?? 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, marker };
}

/** Starts the CLI in the background (the caller stops it). */
export function startCli(args: string[], opts: CliOptions = {}): { child: ChildProcess; marker: string } {
  const marker = randomUUID();
  const [cmd, ...rest] = argv(args, opts, marker);
  return { child: spawn(cmd!, rest, { stdio: ['ignore', 'pipe', 'pipe'] }), marker };
}

/** Pids of processes still carrying `marker` in their environment. */
export function processesWith(marker: string): number[] {
  const found: number[] = [];
  const needle = `${MARKER}=${marker}`;
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      if (readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0').includes(needle)) found.push(Number(pid));
    } catch { /* gone, or a kernel thread */ }
  }
  return found;
}

/**
 * What a CLI run could leave behind: the test namespace's devices, addresses, rules and routes,
 * and the root namespace's devices and rules (named only: other tests run meanwhile).
 */
export function state(ns: string): string {
  const linkNames = (out: string) => out.split('\n').map((l) => /^\d+: ([^:@]+)/.exec(l)?.[1]).filter(Boolean).sort().join(' ');
  return [
    nsExec(ns, 'ip', '-o', 'link'), nsExec(ns, 'ip', '-o', 'addr'),
    nsExec(ns, 'ip', '-4', 'rule'), nsExec(ns, 'ip', '-6', 'rule'),
    nsExec(ns, 'ip', '-4', 'route', 'show', 'table', 'all'), nsExec(ns, 'ip', '-6', 'route', 'show', 'table', 'all'),
    `root links: ${linkNames(sh('ip', ['-o', 'link']))}`, sh('ip', ['-4', 'rule']), sh('ip', ['-6', 'rule']),
  ].join('\n');
}

/** stderr is exactly one line, with the CLI's prefix and no stack frame; returns that line. */
export function assertOneLine(r: CliResult, what: string): string {
  const lines = r.stderr.split('\n').filter((l) => l !== '');
  assert.equal(lines.length, 1, `${what}: stderr is not one line:\n${r.stderr}`);
  assert.doesNotMatch(r.stderr, /^\s+at /m, `${what}: a stack frame`);
  assert.match(lines[0]!, /^tuntap: /, what);
  return lines[0]!;
}

/**
 * Starts a long-running command in `ns`, waits for a line containing `ready` on `stream`, runs
 * `whileUp` with that line, and stops it with SIGTERM: it must exit 0 and leave nothing behind.
 * Returns what it printed on stderr.
 */
export async function runUntilReady(ns: string, args: string[], ready: string, stream: 'stdout' | 'stderr',
  opts: { prefix?: string[]; whileUp?: (line: string) => void } = {}): Promise<string> {
  const before = state(ns);
  const run = startCli(args, { ns, prefix: opts.prefix });
  let stderr = '';
  run.child.stderr!.on('data', (d) => { stderr += d; });
  const exited = new Promise<number | null>((r) => run.child.once('exit', (code) => r(code)));
  const what = `tuntap ${args.join(' ')}`;
  try {
    const escaped = ready.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const [line] = await waitForOutput(run.child, new RegExp(`^.*${escaped}.*$`, 'm'), what, { stream, timeoutMs: 30_000 });
    opts.whileUp?.(line!);
    run.child.kill('SIGTERM');
    assert.equal(await exited, 0, `${what}: ${stderr}`);
  } finally {
    run.child.kill('SIGKILL');
  }
  assert.deepEqual(processesWith(run.marker), [], `${what}: a process of it is still running`);
  assert.equal(state(ns), before, `${what} left something behind`);
  return stderr;
}
