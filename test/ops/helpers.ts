// What the operations tests share: the built CLI started inside a test namespace (so its
// metrics listen on that namespace's loopback), scrapes with curl, Prometheus's own checker,
// and a small reader of the exposition to compare values.
import assert from 'node:assert/strict';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { nsExec } from '../helpers/netns.js';
import { waitForOutput } from '../helpers/wait.js';
import { processesWith, startCli } from '../cli/helpers.js';

export interface Running {
  child: ChildProcess;
  stderr(): string;
  stdout(): string;
  /** SIGTERM; resolves with the exit code, and checks no process of the run is left. */
  stop(): Promise<number | null>;
}

/**
 * Starts `tuntap ARGS` in `ns` (with `env` set) and waits for `ready` on stderr (or stdout).
 * `prefix` goes in front of env and node (another mount namespace, a user).
 */
export async function startTuntap(ns: string, args: string[], opts: { env?: Record<string, string>; ready: string | RegExp; stream?: 'stdout' | 'stderr'; prefix?: string[] }): Promise<Running> {
  const env = Object.entries(opts.env ?? {}).map(([k, v]) => `${k}=${v}`);
  const run = startCli(args, { ns, prefix: [...(opts.prefix ?? []), ...(env.length ? ['env', ...env] : [])] });
  let stderr = '';
  let stdout = '';
  run.child.stderr!.on('data', (d) => { stderr += d; });
  run.child.stdout!.on('data', (d) => { stdout += d; });
  const exited = new Promise<number | null>((r) => run.child.once('exit', (code) => r(code)));
  try {
    await waitForOutput(run.child, opts.ready, `tuntap ${args.join(' ')}`, { stream: opts.stream ?? 'stderr', timeoutMs: 30_000 });
  } catch (e) {
    run.child.kill('SIGKILL');
    throw new Error(`${(e as Error).message}\nstderr: ${stderr}`);
  }
  return {
    child: run.child, stderr: () => stderr, stdout: () => stdout,
    stop: async () => {
      if (run.child.exitCode === null) run.child.kill('SIGTERM');
      const timer = setTimeout(() => run.child.kill('SIGKILL'), 15_000);
      const code = await exited;
      clearTimeout(timer);
      assert.deepEqual(processesWith(run.marker), [], `tuntap ${args.join(' ')}: a process of it is still running`);
      return code;
    },
  };
}

/** GET http://127.0.0.1:PORT/metrics from inside `ns`. */
export function scrape(ns: string, port: number, host = '127.0.0.1'): string {
  return nsExec(ns, 'curl', '-sS', '--fail', '--max-time', '5', `http://${host}:${port}/metrics`);
}

/** promtool check metrics: it must accept the text without a complaint. */
export function assertPromtoolAccepts(text: string, what: string): void {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  assert.equal(r.status, 0, `${what}: promtool: ${r.stdout}${r.stderr}`);
  assert.equal(`${r.stdout}${r.stderr}`.trim(), '', `${what}: promtool's complaints`);
}

export interface Exposition {
  /** TYPE of each family. */
  types: Map<string, string>;
  samples: Array<{ name: string; labels: Record<string, string>; value: number }>;
}

/** Reads the text format (enough of it for the values the tests compare). */
export function parseExposition(text: string): Exposition {
  const types = new Map<string, string>();
  const samples: Exposition['samples'] = [];
  for (const line of text.split('\n')) {
    const t = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (t) { types.set(t[1]!, t[2]!); continue; }
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m, `not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    }
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return { types, samples };
}

/** The one sample of `name` whose labels include `labels`. */
export function sample(e: Exposition, name: string, labels: Record<string, string> = {}): { labels: Record<string, string>; value: number } {
  const found = e.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  assert.equal(found.length, 1, `${name}${JSON.stringify(labels)}: ${found.length} samples`);
  return found[0]!;
}

export const value = (e: Exposition, name: string, labels: Record<string, string> = {}): number => sample(e, name, labels).value;
