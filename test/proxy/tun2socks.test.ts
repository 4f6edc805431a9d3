// tun2socks / tun2http end to end: an application namespace whose traffic `tuntap socks|http
// --route` captures, real proxies (microsocks, dante, tinyproxy) in a proxy namespace that does
// not forward, and real services behind it. Every byte the app gets came through a proxy.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { nsExec, nsRun, nsSpawn } from '../helpers/netns.js';
import { ProxyTopology, SERVER4, SERVER6, PROXY4, sleep, type ProxyProcess } from './topology.js';

let t: ProxyTopology;
let dante: { log: () => string };

before(async () => {
  t = new ProxyTopology();
  await t.startServers();
  dante = await t.startDante(1081);
});
after(() => t?.cleanup());

function routingState(ns: string): string {
  // Link-local addresses appear on their own schedule; they are not ours.
  return ['-4', '-6'].map((f) => nsExec(ns, 'ip', f, 'rule') + nsExec(ns, 'ip', f, 'route', 'show', 'table', 'all'))
    .join('').split('\n').filter((l) => !l.includes('fe80')).join('\n');
}

async function curl(url: string, ...extra: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return nsRun(t.app, 'curl', ['-sS', '-m', '10', ...extra, url], 20_000);
}

/** Resolves `name` at the server's DNS through the app namespace (UDP from the app's view). */
async function resolve(name: string, family: 4 | 6 = 4, p?: ProxyProcess): Promise<string[]> {
  const script = `const r = new (require('node:dns').promises.Resolver)({ timeout: 3000, tries: 2 }); r.setServers(['${SERVER4}']);
    r.${family === 4 ? 'resolve4' : 'resolve6'}(process.argv[1]).then((a) => console.log(JSON.stringify(a)), (e) => { console.error(e.code); process.exit(1); });`;
  const r = await nsRun(t.app, process.execPath, ['-e', script, name], 20_000);
  assert.equal(r.code, 0, `resolving ${name}: ${r.stderr} ${p?.stderr() ?? ''}`);
  return JSON.parse(r.stdout) as string[];
}

const withTuntap = <T>(command: 'socks' | 'http', args: string[], body: (p: ProxyProcess) => Promise<T>): Promise<T> =>
  t.withTuntap(command, args, body);

test('SOCKS5 with username/password (microsocks): IPv4 and IPv6 over HTTP, DNS over TCP; exit removes its rules and routes', async () => {
  const ms = await t.startMicrosocks(1080, { user: 'alice', pass: 's3cret' });
  const before = routingState(t.app);
  await withTuntap('socks', ['--proxy', `socks5://alice:s3cret@${PROXY4}:1080`, '--route', '--udp'], async (p) => {
    assert.notEqual(routingState(t.app), before, 'policy routing is installed');
    const v4 = await curl(`http://${SERVER4}:8080/`);
    assert.equal(v4.code, 0, v4.stderr);
    // The server saw the proxy's address, not the app's: the bytes went through microsocks.
    assert.match(v4.stdout, /to ::ffff:198\.18\.2\.1 host 198\.18\.2\.2:8080/);
    const v6 = await curl(`http://[${SERVER6}]:8080/`);
    assert.equal(v6.code, 0, v6.stderr);
    assert.match(v6.stdout, /hello from fd00:2::2 to fd00:2::1/);
    assert.match(ms.log(), /connected to 198\.18\.2\.2:8080/);
    assert.match(ms.log(), /connected to fd00:2::2:8080/);
    // microsocks has no UDP ASSOCIATE: DNS still resolves, carried over TCP through the proxy.
    assert.deepEqual(await resolve('web.test', 4, p), ['198.18.2.2']);
    assert.deepEqual(await resolve('web.test', 6, p), ['fd00:2::2']);
    const s = await p.waitStats((x) => x.dnsOverTcp >= 2);
    assert.ok(s.connectionsTotal >= 2);
    assert.match(ms.log(), /connected to 198\.18\.2\.2:53/);
  });
  assert.equal(routingState(t.app), before, 'every rule and route it added is gone');
  ms.child.kill();
});

