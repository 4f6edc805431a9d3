#!/usr/bin/env node
// `npm test`: builds what is missing, installs the Debian tools the tests drive, type-checks,
// then runs every test file against the real kernel (root needed: namespaces, devices).
import { execFileSync, spawnSync } from 'node:child_process';
import { ensureTools, testTools } from './tools.mjs';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
process.chdir(root);
const run = (cmd, args, opts = {}) => execFileSync(cmd, args, { stdio: 'inherit', ...opts });

if (process.getuid?.() !== 0) {
  console.error('npm test drives the real kernel (namespaces, TUN devices): run it as root.');
  process.exit(1);
}
ensureTools(testTools);

if (!existsSync('node_modules/.bin/tsc')) run('npm', ['install', '--no-audit', '--no-fund']);
run('sh', ['scripts/build-native.sh']);
run('npx', ['tsc', '-p', 'tsconfig.json', '--noEmit']);

function findTests(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...findTests(p));
    else if (name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}
const only = process.argv.slice(2);
const files = only.length > 0 ? only : findTests('test');
const result = spawnSync(process.execPath,
  ['--import', 'tsx', '--test', '--test-concurrency=1', '--test-reporter=spec', ...files],
  { stdio: 'inherit' });
process.exit(result.status ?? 1);
