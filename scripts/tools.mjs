// The Debian packages the tests and benchmarks drive as independent peers, installed when the
// command that proves each present is missing. Used by scripts/test.mjs and bench/run.ts.
import { execFileSync, spawnSync } from 'node:child_process';

// Daemons (danted, dnsmasq) live in sbin, which a non-login PATH may lack.
process.env.PATH = `${process.env.PATH ?? ''}:/usr/local/sbin:/usr/sbin:/sbin`;

/** command → Debian package, for the test suite. */
export const testTools = {
  ping: 'iputils-ping', iperf3: 'iperf3', tshark: 'tshark', tcpdump: 'tcpdump', wg: 'wireguard-tools',
  'wireguard-go': 'wireguard-go', socat: 'socat', curl: 'curl',
  microsocks: 'microsocks', danted: 'dante-server', tinyproxy: 'tinyproxy', dnsmasq: 'dnsmasq-base',
  proxychains4: 'proxychains4',
  ethtool: 'ethtool', 'qemu-system-x86_64': 'qemu-system-x86', strace: 'strace',
  // the package test: the arm64 prebuild is cross-compiled and loaded under qemu-user
  'aarch64-linux-gnu-g++': 'g++-aarch64-linux-gnu', 'qemu-aarch64': 'qemu-user',
  // The units' checks: systemd's own verifier and notify client, and a notify socket's receiver.
  'systemd-analyze': 'systemd', 'systemd-notify': 'systemd', python3: 'python3',
  // metrics are checked with Prometheus's own parser, top in a real terminal
  promtool: 'prometheus', tmux: 'tmux',
};

/** What `npm run demo` drives (the rest of the demo is tuntap itself). */
export const demoTools = { ping: 'iputils-ping' };

/** Extra baselines only the benchmarks compare against. */
export const benchTools = { ...testTools, openvpn: 'openvpn', cc: 'gcc' };

/** Installs the packages whose commands are missing (needs root and Debian's apt). */
export function ensureTools(tools) {
  const missing = [...new Set(Object.entries(tools)
    .filter(([cmd]) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status !== 0)
    .map(([, pkg]) => pkg))];
  if (missing.length === 0) return;
  console.log(`installing tools: ${missing.join(' ')}`);
  const opts = { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } };
  execFileSync('apt-get', ['update', '-qq'], opts);
  execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], opts);
}

// `node scripts/tools.mjs test|bench|demo`: install one set from the command line.
if (import.meta.url === `file://${process.argv[1]}`) {
  const sets = { test: testTools, bench: benchTools, demo: demoTools };
  const set = sets[process.argv[2] ?? 'test'];
  if (!set) { console.error(`usage: node scripts/tools.mjs ${Object.keys(sets).join('|')}`); process.exit(2); }
  if (process.getuid?.() === 0) ensureTools(set);
}