test('SOCKS5 through dante: iperf3 TCP both directions, UDP and DNS over UDP ASSOCIATE, original destination in the log', async () => {
  await withTuntap('socks', ['--proxy', `socks5://${PROXY4}:1081`, '--route', '--udp'], async (p) => {
    for (const reverse of [false, true]) {
      const r = await nsRun(t.app, 'iperf3', ['-c', SERVER4, '-t', '2', '-J', ...(reverse ? ['-R'] : [])], 30_000);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      const bps = (JSON.parse(r.stdout) as { end: { sum_received: { bits_per_second: number } } }).end.sum_received.bits_per_second;
      console.log(`# iperf3 via tuntap socks → dante ${reverse ? 'download' : 'upload'}: ${(bps / 1e9).toFixed(2)} Gbit/s`);
      assert.ok(bps > 50e6, `throughput ${bps}`);
    }
    assert.deepEqual(await resolve('web.test'), ['198.18.2.2']);
    const s = await p.waitStats((x) => x.udpSent >= 1 && x.udpReceived >= 1);
    assert.equal(s.dnsOverTcp, 0, 'DNS went over UDP');
    const u = await nsRun(t.app, 'iperf3', ['-c', SERVER4, '-u', '-b', '20M', '-t', '2', '-l', '1200', '-J'], 30_000);
    assert.equal(u.code, 0, u.stdout + u.stderr);
    const sum = (JSON.parse(u.stdout) as { end: { sum: { packets: number; lost_packets: number } } }).end.sum;
    console.log(`# iperf3 UDP via dante: ${sum.packets} packets, ${sum.lost_packets} lost`);
    assert.ok(sum.packets > 1000 && sum.lost_packets < sum.packets / 2, JSON.stringify(sum));
  });
  assert.match(dante.log(), /198\.18\.2\.2\.5201/);
  assert.match(dante.log(), /udpassociate|udpreply/);
});

test('HTTP CONNECT with Basic auth (tinyproxy): curl works, the log names the destination, bad credentials are explained', async () => {
  const tp = await t.startTinyproxy(3128, { user: 'web', pass: 'secret' });
  await withTuntap('http', ['--proxy', `http://web:secret@${PROXY4}:3128`, '--route'], async (p) => {
    const r = await curl(`http://${SERVER4}:8080/bytes/100000`, '-o', '/dev/null', '-w', '%{size_download}');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '100000');
    const v6 = await curl(`http://[${SERVER6}]:8080/`);
    assert.equal(v6.code, 0, v6.stderr);
    // tun2http has no UDP: DNS goes over TCP through CONNECT.
    assert.deepEqual(await resolve('web.test', 4, p), ['198.18.2.2']);
  });
  assert.match(tp.log(), /CONNECT.*198\.18\.2\.2:8080/);
  assert.match(tp.log(), /CONNECT.*198\.18\.2\.2:53/);
  await withTuntap('http', ['--proxy', `http://web:wrong@${PROXY4}:3128`, '--route'], async (p) => {
    const r = await curl(`http://${SERVER4}:8080/`);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /reset/i);
    await p.waitStats((x) => x.connectionsFailed >= 1);
    assert.match(p.stderr(), /credentials/);
  });
  tp.child.kill();
});

test('SOCKS4a through dante named in /etc/hosts, with full checksums (no offload) and a small MTU', async () => {
  await withTuntap('socks', ['--proxy', 'socks4a://socks.test:1081', '--route', '--no-ipv6', '--no-offload', '--mtu', '1400'], async () => {
    const r = await curl(`http://${SERVER4}:8080/`);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /hello/);
    // Many MTU-sized segments, each rewritten with incremental checksums the kernel verifies.
    const big = await curl(`http://${SERVER4}:8080/bytes/3000000`, '-o', '/dev/null', '-w', '%{size_download}');
    assert.equal(big.code, 0, big.stderr);
    assert.equal(big.stdout, '3000000');
  });
});

