// The long-running commands' log lines as a service manager sees them: text or JSON, one line
// per event, filtered by --log-level; no timestamps under systemd (INVOCATION_ID, JOURNAL_STREAM)
// and syslog priorities when stderr is the journal's stream (the stream's own device and inode
// in JOURNAL_STREAM, as systemd sets it). And the options' own mistakes, and a taken metrics port.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TestNet, uniqueName } from '../helpers/netns.js';
import { readableDir } from '../helpers/user.js';
import { assertOneLine, cli, state } from '../cli/helpers.js';
import { startTuntap } from './helpers.js';

const net = new TestNet();
let ns: string;
let dir: string;
before(() => {
  ns = net.namespace('olg');
  dir = readableDir('tuntap-ops-log-');
});
after(() => {
  net.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

/** The stderr lines of a `tuntap socks --proxy direct` run with `args`, from start to SIGTERM. */
async function socksLines(args: string[], opts: { env?: Record<string, string>; prefix?: string[] } = {}): Promise<string[]> {
  // With --json, ready is a line on stdout (and "proxying through" is not logged).
  const json = args.includes('--json');
  const p = await startTuntap(ns, ['socks', '--proxy', 'direct', '--name', uniqueName('olg'), '--metrics', '0.0.0.0:9400', ...args],
    { ready: json ? '"event":"ready"' : 'proxying through', stream: json ? 'stdout' : 'stderr', env: { TUNTAP_CONTROL_DIR: dir, ...opts.env }, prefix: opts.prefix });
  assert.equal(await p.stop(), 0, p.stderr());
  return p.stderr().split('\n').filter((l) => l !== '');
}

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z /;

test('text by default: a timestamp, the level, the event; --log-level filters', async () => {
  const lines = await socksLines([]);
  assert.ok(lines.length >= 3, lines.join('\n'));
  for (const l of lines) assert.match(l, ISO, l);
  assert.ok(lines.some((l) => /Z warn {2}metrics on 0\.0\.0\.0:9400 can be read by anyone who reaches that address$/.test(l)), lines.join('\n'));
  assert.ok(lines.some((l) => /Z info {2}\S+: proxying through direct$/.test(l)), lines.join('\n'));
  const warnOnly = await socksLines(['--log-level', 'warn', '--json']);
  assert.deepEqual(warnOnly.map((l) => l.replace(ISO, '')), ['warn  metrics on 0.0.0.0:9400 can be read by anyone who reaches that address']);
  assert.deepEqual(await socksLines(['--log-level', 'error', '--json']), []);
});

test('--log-format json: every line an object with time, level and msg', async () => {
  const lines = await socksLines(['--log-format', 'json']);
  const records = lines.map((l) => JSON.parse(l) as { time?: string; level: string; msg: string });
  for (const r of records) {
    assert.match(r.time ?? '', /^\d{4}-.*Z$/);
    assert.ok(['error', 'warn', 'info', 'debug'].includes(r.level));
  }
  assert.ok(records.some((r) => r.level === 'info' && /: proxying through direct$/.test(r.msg)));
  assert.ok(records.some((r) => r.level === 'warn' && r.msg.startsWith('metrics on 0.0.0.0:9400')));
});

test('under systemd: no timestamps; on the journal\'s stream, each line carries its syslog priority', async () => {
  const text = await socksLines([], { env: { INVOCATION_ID: randomBytes(16).toString('hex') } });
  for (const l of text) assert.match(l, /^(info|warn) /, l);
  const json = await socksLines(['--log-format', 'json'], { env: { INVOCATION_ID: 'x' } });
  for (const l of json) assert.equal((JSON.parse(l) as { time?: string }).time, undefined, l);
  // JOURNAL_STREAM names the device and inode of stderr, as systemd sets it for a unit whose
  // output goes to the journal.
  const journal = await socksLines([], {
    prefix: ['sh', '-c', 'JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2) exec "$@"', 'sh'],
  });
  assert.ok(journal.some((l) => /^<4>warn {2}metrics on/.test(l)), journal.join('\n'));
  assert.ok(journal.some((l) => /^<6>info {2}\S+: proxying through direct$/.test(l)), journal.join('\n'));
  for (const l of journal) assert.match(l, /^<[3467]>(error|warn|info|debug) /, l);
  // Set, but for another stream (a child whose stderr went elsewhere): no priorities.
  const other = await socksLines([], { env: { JOURNAL_STREAM: '1:2' } });
  for (const l of other) assert.match(l, /^(info|warn) /, l);
});

test('wg up logs the same way', async () => {
  const name = uniqueName('olw');
  const conf = join(dir, `${name}.conf`);
  writeFileSync(conf, `[Interface]\nPrivateKey = ${randomBytes(32).toString('base64')}\nAddress = 198.18.75.1/24\nDNS = 198.18.75.53\n`, { mode: 0o600 });
  const p = await startTuntap(ns, ['wg', 'up', conf, '--log-format', 'json'], { ready: `${name} is up` });
  assert.equal(await p.stop(), 0, p.stderr());
  const records = p.stderr().split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as { level: string; msg: string });
  assert.ok(records.some((r) => r.level === 'warn' && /DNS/.test(r.msg)), p.stderr());
  assert.ok(records.some((r) => r.level === 'info' && r.msg.startsWith(`${name} is up (listening on UDP port `)), p.stderr());
});

test('a wrong option is one line with exit 2; a taken metrics port is one line with exit 1, and nothing is left', async () => {
  for (const [args, message] of [
    [['--log-level', 'loud'], /--log-level must be error, warn, info, debug, not "loud"/],
    [['--log-format', 'xml'], /--log-format must be text or json, not "xml"/],
    [['--metrics', 'localhost:80'], /--metrics: "localhost" is not an IP address/],
    [['--metrics', '::1:80'], /--metrics: "::1:80" is not \[ADDRESS:\]PORT \(an IPv6 address in brackets: \[::1\]:9586\)/],
    [['--metrics', '70000'], /--metrics: port 70000 is not 1\.\.65535/],
  ] as const) {
    for (const command of [['socks', '--proxy', 'direct'], ['bridge', 'a0', 'b0'], ['wg', 'up', '/nonexistent/wg0.conf']]) {
      const r = cli([...command, ...args], { ns });
      assert.equal(r.code, 2, `${command.join(' ')} ${args.join(' ')}: ${r.stderr}`);
      assert.match(assertOneLine(r, args.join(' ')), message);
    }
  }
  const before = state(ns);
  const first = await startTuntap(ns, ['socks', '--proxy', 'direct', '--name', uniqueName('olp'), '--metrics', '9401'],
    { ready: 'proxying through', env: { TUNTAP_CONTROL_DIR: dir } });
  try {
    const second = cli(['socks', '--proxy', 'direct', '--name', uniqueName('olp'), '--metrics', '9401'], { ns });
    assert.equal(second.code, 1);
    assert.equal(assertOneLine(second, 'a taken port'), 'tuntap: serving metrics on 127.0.0.1:9401: the port is in use (listen: EADDRINUSE)');
  } finally {
    assert.equal(await first.stop(), 0, first.stderr());
  }
  assert.equal(state(ns), before, 'nothing is left behind');
});
