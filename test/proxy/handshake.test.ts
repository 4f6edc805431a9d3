// Handshakes with a proxy that answers badly, on real TCP sockets inside a namespace: a reply cut
// short by the proxy closing fails at once with an UpstreamError (not a RangeError, not at the
// timeout), an endless HTTP head is refused without reading it a byte at a time, and bytes the
// proxy sends right after its reply reach the relay.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { TestNet, nsRun } from '../helpers/netns.js';

const net = new TestNet();
after(() => net.cleanup());

const upstreamModule = new URL('../../src/proxy/upstream.ts', import.meta.url).pathname;

// Serves each case's reply (hex) to one connection and closes; prints how each handshake ended.
const script = `
const net = require('node:net');
const cases = JSON.parse(process.argv[2]);
import(process.argv[1]).then(async ({ connectThrough }) => {
  const replies = [];
  const server = net.createServer({ allowHalfOpen: true }, (s) => { s.on('data', () => {}); s.on('error', () => {}); s.end(Buffer.from(replies.shift(), 'hex')); });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const out = {};
  for (const [name, kind, reply] of cases) {
    replies.push(reply);
    const started = process.hrtime.bigint();
    try {
      const sock = await connectThrough({ kind, host: '127.0.0.1', port: server.address().port, username: 'u', password: 'p' },
        { host: '198.18.200.1', port: 443 }, { timeoutMs: 5000 });
      const first = await new Promise((r) => { sock.once('data', (d) => r(d.toString())); sock.once('end', () => r('')); sock.resume(); });
      sock.destroy();
      out[name] = { ok: true, first };
    } catch (e) {
      out[name] = { ok: false, name: e.name, reason: e.reason, message: e.message };
    }
    out[name].ms = Number(process.hrtime.bigint() - started) / 1e6;
  }
  console.log(JSON.stringify(out));
  process.exit(0);
});
`;

test('handshake replies: cut short, endless, or followed at once by data', async () => {
  const hex = (s: string): string => Buffer.from(s, 'latin1').toString('hex');
  const cases = [
    // No authentication, then a reply whose host name (atyp 3, 11 bytes) stops after one byte.
    ['socks5-short-name', 'socks5', '0500' + '050000030b72'],
    // A reply whose bound port is cut in half.
    ['socks5-short-port', 'socks5', '0500' + '05000001c612050140'],
    ['socks5-data-after', 'socks5', '0500' + '050000017f00000101bb' + hex('early')],
    ['http-endless-head', 'http', hex(`HTTP/1.1 200 OK\r\nX: ${'a'.repeat(16_400)}`)],
    ['http-data-after', 'http', hex('HTTP/1.1 200 Connection established\r\n\r\nearly')],
  ];
  const ns = net.namespace('pxh');
  const r = await nsRun(ns, process.execPath, ['--import', 'tsx', '-e', script, upstreamModule, JSON.stringify(cases)], 60_000);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as Record<string, { ok: boolean; name?: string; reason?: string; message?: string; first?: string; ms: number }>;
  console.log(`# ${JSON.stringify(out)}`);
  for (const name of ['socks5-short-name', 'socks5-short-port']) {
    assert.equal(out[name]!.name, 'UpstreamError', `${name}: ${out[name]!.message}`);
    assert.equal(out[name]!.reason, 'protocol', `${name}: ${out[name]!.message}`);
    assert.ok(out[name]!.ms < 1000, `${name} failed at once, not at the timeout (${out[name]!.ms} ms)`);
  }
  assert.match(out['http-endless-head']!.message!, /oversized response head/);
  assert.ok(out['http-endless-head']!.ms < 150, `an endless head is refused quickly (${out['http-endless-head']!.ms} ms)`);
  for (const name of ['socks5-data-after', 'http-data-after']) assert.deepEqual({ ok: out[name]!.ok, first: out[name]!.first }, { ok: true, first: 'early' }, name);
});
