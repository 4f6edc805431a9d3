// `tuntap wg up --metrics`: two tunnel ends, each `tuntap wg up` in its own namespace, scraped
// with curl and checked by promtool while pings cross the tunnel. The byte counters move by
// exactly the sizes of the WireGuard messages the pings became, and one end's sent bytes are
// the other's received. Then the endpoint is attacked: wrong requests, oversized heads, slow
// heads, a flood of connections and of scrapes, while the tunnel keeps carrying pings.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { WgTopology, type Side } from '../wireguard/topology.js';
import { keyToBase64 } from '../../src/wireguard/crypto.js';
import { nsExec, nsRun } from '../helpers/netns.js';
import { sleep } from '../helpers/wait.js';
import { assertPromtoolAccepts, parseExposition, sample, scrape, startTuntap, value, type Running } from './helpers.js';

const topo = new WgTopology(41);
const PORT = 9586;
let a: Side;
let b: Side;
const procs: Running[] = [];

/** `tuntap wg up` of `s` inside its namespace, with --metrics. */
async function wgUp(s: Side, peer: Side, withEndpoint: boolean): Promise<Running> {
  const conf = join(topo.dir, `${s.name}.conf`);
  writeFileSync(conf, [
    '[Interface]', `PrivateKey = ${keyToBase64(s.privateKey)}`, `ListenPort = ${s.port}`,
    `Address = ${s.inner4}/24, ${s.inner6}/64`, 'Table = off', '',
    '[Peer]', `PublicKey = ${keyToBase64(peer.publicKey)}`, `AllowedIPs = ${peer.inner4}/32, ${peer.inner6}/128`,
    ...(withEndpoint ? [`Endpoint = ${peer.outer4}:${peer.port}`] : []), '',
  ].join('\n'), { mode: 0o600 });
  const p = await startTuntap(s.ns, ['wg', 'up', conf, '--metrics', String(PORT)], { ready: `${s.name} is up` });
  procs.push(p);
  return p;
}

before(async () => {
  a = topo.side(1);
  b = topo.side(2);
  topo.link(a, b);
  await wgUp(a, b, true);
  await wgUp(b, a, false);
  // The first ping makes the handshake.
  const first = await nsRun(a.ns, 'ping', ['-c', '1', '-W', '5', b.inner4]);
  assert.equal(first.code, 0, first.stdout + procs.map((p) => p.stderr()).join(''));
});

after(async () => {
  for (const p of procs) assert.equal(await p.stop(), 0, p.stderr());
  await topo.cleanup();
});

