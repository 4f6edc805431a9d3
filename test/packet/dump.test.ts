// `tuntap dump` end to end: a TAP created in a namespace with --address (rtnetlink), a filter
// attached in the kernel, -c and -w; the printed lines and the pcap (read by tshark) show
// exactly the ICMP echo requests the kernel sent, and no other traffic.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TestNet, nsExec, nsRun } from '../helpers/netns.js';

const net = new TestNet();
const dir = mkdtempSync(join(tmpdir(), 'tuntap-dump-'));
after(() => { net.cleanup(); rmSync(dir, { recursive: true, force: true }); });
const main = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

test('tuntap dump --tap prints and writes only the filtered packets, then stops at -c', async () => {
  const ns = net.namespace('du');
  const file = join(dir, 'dump.pcap');
  const child = spawn(process.execPath, ['--import', 'tsx', main, 'dump', '--tap', '--netns', ns, '--address', '198.18.90.1/24',
    '-c', '3', '-w', file, 'icmp', 'and', 'dst', 'host', '198.18.90.2'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = ''; let stderr = '';
  child.stdout.on('data', (d) => { stdout += d; });
  child.stderr.on('data', (d) => { stderr += d; });
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`dump did not start: ${stderr}`)), 15_000);
      const check = () => { if (stderr.includes('listening on')) { clearTimeout(timer); resolve(); } };
      child.stderr.on('data', check);
      child.once('exit', () => { clearTimeout(timer); reject(new Error(`dump exited: ${stderr}`)); });
    });
    const dev = /listening on (\S+)/.exec(stderr)![1]!;
    assert.match(stderr, /\(in kernel\)/);
    nsExec(ns, 'ip', 'neigh', 'replace', '198.18.90.2', 'lladdr', '02:00:00:00:00:02', 'dev', dev, 'nud', 'permanent');
    // UDP and pings to another address are filtered out; three pings to .2 end the capture.
    await nsRun(ns, process.execPath, ['-e', `const s = require('node:dgram').createSocket('udp4'); s.send('x', 53, '198.18.90.2', () => s.close());`]);
    await nsRun(ns, 'ping', ['-c', '1', '-W', '0.2', '198.18.90.3']);
    await nsRun(ns, 'ping', ['-c', '3', '-i', '0.2', '-W', '0.2', '198.18.90.2']);
    const code = await Promise.race([exited, new Promise<null>((r) => setTimeout(() => r(null), 10_000))]);
    assert.equal(code, 0, `dump exit code (stderr: ${stderr})`);
  } finally {
    child.kill('SIGKILL');
  }
  const lines = stdout.trim().split('\n');
  assert.equal(lines.length, 3, stdout);
  for (const line of lines) {
    assert.match(line, /^\d\d:\d\d:\d\d\.\d{6} [0-9a-f:]{17} > 02:00:00:00:00:02, IP 198\.18\.90\.1 > 198\.18\.90\.2: ICMP echo request, id \d+, seq \d, length 64$/);
  }
  const fields = execFileSync('tshark', ['-r', file, '-n', '-T', 'fields', '-e', 'ip.dst', '-e', 'icmp.type', '-e', 'icmp.checksum.status'],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim().split('\n');
  assert.deepEqual(fields, ['198.18.90.2\t8\t1', '198.18.90.2\t8\t1', '198.18.90.2\t8\t1']);
});
