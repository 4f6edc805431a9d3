// `tuntap dump` end to end. On a TAP created in a namespace with --address (rtnetlink), a filter
// attached in the kernel, -c and -w: the printed lines and the pcap (read by tshark) show
// exactly the ICMP echo requests the kernel sent. On a TUN, with a filter only libpcap compiles:
// each printed line is the line `tcpdump -r` prints for the packet dump wrote (IPv4 options,
// fragments, IPv6 fragment and destination-options headers, TCP SYN options), timestamps
// included. Where libpcap cannot be loaded, dump says so and uses the subset.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TestNet, nsExec, nsRun } from '../helpers/netns.js';
import { sleep } from '../helpers/wait.js';

const net = new TestNet();
const dir = mkdtempSync(join(tmpdir(), 'tuntap-dump-'));
after(() => { net.cleanup(); rmSync(dir, { recursive: true, force: true }); });
const main = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

interface Dump { child: ChildProcess; device: string; out: { stdout: string; stderr: string }; exited: Promise<number | null> }

/** Starts `tuntap dump ARGS` and resolves once it is listening. */
async function startDump(args: string[]): Promise<Dump> {
  const child = spawn(process.execPath, ['--import', 'tsx', main, 'dump', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const out = { stdout: '', stderr: '' };
  child.stdout!.on('data', (d) => { out.stdout += d; });
  child.stderr!.on('data', (d) => { out.stderr += d; });
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`dump did not start: ${out.stderr}`)), 15_000);
      const check = () => { if (out.stderr.includes('listening on')) { clearTimeout(timer); resolve(); } };
      child.stderr!.on('data', check);
      child.once('exit', () => { clearTimeout(timer); reject(new Error(`dump exited: ${out.stderr}`)); });
    });
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  }
  return { child, device: /listening on (\S+)/.exec(out.stderr)![1]!, out, exited };
}

const within = (p: Promise<number | null>, ms: number) => Promise.race([p, sleep(ms).then(() => 'timeout' as const)]);

