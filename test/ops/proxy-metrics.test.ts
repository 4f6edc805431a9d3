// `tuntap socks --metrics` carrying real traffic through dante: while a connection is held
// open the session gauges and the control socket show it; once it closes, the counters have
// moved by the bytes it echoed, and a DNS query carried over TCP is counted as answered.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { nsRun, nsSpawn } from '../helpers/netns.js';
import { readableDir } from '../helpers/user.js';
import { sleep, waitFor } from '../helpers/wait.js';
import { ProxyTopology, PROXY4, SERVER4 } from '../proxy/topology.js';
import { listControlSockets } from '../../src/ops/control.js';
import { requestJson } from '../../src/ops/control-client.js';
import { assertPromtoolAccepts, parseExposition, scrape, value, type Exposition } from './helpers.js';

let t: ProxyTopology;
let controlDir: string;
before(async () => {
  t = new ProxyTopology();
  controlDir = readableDir('tuntap-ops-control-');
  await t.startServers();
  await t.startDante(1081);
});
after(async () => {
  await t?.cleanup();
  rmSync(controlDir, { recursive: true, force: true });
});

const N = 100_000;
// Sends N bytes to the echo server, reads them back, says so, holds the connection until
// stdin closes, then closes it.
const echoScript = `
const net = require('node:net');
const s = net.connect({ host: '${SERVER4}', port: 7000 });
let got = 0;
s.on('connect', () => s.write(Buffer.alloc(${N}, 97)));
s.on('data', (d) => { got += d.length; if (got === ${N}) console.log('echoed'); });
s.on('close', () => process.exit(got === ${N} ? 0 : 1));
process.stdin.on('end', () => s.end());
process.stdin.resume();
`;

test('sessions by state, bytes each way, DNS answered over TCP: counters move by what was sent', async () => {
  await t.withTuntap('socks', ['--proxy', `socks5://${PROXY4}:1081`, '--route', '--metrics', '9586'], async (p) => {
    const metrics = (): Exposition => {
      const text = scrape(t.app, 9586);
      assertPromtoolAccepts(text, 'socks');
      return parseExposition(text);
    };
    const dev = JSON.parse(p.stdout.find((l) => l.includes('"event":"ready"'))!) as { device: string };
    const l = { interface: dev.device };
    const start = metrics();
    const client = nsSpawn(t.app, process.execPath, ['-e', echoScript], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    client.stdout!.on('data', (d) => { out += d; });
    const exited = new Promise<number | null>((r) => client.once('exit', (code) => r(code)));
    await waitFor('the echo', () => out.includes('echoed'), 15_000);
    await sleep(1100); // a new rendering
    const held = metrics();
    assert.equal(value(held, 'tuntap_proxy_sessions', { ...l, protocol: 'tcp', state: 'open' }), 1);
    assert.equal(value(held, 'tuntap_proxy_sessions', { ...l, protocol: 'tcp', state: 'connecting' }), 0);
    assert.equal(value(held, 'tuntap_proxy_nat_entries', l), 1);
    client.stdin!.end();
    assert.equal(await exited, 0);
    await p.waitStats((s) => s.sessions === 0);
    const dns = await nsRun(t.app, process.execPath, ['-e', `
      const r = new (require('node:dns').promises.Resolver)({ timeout: 3000, tries: 1 }); r.setServers(['${SERVER4}']);
      r.resolve4('web.test').then((a) => console.log(a.join()), (e) => { console.error(e.code); process.exit(1); });`]);
    assert.equal(dns.stdout.trim(), '198.18.2.2', dns.stderr);
    await sleep(1100);
    const end = metrics();
    const moved = (name: string, labels: Record<string, string>) => value(end, name, { ...l, ...labels }) - value(start, name, { ...l, ...labels });
    assert.equal(value(end, 'tuntap_proxy_sessions', { ...l, protocol: 'tcp', state: 'open' }), 0);
    // TCP bytes on the upstream: the 100,000 echoed, plus dante's SOCKS5 handshake (13 bytes
    // up, 12 down) and the DNS query's length-prefixed exchange over TCP.
    for (const direction of ['up', 'down']) {
      const d = moved('tuntap_proxy_bytes_total', { direction });
      assert.ok(d >= N + 12 && d <= N + 400, `${direction}: ${d}`);
    }
    assert.equal(moved('tuntap_proxy_connections_total', {}), 1);
    assert.equal(moved('tuntap_proxy_dns_queries_total', {}), 1);
    assert.equal(moved('tuntap_proxy_dns_answers_total', { source: 'tcp' }), 1);
    assert.ok(end.samples.every((s) => s.name !== 'tuntap_proxy_failures_total'), 'no failures');
  }, { env: { TUNTAP_CONTROL_DIR: controlDir } });
});

test('the control socket shows the live session, and goes when the process does', async () => {
  await t.withTuntap('socks', ['--proxy', `socks5://${PROXY4}:1081`, '--route'], async (p) => {
    const [sock, ...others] = listControlSockets(controlDir);
    assert.equal(others.length, 0);
    assert.equal(sock!.kind, 'socks');
    assert.equal(sock!.pid, p.child.pid);
    const client = nsSpawn(t.app, process.execPath, ['-e', echoScript], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    client.stdout!.on('data', (d) => { out += d; });
    await waitFor('the echo', () => out.includes('echoed'), 15_000);
    const status = await requestJson(sock!.path, 'status') as { kind: string; sessions: number; connections: Array<{ destination: string; state: string; bytesUp: number; bytesDown: number }> };
    assert.equal(status.kind, 'proxy');
    assert.equal(status.sessions, 1);
    assert.equal(status.connections[0]!.destination, `${SERVER4}:7000`);
    assert.equal(status.connections[0]!.state, 'open');
    assert.ok(status.connections[0]!.bytesDown >= N);
    client.stdin!.end();
  }, { env: { TUNTAP_CONTROL_DIR: controlDir } });
  assert.deepEqual(listControlSockets(controlDir), [], 'the socket is removed on exit');
});
