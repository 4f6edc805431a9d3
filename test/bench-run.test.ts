// bench/run.ts's own command line: --help runs nothing, and an option npm kept for itself
// (`npm run bench --duration 3`) is named with the fix instead of running a bench called "3".
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const run = fileURLToPath(new URL('../bench/run.ts', import.meta.url));

function bench(args: string[], env: Record<string, string> = {}) {
  return spawnSync(process.execPath, ['--import', 'tsx', run, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 60_000 });
}

test('--help prints the usage, the benchmarks and the -- rule, and runs nothing', () => {
  const started = Date.now();
  const r = bench(['--help']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^usage: npm run bench -- \[NAME\.\.\.\] \[--duration SEC\]/);
  assert.match(r.stdout, /forwarder, l2, packet, proxy, wireguard/);
  assert.doesNotMatch(r.stdout, /^== /m, 'no benchmark ran');
  assert.ok(Date.now() - started < 30_000);
});

test('`npm run bench --duration 3` is answered with `npm run bench -- --duration 3`', () => {
  // What npm hands over for `npm run bench --duration 3`: the 3 as an argument, --duration in its config.
  const r = bench(['3'], { npm_config_duration: 'true' });
  assert.equal(r.status, 2);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /npm took --duration for itself; .*npm run bench -- --duration N/);
});