test('tuntap dump --tap prints and writes only the filtered packets, then stops at -c', async () => {
  const ns = net.namespace('du');
  const file = join(dir, 'dump.pcap');
  const dump = await startDump(['--tap', '--netns', ns, '--address', '198.18.90.1/24', '-c', '3', '-w', file, 'icmp', 'and', 'dst', 'host', '198.18.90.2']);
  try {
    assert.match(dump.out.stderr, /\(in kernel\)/);
    nsExec(ns, 'ip', 'neigh', 'replace', '198.18.90.2', 'lladdr', '02:00:00:00:00:02', 'dev', dump.device, 'nud', 'permanent');
    // UDP and pings to another address are filtered out; three pings to .2 end the capture.
    await nsRun(ns, process.execPath, ['-e', `const s = require('node:dgram').createSocket('udp4'); s.send('x', 53, '198.18.90.2', () => s.close());`]);
    await nsRun(ns, 'ping', ['-c', '1', '-W', '0.2', '198.18.90.3']);
    await nsRun(ns, 'ping', ['-c', '3', '-i', '0.2', '-W', '0.2', '198.18.90.2']);
    assert.equal(await within(dump.exited, 10_000), 0, `dump exit code (stderr: ${dump.out.stderr})`);
  } finally {
    dump.child.kill('SIGKILL');
  }
  const lines = dump.out.stdout.trim().split('\n');
  assert.equal(lines.length, 3, dump.out.stdout);
  for (const line of lines) {
    assert.match(line, /^\d\d:\d\d:\d\d\.\d{6} [0-9a-f:]{17} > 02:00:00:00:00:02, IP 198\.18\.90\.1 > 198\.18\.90\.2: ICMP echo request, id \d+, seq \d, length 64$/);
  }
  const fields = execFileSync('tshark', ['-r', file, '-n', '-T', 'fields', '-e', 'ip.dst', '-e', 'icmp.type', '-e', 'icmp.checksum.status'],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim().split('\n');
  assert.deepEqual(fields, ['198.18.90.2\t8\t1', '198.18.90.2\t8\t1', '198.18.90.2\t8\t1']);
});

// Selects IPv4 with options, IPv4 fragments, IPv6 and TCP SYNs: all beyond the built-in subset.
const FILTER = 'ip[0] & 0xf > 5 or ip[6:2] & 0x3fff != 0 or ip6 or tcp[tcpflags] & tcp-syn != 0';

test('tuntap dump on a TUN prints, for every packet it writes, the line tcpdump prints', async () => {
  const ns = net.namespace('dt');
  const file = join(dir, 'tun.pcap');
  const dump = await startDump(['--netns', ns, '--address', '198.18.91.1/24', '-w', file, ...FILTER.split(' ')]);
  let code: number | null | 'timeout';
  try {
    assert.match(dump.out.stderr, /filter ".*" by libpcap version \d/);
    net.configure(ns, dump.device, { addresses: [{ address: 'fd00:91::1/64', nodad: true }] });
    // Nothing answers on the TUN: each command's own packets are what dump sees.
    const runs = [
      ['ping', '-c', '1', '-W', '0.3', '-R', '198.18.91.2'],         // record route: 40 bytes of IPv4 options
      ['ping', '-c', '1', '-W', '0.3', '-s', '3000', '198.18.91.2'], // three IPv4 fragments
      ['ping', '-6', '-c', '1', '-W', '0.3', '-s', '3000', 'fd00:91::2'], // three IPv6 fragment headers
      ['ping', '-c', '1', '-W', '0.3', '198.18.91.3'],               // a plain echo: filtered out
      ['sh', '-c', "echo x | socat - 'UDP6-SENDTO:[fd00:91::2]:40003,setsockopt-bin=41:59:x0000010400000000'"],
      ['sh', '-c', 'echo x | socat - UDP4-SENDTO:198.18.91.2:40003'], // plain UDP: filtered out
      [process.execPath, '-e', "const s = require('node:net').connect(40001, '198.18.91.2'); s.on('error', () => {}); setTimeout(() => process.exit(0), 300);"],
    ];
    for (const [cmd, ...args] of runs) await nsRun(ns, cmd!, args);
    await sleep(300);
  } finally {
    dump.child.kill('SIGINT');
    code = await within(dump.exited, 10_000);
    dump.child.kill('SIGKILL');
  }
  assert.equal(code, 0, dump.out.stderr);
  const ours = dump.out.stdout.trim().split('\n');
  const theirs = execFileSync('tcpdump', ['-r', file, '-n', '-S'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], env: { ...process.env, TZ: 'UTC' } })
    .trim().split('\n');
  assert.deepEqual(ours, theirs);
  // What the filter passed, and only that: tcpdump applying the same expression to the file keeps every packet.
  const filtered = execFileSync('tcpdump', ['-r', file, '-n', FILTER], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim().split('\n');
  assert.equal(filtered.length, ours.length);
  const has = (re: RegExp, what: string) => assert.ok(ours.some((l) => re.test(l)), `${what} in:\n${ours.join('\n')}`);
  has(/ ICMP echo request, id \d+, seq 1, length 64$/, 'the record-route echo request, 64 bytes as tcpdump says');
  has(/ ICMP echo request, id \d+, seq 1, length 1480$/, 'a first IPv4 fragment');
  has(/ IP 198\.18\.91\.1 > 198\.18\.91\.2: ip-proto-1$/, 'a later IPv4 fragment');
  has(/ frag \(0\|1448\) ICMP6, echo request, id \d+, seq 1, length 1448$/, 'a first IPv6 fragment');
  has(/ frag \(2896\|112\)$/, 'the last IPv6 fragment');
  has(/: DSTOPT \d+ > 40003: UDP, length 2$/, 'UDP after a destination options header');
  has(/ > 198\.18\.91\.2\.40001: Flags \[S\], seq \d+, win \d+, options \[mss 1460,sackOK,TS val \d+ ecr 0,nop,wscale \d+\], length 0$/, 'a SYN with its options');
  assert.ok(!ours.some((l) => /198\.18\.91\.3|IP 198\.18\.91\.1\.\d+ > 198\.18\.91\.2\.40003/.test(l)), 'the plain echo and IPv4 UDP were filtered out');
});

test('tuntap dump keeps a libpcap program the kernel would misjudge in user space, and says which compiler it uses', async () => {
  const ns = net.namespace('dv');
  const dump = await startDump(['--tap', '--netns', ns, 'vlan', 'and', 'udp']);
  try {
    assert.match(dump.out.stderr, /filter "vlan and udp" by libpcap version [^,]*\(in user space/);
    assert.doesNotMatch(dump.out.stderr, /\(in kernel\)/);
  } finally {
    dump.child.kill('SIGINT');
    await within(dump.exited, 10_000);
    dump.child.kill('SIGKILL');
  }
  const builtin = await startDump(['--tap', '--netns', ns, '--builtin-filter', 'vlan', 'and', 'udp']);
  try {
    assert.match(builtin.out.stderr, /by the built-in subset \(--builtin-filter\) \(in kernel\)/);
  } finally {
    builtin.child.kill('SIGINT');
    await within(builtin.exited, 10_000);
    builtin.child.kill('SIGKILL');
  }
});

test('without libpcap, tuntap dump compiles with the subset and says why', () => {
  const libs = execFileSync('sh', ['-c', 'ldconfig -p | grep -o "/[^ ]*libpcap\\.so[^ ]*" | xargs -r readlink -f | sort -u'], { encoding: 'utf8' }).trim().split('\n').filter(Boolean);
  assert.ok(libs.length > 0);
  // A private mount namespace where every libpcap file reads as empty: dlopen() fails there only.
  const hidden = (args: string[]) => {
    const r = spawnSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c',
      `${libs.map((f) => `mount --bind /dev/null ${f}`).join(' && ')} && exec "$@" 2>&1`, 'sh', process.execPath, '--import', 'tsx', main, 'dump', ...args],
    { encoding: 'utf8' });
    return { status: r.status, out: r.stdout };
  };
  const help = hidden(['--help']);
  assert.equal(help.status, 0, help.out);
  assert.match(help.out, /compiled by the built-in subset \(libpcap not loaded: .*libpcap/);
  const program = hidden(['-d', 'tcp', 'port', '22']);
  assert.equal(program.status, 0, program.out);
  assert.match(program.out, /compiled by the built-in subset/);
  assert.match(program.out, /\(000\) ldb +\[0\]/);
  const refused = hidden(['-d', 'tcp[tcpflags]', '&', 'tcp-syn', '!=', '0']);
  assert.notEqual(refused.status, 0);
  assert.match(refused.out, /filter: unexpected "tcp\[tcpflags\]"/);
});