test('refused destinations reset the app; reject rules refuse; a dead proxy is explained and service resumes when it returns', async () => {
  await withTuntap('socks', ['--proxy', `socks5://${PROXY4}:1090`, '--route', '--rule', `reject cidr=${SERVER4}/32 port=7000`], async (p) => {
    const dead = await curl(`http://${SERVER4}:8080/`);
    assert.notEqual(dead.code, 0);
    await p.waitStats((x) => x.connectionsFailed >= 1);
    assert.match(p.stderr(), /socks5 proxy at 198\.18\.1\.2:1090 is unreachable \(ECONNREFUSED\)/);
    const ms = await t.startMicrosocks(1090);
    const back = await curl(`http://${SERVER4}:8080/`);
    assert.equal(back.code, 0, back.stderr);
    // Nothing listens on port 9: the proxy's refusal becomes a reset.
    const refused = await curl(`http://${SERVER4}:9/`);
    assert.equal(refused.code, 56, refused.stderr);
    assert.match(refused.stderr, /reset by peer/);
    // A reject rule answers the SYN itself: connection refused.
    const rejected = await curl(`http://${SERVER4}:7000/`);
    assert.equal(rejected.code, 7, rejected.stderr);
    await p.waitStats((x) => (x.nat as unknown as { rejected: number }).rejected >= 1);
    ms.child.kill();
  });
});

test('fake-IP DNS: the app gets a fake address and the proxy receives the host name', async () => {
  const ms = await t.startMicrosocks(1082);
  await withTuntap('socks', ['--proxy', `socks5://${PROXY4}:1082`, '--route', '--dns', 'fake-ip',
    '--fake-ip', '198.19.128.0/17', '--fake-ip', 'fd00:fa4e::/96'], async (p) => {
    const [a] = await resolve('web.test');
    assert.match(a!, /^198\.19\.(12[89]|1[3-9]\d|2[0-5]\d)\.\d+$/, `fake address ${a}`);
    const [aaaa] = await resolve('web.test', 6);
    assert.match(aaaa!, /^fd00:fa4e::/);
    const r = await curl('http://web.test:8080/');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /host web\.test:8080/);
    const r6 = await curl('http://web.test:8080/', '-6');
    assert.equal(r6.code, 0, r6.stderr);
    assert.ok((await p.waitStats((x) => x.dnsFake >= 2)).dnsFake >= 2);
  });
  // microsocks logs the requested destination: the name, which it resolved itself.
  assert.match(ms.log(), /connected to web\.test:8080/);
  ms.child.kill();
});

const MANY = Number(process.env.TUNTAP_PROXY_CONNECTIONS ?? 1000);
// Opens MANY connections at once to the echo server, sends 4 KiB on each, expects it back, closes.
const manyScript = `
const net = require('node:net');
const n = Number(process.argv[1]), host = process.argv[2];
let ok = 0, failed = 0, open = 0, peak = 0;
const errors = {};
const payload = Buffer.alloc(4096, 97);
const all = [];
for (let i = 0; i < n; i++) all.push(new Promise((resolve) => {
  const s = net.connect({ host, port: 7000, allowHalfOpen: true });
  let got = 0;
  s.on('connect', () => { open++; peak = Math.max(peak, open); });
  s.on('data', (d) => { got += d.length; });
  s.on('end', () => { open--; if (got === payload.length) ok++; else { failed++; errors['short' + got] = (errors['short' + got] ?? 0) + 1; } s.end(); resolve(); });
  s.on('error', (e) => { failed++; errors[e.code] = (errors[e.code] ?? 0) + 1; resolve(); });
  // Hold every connection open until all are established, then transfer and close.
  s.once('connect', () => setTimeout(() => s.end(payload), 1500));
}));
Promise.all(all).then(() => console.log(JSON.stringify({ ok, failed, peak, errors })));
`;