test('wireguard_* as prometheus_wireguard_exporter has them, moving by exactly what the pings sent', async () => {
  const startSeconds = Math.floor(Date.now() / 1000) - 10;
  await sleep(1100); // past the one-second reuse of a rendering
  const beforeA = parseExposition(scrape(a.ns, PORT));
  const beforeB = parseExposition(scrape(b.ns, PORT));
  const n = 20;
  const r = await nsRun(a.ns, 'ping', ['-c', String(n), '-i', '0.05', '-s', '56', '-W', '2', b.inner4]);
  assert.match(r.stdout, new RegExp(`${n} packets transmitted, ${n} received`), r.stdout);
  await sleep(1100);
  const textA = scrape(a.ns, PORT);
  const textB = scrape(b.ns, PORT);
  assertPromtoolAccepts(textA, 'a');
  assertPromtoolAccepts(textB, 'b');
  const afterA = parseExposition(textA);
  const afterB = parseExposition(textB);

  for (const [name, type] of [['wireguard_sent_bytes_total', 'counter'], ['wireguard_received_bytes_total', 'counter'],
    ['wireguard_latest_handshake_seconds', 'gauge'], ['tuntap_wireguard_peers', 'gauge']]) {
    assert.equal(afterA.types.get(name), type, name);
  }
  const peerB = { interface: a.name, public_key: keyToBase64(b.publicKey) };
  const peerA = { interface: b.name, public_key: keyToBase64(a.publicKey) };
  // The exporter's labels: allowed IPs as `wg show dump` lists them; the endpoint once known
  // (configured on a, learnt from a's packets on b).
  assert.deepEqual(sample(afterA, 'wireguard_sent_bytes_total', peerB).labels, {
    ...peerB, allowed_ips: `${b.inner4}/32,${b.inner6}/128`, remote_ip: b.outer4, remote_port: String(b.port),
  });
  assert.deepEqual(sample(afterB, 'wireguard_sent_bytes_total', peerA).labels, {
    ...peerA, allowed_ips: `${a.inner4}/32,${a.inner6}/128`, remote_ip: a.outer4, remote_port: String(a.port),
  });
  // A 56-byte ping is an 84-byte IPv4 packet, padded to 96 and sealed with a 16-byte header and
  // a 16-byte tag: 128 bytes on the wire each way.
  const delta = (x: typeof afterA, y: typeof afterA, name: string, labels: Record<string, string>) => value(x, name, labels) - value(y, name, labels);
  assert.equal(delta(afterA, beforeA, 'wireguard_sent_bytes_total', peerB), n * 128);
  assert.equal(delta(afterA, beforeA, 'wireguard_received_bytes_total', peerB), n * 128);
  assert.equal(delta(afterB, beforeB, 'wireguard_received_bytes_total', peerA), n * 128);
  assert.equal(value(afterA, 'wireguard_sent_bytes_total', peerB), value(afterB, 'wireguard_received_bytes_total', peerA),
    'what a sent is what b received');
  assert.equal(value(afterB, 'wireguard_sent_bytes_total', peerA), value(afterA, 'wireguard_received_bytes_total', peerB));
  assert.equal(delta(afterA, beforeA, 'tuntap_wireguard_data_packets_total', { direction: 'sent' }), n);
  assert.equal(delta(afterB, beforeB, 'tuntap_wireguard_data_packets_total', { direction: 'received' }), n);
  const handshake = value(afterA, 'wireguard_latest_handshake_seconds', peerB);
  assert.ok(handshake >= startSeconds && handshake <= Date.now() / 1000, `handshake at ${handshake}`);
  assert.equal(value(afterA, 'tuntap_wireguard_peers', { interface: a.name }), 1);
  assert.equal(value(afterA, 'tuntap_wireguard_handshake_initiations_total', { direction: 'sent' }), 1);
  assert.equal(value(afterB, 'tuntap_wireguard_handshake_responses_total', { direction: 'sent' }), 1);
  assert.equal(value(afterA, 'tuntap_wireguard_dropped_packets_total', { reason: 'replay' }), 0);
  assert.ok(value(afterA, 'process_resident_memory_bytes') > 0);
});

