// The control socket of a running `tuntap socks`, attacked: who may connect (it is born 0600),
// a request without end, a client that says nothing, a crowd of clients, an unknown request; a
// directory others may write to; a socket left by a killed process. And `tuntap top` reading
// sockets that answer garbage, too much, escape sequences or nothing at all (a WireGuard UAPI
// socket answering without end among them).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, lstatSync, mkdirSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { TestNet, nsRun, uniqueName } from '../helpers/netns.js';
import { builtCli, readableDir, withUapiDir } from '../helpers/user.js';
import { listControlSockets } from '../../src/ops/control.js';
import { requestJson, requestLine } from '../../src/ops/control-client.js';
import { startTuntap, type Running } from './helpers.js';

const net = new TestNet();
let ns: string;
let dir: string;
let socks: Running;
let path: string;

const startSocks = (controlDir: string) => startTuntap(ns, ['socks', '--proxy', 'direct', '--json', '--name', uniqueName('tc')],
  { env: { TUNTAP_CONTROL_DIR: controlDir }, ready: '"event":"ready"', stream: 'stdout' });

before(async () => {
  ns = net.namespace('opc');
  dir = readableDir('tuntap-ops-ctl-');
  socks = await startSocks(dir);
  path = listControlSockets(dir)[0]!.path;
});
after(async () => {
  if (socks.child.exitCode === null) assert.equal(await socks.stop(), 0, socks.stderr());
  net.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

/** Runs a client script against the socket from another process; returns what it printed. */
async function client(script: string): Promise<string> {
  const r = await nsRun(ns, process.execPath, ['-e', `const net = require('node:net'); const path = ${JSON.stringify(path)}; const t0 = Date.now();\n${script}`], 30_000);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.trim();
}

test('born 0600, root\'s, named after what it serves; others cannot connect', async () => {
  const st = lstatSync(path);
  assert.ok(st.isSocket());
  assert.equal(st.mode & 0o777, 0o600);
  assert.equal(st.uid, 0);
  assert.match(path, new RegExp(`/socks-tc\\w+-${socks.child.pid}\\.sock$`));
  const status = await requestJson(path, 'status');
  assert.equal(status.kind, 'proxy');
  assert.equal(status.pid, socks.child.pid);
  const nobody = await nsRun(ns, 'setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', '--',
    process.execPath, '-e', `require('node:net').connect(${JSON.stringify(path)}).on('connect', () => console.log('connected')).on('error', (e) => console.log(e.code))`]);
  assert.equal(nobody.stdout.trim(), 'EACCES');
});

test('a request over 256 bytes, a silent client, a crowd and an unknown request get nothing', async () => {
  // 300 bytes without a newline: closed at once, nothing answered.
  const long = JSON.parse(await client(`
    const s = net.connect(path, () => s.write('x'.repeat(300)));
    let got = '';
    s.on('data', (d) => { got += d; });
    s.on('close', () => console.log(JSON.stringify({ ms: Date.now() - t0, got })));`)) as { ms: number; got: string };
  assert.equal(long.got, '');
  assert.ok(long.ms < 1000, `a long request was read for ${long.ms} ms`);
  // Nothing at all: closed after the 2 s allowed.
  const silent = Number(await client(`net.connect(path).on('close', () => console.log(Date.now() - t0));`));
  assert.ok(silent >= 1500 && silent < 4000, `a silent client was kept ${silent} ms`);
  // 50 silent clients: 8 are held, the rest closed on arrival; then status works again.
  const crowd = Number(await client(`
    let early = 0;
    const all = [...Array(50)].map(() => net.connect(path).on('error', () => {}).on('close', () => { if (Date.now() - t0 < 1000) early++; }));
    setTimeout(() => { console.log(early); for (const s of all) s.destroy(); }, 1200);`));
  assert.ok(crowd >= 40, `clients closed on arrival: ${crowd}`);
  assert.deepEqual(JSON.parse(await requestLine(path, 'get everything')), { error: 'unknown request (the only one is "status")' });
  assert.equal((await requestJson(path, 'status')).kind, 'proxy');
  assert.equal(socks.child.exitCode, null, 'the service runs on');
});

test('a directory others may write to gets no socket (a warning, the service runs); a killed process\'s socket is swept', async () => {
  const open = join(dir, 'world-writable');
  mkdirSync(open);
  chmodSync(open, 0o1777);
  const p = await startSocks(open);
  assert.match(p.stderr(), /warn +no control socket, so tuntap top will not show this process: .*world-writable is writable by others \(mode 1777\)/);
  assert.deepEqual(listControlSockets(open), []);
  assert.equal(await p.stop(), 0);

  const own = join(dir, 'own');
  const killed = await startSocks(own);
  const [left] = listControlSockets(own);
  killed.child.kill('SIGKILL');
  await new Promise((r) => killed.child.once('exit', r));
  assert.ok(lstatSync(left!.path).isSocket(), 'SIGKILL leaves the socket');
  const next = await startSocks(own);
  assert.deepEqual(listControlSockets(own).map((s) => s.pid), [next.child.pid], 'the next start removed the dead one\'s');
  assert.equal(await next.stop(), 0);
  assert.deepEqual(listControlSockets(own), []);
});

test('top reads hostile sockets without harm: garbage, escapes, floods and silence', async () => {
  const evil = readableDir('tuntap-ops-evil-');
  const uapi = readableDir('tuntap-ops-uapi-');
  const servers: Server[] = [];
  // Names carry a live pid (this test's), as a tuntap process's would.
  const serve = (name: string, onConnection: (s: import('node:net').Socket) => void) => new Promise<void>((resolve) => {
    const server = createServer((s) => { s.on('error', () => {}); onConnection(s); });
    servers.push(server);
    server.listen(join(evil, `socks-${name}-${process.pid}.sock`), resolve);
  });
  try {
    await serve('escapes', (s) => s.end(`${JSON.stringify({
      kind: 'proxy', name: '\x1b]0;owned\x07\x1b[2Jname', command: 'socks\x1b[31m', pid: 'x', upstream: '\r\nforged line', sessions: -1,
      bytesUp: 1e308, bytesDown: 'NaN', connections: [{ id: 1, source: '\x1b[H', destination: '\x9b6n', state: 'open', bytesUp: 5, bytesDown: 5 }],
    })}\n`));
    await serve('notjson', (s) => s.end('{"kind": "proxy", \n'));
    await serve('array', (s) => s.end('[1,2,3]\n'));
    await serve('flood', (s) => { const chunk = Buffer.alloc(1 << 20, 0x61); const pump = () => { while (s.write(chunk)); }; s.on('drain', pump); pump(); });
    await serve('silent', () => { /* never answers */ });
    // A WireGuard UAPI socket that answers `get` without end.
    await new Promise<void>((resolve) => {
      const server = createServer((s) => { s.on('error', () => {}); const chunk = Buffer.alloc(1 << 20, 0x61); const pump = () => { while (s.write(chunk)); }; s.on('drain', pump); pump(); });
      servers.push(server);
      server.listen(join(uapi, 'wgflood.sock'), resolve);
    });
    // An empty UAPI directory of its own: other tests' WireGuard interfaces stay out of it.
    const [cmd, ...rest] = withUapiDir(uapi);
    const top = (args: string[]) => nsRun(ns, cmd!, [...rest, 'env', `TUNTAP_CONTROL_DIR=${evil}`, process.execPath, builtCli(), 'top', '--once', '--interval', '0.3', ...args], 30_000);
    const t0 = Date.now();
    const [json, text] = await Promise.all([top(['--json']), top([])]);
    const took = Date.now() - t0;
    assert.ok(took < 15_000, `top took ${took} ms`);
    assert.equal(json.code, 0, json.stderr);
    assert.equal(text.code, 0, text.stderr);
    const view = JSON.parse(json.stdout) as { groups: Array<{ name: string; inBytes: number; outBytes: number }>; errors: string[] };
    assert.equal(view.groups.length, 1, json.stdout);
    assert.equal(view.groups[0]!.inBytes, 0);
    assert.ok(view.errors.some((e) => /notjson.*not JSON/.test(e)), view.errors.join('\n'));
    assert.ok(view.errors.some((e) => /array.*not a JSON object/.test(e)));
    assert.ok(view.errors.some((e) => /flood.*larger than/.test(e)));
    assert.ok(view.errors.some((e) => /silent.*no answer/.test(e)));
    assert.ok(view.errors.some((e) => /wgflood: the answer from its UAPI socket is larger than/.test(e)), view.errors.join('\n'));
    // Nothing from the sockets reaches the terminal as a control character: not on the screen,
    // not in the JSON (which escapes C1 characters, which JSON.stringify leaves as they are).
    assert.doesNotMatch(json.stdout, /[\x00-\x09\x0b-\x1f\x7f-\x9f]/, JSON.stringify(json.stdout));
    assert.match(json.stdout, /\\u009b6n/);
    assert.doesNotMatch(text.stdout, /[\x00-\x09\x0b-\x1f\x7f-\x9f]/, JSON.stringify(text.stdout));
    assert.match(text.stdout, /\?\]0;owned\?\?\[2Jname/);
  } finally {
    for (const s of servers) s.close();
    rmSync(evil, { recursive: true, force: true });
    rmSync(uapi, { recursive: true, force: true });
  }
});