test(`${MANY} concurrent TCP connections open, transfer and close with no leaked sockets or NAT entries`, async () => {
  await withTuntap('socks', ['--proxy', `socks5://${PROXY4}:1081`, '--route'], async (p) => {
    // `ip netns exec` execs the command, so the child's pid is tuntap's.
    const pid = p.child.pid!;
    const fds = (): number => (pid ? readdirSync(`/proc/${pid}/fd`).length : 0);
    const fdsBefore = fds();
    const r = await nsRun(t.app, process.execPath, ['-e', manyScript, String(MANY), SERVER4], 120_000);
    assert.equal(r.code, 0, r.stderr);
    const res = JSON.parse(r.stdout) as { ok: number; failed: number; peak: number; errors: Record<string, number> };
    console.log(`# ${MANY} connections: ${JSON.stringify(res)}`);
    assert.equal(res.ok, MANY, `${r.stdout} ${p.stderr().split('\n').slice(-5).join('\n')} ${JSON.stringify(p.stats())}`);
    assert.ok(res.peak >= MANY * 0.9, `they were concurrent (peak ${res.peak})`);
    const s = await p.waitStats((x) => x.sessions === 0 && x.natEntries === 0, 30_000);
    assert.ok(s.connectionsTotal >= MANY);
    // No connection is left in any state but TIME-WAIT (which the kernel expires): not the app's,
    // not tuntap's (accepted or upstream), not an orphan between the listener and the NAT. An
    // orphan may need one FIN retransmission (answered by the NAT with a reset), so poll briefly.
    const leftovers = (): string => nsExec(t.app, 'ss', '-tanpH', 'state', 'connected', 'exclude', 'time-wait')
      .split('\n').filter((l) => l.includes(':7000 ') || l.includes('198.19.0.2:') || l.includes(`pid=${pid},`)).join('\n');
    let left = leftovers();
    for (let i = 0; i < 50 && (left !== '' || fds() > fdsBefore + 2); i++) { await sleep(200); left = leftovers(); }
    assert.equal(left, '', left);
    assert.ok(fds() <= fdsBefore + 2, `tuntap's open fds went from ${fdsBefore} to ${fds()}`);
  });
});

// Opens two connections and holds them idle, tries a third, and reports when the two close.
const capScript = `
const net = require('node:net');
const host = process.argv[1];
const open = () => new Promise((resolve) => {
  const s = net.connect({ host, port: 7000 });
  s.once('connect', () => resolve(s));
  s.once('error', (e) => resolve(e));
});
(async () => {
  const held = [await open(), await open()];
  const third = await open();
  const t0 = Date.now();
  const closed = await Promise.all(held.map((s) => new Promise((r) => { s.on('error', () => {}); s.once('close', () => r(Date.now() - t0)); s.resume(); })));
  console.log(JSON.stringify({ third: third instanceof Error ? third.code : 'connected', closed }));
})();
`;

test('the session cap refuses extra connections and idle connections are closed after the timeout', async () => {
  await withTuntap('socks', ['--proxy', `socks5://${PROXY4}:1081`, '--route', '--max-sessions', '2', '--idle-timeout', '1'], async (p) => {
    const r = await nsRun(t.app, process.execPath, ['-e', capScript, SERVER4], 30_000);
    assert.equal(r.code, 0, r.stderr);
    const res = JSON.parse(r.stdout) as { third: string; closed: number[] };
    assert.equal(res.third, 'ECONNREFUSED');
    for (const ms of res.closed) assert.ok(ms < 5000, `closed after ${ms} ms`);
    assert.match(p.stderr(), /idle for 1 s, closing/);
    await p.waitStats((x) => x.sessions === 0 && (x.nat as unknown as { refusedFull: number }).refusedFull >= 1);
  });
});