test('the endpoint: GET /metrics only, bounded heads, slow and idle clients cut off, no body', async () => {
  const url = `http://127.0.0.1:${PORT}`;
  const code = (...args: string[]) => nsExec(a.ns, 'curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '5', ...args).trim();
  assert.equal(code(`${url}/metrics`), '200');
  assert.match(nsExec(a.ns, 'curl', '-sS', '-D', '-', '-o', '/dev/null', `${url}/metrics`), /content-type: text\/plain; version=0\.0\.4; charset=utf-8/i);
  assert.equal(code(`${url}/`), '404');
  assert.equal(code(`${url}/metrics/x`), '404');
  assert.equal(code('-X', 'POST', '--data', 'x', `${url}/metrics`), '404');
  assert.equal(code('-X', 'DELETE', `${url}/metrics`), '404');
  assert.equal(code('-H', 'Content-Length: 5', '--data-binary', 'abcde', '-X', 'GET', `${url}/metrics`), '400');
  // 12 KiB of header: over our 8 KiB limit (Node's own would take 16 KiB).
  assert.equal(code('-H', `X-Filler: ${'a'.repeat(12 * 1024)}`, `${url}/metrics`), '431');

  // A head sent a byte a second, and a connection that sends nothing: both are closed within
  // the 5 s allowed for a head (Node's defaults would keep them a minute).
  const slow = `
    const net = require('node:net');
    const t0 = Date.now();
    const closedAfter = (s) => new Promise((r) => s.on('close', () => r(Date.now() - t0)));
    const slow = net.connect(${PORT}, '127.0.0.1', () => slow.write('GET /metrics HTTP/1.1\\r\\nHost: x\\r\\n'));
    const timer = setInterval(() => { if (!slow.destroyed) slow.write('X-a: b\\r\\n'); }, 1000);
    const idle = net.connect(${PORT}, '127.0.0.1');
    for (const s of [slow, idle]) s.on('error', () => {});
    Promise.all([closedAfter(slow), closedAfter(idle)]).then((ms) => { console.log(JSON.stringify(ms)); process.exit(0); });
    setTimeout(() => { console.log('"still open"'); process.exit(1); }, 15000);
  `;
  const r = await nsRun(a.ns, process.execPath, ['-e', slow], 30_000);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  for (const ms of JSON.parse(r.stdout) as number[]) assert.ok(ms < 8000, `a slow client was kept ${ms} ms`);
});

test('a flood of connections and of scrapes: the endpoint holds a few, renders once a second, and the tunnel carries pings on', async () => {
  // 200 connections opened and left idle: 16 are held (until the head timeout), the rest closed on arrival.
  const hold = `
    const net = require('node:net');
    let closedAtOnce = 0;
    const t0 = Date.now();
    const socks = [...Array(200)].map(() => { const s = net.connect(${PORT}, '127.0.0.1'); s.on('error', () => {}); s.on('close', () => { if (Date.now() - t0 < 1000) closedAtOnce++; }); return s; });
    setTimeout(() => { console.log(closedAtOnce); for (const s of socks) s.destroy(); }, 1500);
  `;
  const held = await nsRun(a.ns, process.execPath, ['-e', hold], 20_000);
  assert.equal(held.code, 0, held.stderr);
  assert.ok(Number(held.stdout) >= 180, `connections closed on arrival: ${held.stdout}`);

  // Scrapes as fast as 16 keep-alive connections go, for 3 s, while 30 pings cross the tunnel.
  const flood = `
    const http = require('node:http');
    const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
    const bodies = new Map();
    let n = 0, failed = 0;
    const end = Date.now() + 3000;
    const one = () => new Promise((resolve) => {
      http.get({ host: '127.0.0.1', port: ${PORT}, path: '/metrics', agent }, (res) => {
        let body = ''; res.setEncoding('utf8'); res.on('data', (d) => { body += d; });
        res.on('end', () => { if (res.statusCode === 200) { n++; const sec = Math.floor(Date.now() / 1000); bodies.set(body, sec); } else failed++; resolve(); });
      }).on('error', () => { failed++; resolve(); });
    });
    const worker = async () => { while (Date.now() < end) await one(); };
    Promise.all([...Array(16)].map(worker)).then(() => { console.log(JSON.stringify({ n, failed, distinct: bodies.size })); agent.destroy(); });
  `;
  const quiet = await nsRun(a.ns, 'ping', ['-c', '30', '-i', '0.1', '-W', '1', b.inner4], 30_000);
  const [scrapes, pings] = await Promise.all([
    nsRun(a.ns, process.execPath, ['-e', flood], 30_000),
    nsRun(a.ns, 'ping', ['-c', '30', '-i', '0.1', '-W', '1', b.inner4], 30_000),
  ]);
  assert.equal(scrapes.code, 0, scrapes.stderr);
  const s = JSON.parse(scrapes.stdout) as { n: number; failed: number; distinct: number };
  assert.ok(s.n >= 100 && s.failed === 0, scrapes.stdout);
  // One rendering a second, whatever the rate of scrapes (the CPU counter changes every one).
  assert.ok(s.distinct <= 5, `${s.distinct} different answers in 3 s of scrapes`);
  assert.match(pings.stdout, /30 packets transmitted, 30 received/, pings.stdout);
  const average = (out: string) => Number(/= [\d.]+\/([\d.]+)\//.exec(out)?.[1]);
  const avg = average(pings.stdout);
  console.log(`# ping through the tunnel: ${average(quiet.stdout)} ms on average, ${avg} ms during ${s.n} scrapes in 3 s`);
  assert.ok(avg < 50, `ping average ${avg} ms during the scrape flood`);
  assert.equal(nsExec(a.ns, 'curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '5', `http://127.0.0.1:${PORT}/metrics`), '200');
});
