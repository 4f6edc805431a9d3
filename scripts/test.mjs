#!/usr/bin/env node
// `npm test`: builds what is missing, installs the Debian tools the tests drive, type-checks,
// then runs every test file against the real kernel (root needed: namespaces, devices).
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
process.chdir(root);
// Daemons the tests start (danted, dnsmasq) live in sbin, which a non-login PATH may lack.
process.env.PATH = `${process.env.PATH ?? ''}:/usr/local/sbin:/usr/sbin:/sbin`;
const run = (cmd, args, opts = {}) => execFileSync(cmd, args, { stdio: 'inherit', ...opts });

if (process.getuid?.() !== 0) {
  console.error('npm test drives the real kernel (namespaces, TUN devices): run it as root.');
  process.exit(1);
}

// Debian packages the tests use as independent peers, by the command that proves each present.
const tools = {
  ping: 'iputils-ping', iperf3: 'iperf3', tshark: 'tshark', tcpdump: 'tcpdump', wg: 'wireguard-tools',
  'wireguard-go': 'wireguard-go', socat: 'socat', curl: 'curl',
  microsocks: 'microsocks', danted: 'dante-server', tinyproxy: 'tinyproxy', dnsmasq: 'dnsmasq-base',
  proxychains4: 'proxychains4',
  ethtool: 'ethtool', 'qemu-system-x86_64': 'qemu-system-x86',
};
const missing = Object.entries(tools)
  .filter(([cmd]) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status !== 0)
  .map(([, pkg]) => pkg);
if (missing.length > 0) {
  console.log(`installing test tools: ${missing.join(' ')}`);
  run('apt-get', ['update', '-qq']);
  run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...new Set(missing)],
    { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
}

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