test('policy rules left by a killed run are cleared by the next run, which again leaves nothing behind', async () => {
  const before = routingState(t.app);
  const killed = await t.startTuntap('socks', ['--proxy', `socks5://${PROXY4}:1081`, '--route']);
  killed.child.kill('SIGKILL');
  await new Promise((r) => killed.child.once('exit', r));
  assert.notEqual(routingState(t.app), before, 'SIGKILL leaves the rules (the TUN and its routes go with the process)');
  await withTuntap('socks', ['--proxy', `socks5://${PROXY4}:1081`, '--route'], async (p) => {
    const r = await curl(`http://${SERVER4}:8080/`);
    assert.equal(r.code, 0, r.stderr);
    assert.match(p.stderr(), /removed \d+ policy rules left by an earlier run/);
  });
  assert.equal(routingState(t.app), before);
});

test('a SOCKS5 proxy reached over IPv6, and a direct rule that bypasses the proxy', async () => {
  const ms = await t.startMicrosocks(1083, undefined, 'fd00:1::2');
  // For the direct rule only: let the proxy namespace route between app and server.
  nsExec(t.proxy, 'sysctl', '-qw', 'net.ipv4.ip_forward=1');
  nsExec(t.server, 'ip', 'route', 'add', '198.18.1.0/24', 'via', '198.18.2.1');
  try {
    await withTuntap('socks', ['--proxy', 'socks5://[fd00:1::2]:1083', '--route', '--rule', `direct cidr=${SERVER4}/32 port=8080`], async () => {
      const proxied = await curl(`http://[${SERVER6}]:8080/`);
      assert.equal(proxied.code, 0, proxied.stderr);
      assert.match(ms.log(), /connected to fd00:2::2:8080/);
      const direct = await curl(`http://${SERVER4}:8080/`);
      assert.equal(direct.code, 0, direct.stderr);
      // The server saw the app's own address: the connection left by the real default route.
      assert.match(direct.stdout, /to ::ffff:198\.18\.1\.1 /);
      assert.doesNotMatch(ms.log(), /198\.18\.2\.2:8080/);
    });
  } finally {
    nsExec(t.server, 'ip', 'route', 'del', '198.18.1.0/24');
    nsExec(t.proxy, 'sysctl', '-qw', 'net.ipv4.ip_forward=0');
    ms.child.kill();
  }
});

test('without --json the status line shows sessions and rates; SIGINT stops it and removes its routing', async () => {
  const before = routingState(t.app);
  const root = new URL('../..', import.meta.url).pathname;
  const child = nsSpawn(t.app, process.execPath, ['--import', 'tsx', `${root}src/cli/main.ts`, 'socks',
    '--proxy', `socks5://${PROXY4}:1081`, '--route', '--interval', '1'], { cwd: root });
  let out = '';
  child.stdout!.on('data', (d) => { out += d; });
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  const deadline = Date.now() + 20_000;
  while (!/sessions \d+ +nat \d+ +up [\d.]+ \S+ \(/.test(out) && Date.now() < deadline) await sleep(100);
  assert.match(out, /tunproxy\d+ socks5:\/\/198\.18\.1\.2:1081 +sessions 0 +nat 0 +up /);
  const r = await curl(`http://${SERVER4}:8080/`);
  assert.equal(r.code, 0, r.stderr);
  child.kill('SIGINT');
  assert.equal(await exited, 0);
  assert.equal(routingState(t.app), before);
});

test('a SOCKS5 proxy that refuses UDP ASSOCIATE is named as such, and DNS goes over TCP', async () => {
  const noUdp = await t.startDante(1091, { udp: false });
  try {
    await withTuntap('socks', ['--proxy', `socks5://${PROXY4}:1091`, '--route', '--udp'], async (p) => {
      assert.deepEqual(await resolve('web.test', 4, p), ['198.18.2.2']);
      await p.waitStats((x) => x.dnsOverTcp >= 1);
      assert.match(p.stderr(), /udp: the SOCKS5 proxy refused UDP ASSOCIATE \(connection not allowed by the proxy's rules\); UDP is not relayed and DNS goes over TCP/);
      assert.doesNotMatch(p.stderr(), /0\.0\.0\.0:0/);
    });
  } finally {
    noUdp.child.kill('SIGTERM');
  }
});
