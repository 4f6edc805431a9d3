// Attacks on tun2socks / tun2http, each mounted against the real `tuntap socks|http` process in
// the namespaces of topology.ts: answers spoofed in a resolver's name, a DNS answer too large for
// a datagram, header injection through a DNS name, a neighbour riding the proxy through a forwarding host, a SYN flood, running the
// service out of file descriptors, the fake-IP pool run out of addresses, and the proxy password
// shown to other users.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { nsExec, nsRun, nsSpawn, sh } from '../helpers/netns.js';
import { waitForOutput, sleep } from '../helpers/wait.js';
import { readFileSync, writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { openTun } from '../../src/device/index.js';
import { tcpPacket, SYN } from './segments.js';
import { ProxyTopology, SERVER4, PROXY4, type ProxyProcess } from './topology.js';
import { MAX_HANDSHAKES } from '../../src/proxy/engine.js';

let t: ProxyTopology;
let neighbour: { ns: string; link: string; appLink: string };

before(async () => {
  t = new ProxyTopology();
  await t.startServers();
  neighbour = t.addNeighbour();
});
after(() => t?.cleanup());

/** Sockets of process `pid` in namespace `ns` as `ss` lists them (`-uanpH` for UDP). */
function socketsOf(ns: string, pid: number, flags: string): string[] {
  return nsExec(ns, 'ss', flags).split('\n').filter((l) => l.includes(`pid=${pid},`));
}

const RESOLVER4 = '198.18.2.3';
const SPOOFER4 = '198.18.2.4';

// A resolver that prints where each query came from and answers "real" 1.5 s later.
const resolverScript = `
const s = require('node:dgram').createSocket('udp4');
s.on('message', (m, r) => { console.log(JSON.stringify({ address: r.address, port: r.port })); setTimeout(() => s.send('real', r.port, r.address), 1500); });
s.bind(53, process.argv[1], () => console.log('ready'));
`;
// Sends the hex payload three times from bindAddress:bindPort to host:port.
const sendScript = `
const [bindAddress, bindPort, host, port, hex] = process.argv.slice(1);
const s = require('node:dgram').createSocket('udp4');
s.bind(Number(bindPort), bindAddress, () => {
  let n = 0;
  const once = () => s.send(Buffer.from(hex, 'hex'), Number(port), host, () => { if (++n < 3) setTimeout(once, 50); else s.close(); });
  once();
});
`;
// A stub resolver: a connected UDP socket asks once and prints every answer of the next 3 s.
const victimScript = `
const s = require('node:dgram').createSocket('udp4');
const got = [];
s.on('message', (m) => got.push(m.toString()));
s.connect(53, process.argv[1], () => { s.send('query'); setTimeout(() => { console.log(JSON.stringify(got)); s.close(); }, 3000); });
`;

/**
 * A stub resolver in the app asks RESOLVER4:53 through tuntap; while the real answer is delayed,
 * a host at SPOOFER4 answers from port 53 to wherever the query came from (dante's relay, or
 * tuntap's own socket when direct), and `extra` may mount a second spoof. Returns what the stub
 * received.
 */
async function spoofedQuery(p: ProxyProcess, extra?: (queriedFrom: { address: string; port: number }) => Promise<void>): Promise<string[]> {
  const resolver = nsSpawn(t.server, process.execPath, ['-e', resolverScript, RESOLVER4]);
  try {
    await waitForOutput(resolver, 'ready', 'resolver');
    const victim = nsRun(t.app, process.execPath, ['-e', victimScript, RESOLVER4], 15_000);
    const m = await waitForOutput(resolver, /\{"address":"([\d.]+)","port":(\d+)\}/, 'resolver', { timeoutMs: 5000 });
    const from = { address: m[1]!, port: Number(m[2]) };
    const forged = Buffer.from('forged').toString('hex');
    const spoof = nsRun(t.server, process.execPath, ['-e', sendScript, SPOOFER4, '53', from.address, String(from.port), forged]);
    await Promise.all([spoof, extra?.(from)]);
    const r = await victim;
    assert.equal(r.code, 0, r.stderr + p.stderr());
    return JSON.parse(r.stdout) as string[];
  } finally {
    resolver.kill();
  }
}

test('UDP: answers only come from where a datagram was sent; through SOCKS5 only from the relay endpoint', async () => {
  nsExec(t.server, 'ip', 'addr', 'add', `${RESOLVER4}/24`, 'dev', t.serverLink);
  nsExec(t.server, 'ip', 'addr', 'add', `${SPOOFER4}/24`, 'dev', t.serverLink);
  // dante with udp.connectdst off relays answers from any address, as many SOCKS5 servers do.
  const dante = await t.startDante(1084, { udpConnectDst: false });
  try {
    await t.withTuntap('socks', ['--proxy', `socks5://${PROXY4}:1084`, '--route', '--udp', '--dns', 'off'], async (p) => {
      const got = await spoofedQuery(p, async () => {
        // A host beside the proxy sends a SOCKS5 UDP datagram "from" the resolver straight to
        // tuntap's relay socket, from an endpoint that is not the relay.
        const sock = socketsOf(t.app, p.child.pid!, '-uanpH').map((l) => /\s(\d+\.\d+\.\d+\.\d+):(\d+)\s/.exec(l)).find(Boolean);
        assert.ok(sock, 'tuntap has a UDP socket towards the relay');
        const wrapped = Buffer.concat([Buffer.from([0, 0, 0, 1, 198, 18, 2, 3, 0, 53]), Buffer.from('forged-beside')]);
        const r = await nsRun(t.proxy, process.execPath, ['-e', sendScript, PROXY4, '0', sock[1]!, sock[2]!, wrapped.toString('hex')]);
        assert.equal(r.code, 0, r.stderr);
      });
      assert.deepEqual(got, ['real'], 'only the resolver\'s own answer reaches the application');
      const s = await p.waitStats((x) => x.udpUnsolicited >= 1);
      assert.ok(s.udpReceived >= 1);
    });
  } finally {
    dante.child.kill('SIGTERM');
  }

  // Directly (no proxy): tuntap's own socket gets the spoofed answers.
  nsExec(t.proxy, 'sysctl', '-qw', 'net.ipv4.ip_forward=1');
  nsExec(t.server, 'ip', 'route', 'add', '198.18.1.0/24', 'via', '198.18.2.1');
  try {
    await t.withTuntap('socks', ['--proxy', 'direct', '--route', '--udp', '--dns', 'off'], async (p) => {
      assert.deepEqual(await spoofedQuery(p), ['real']);
      await p.waitStats((x) => x.udpUnsolicited >= 1);
    });
  } finally {
    nsExec(t.server, 'ip', 'route', 'del', '198.18.1.0/24');
    nsExec(t.proxy, 'sysctl', '-qw', 'net.ipv4.ip_forward=0');
    nsExec(t.server, 'ip', 'addr', 'del', `${RESOLVER4}/24`, 'dev', t.serverLink);
    nsExec(t.server, 'ip', 'addr', 'del', `${SPOOFER4}/24`, 'dev', t.serverLink);
  }
});

const BIG_RESOLVER4 = '198.18.2.5';

// A resolver over TCP whose every answer is as long as the length prefix allows: 65,535 bytes.
const bigResolverScript = `
require('node:net').createServer((s) => {
  s.on('error', () => {});
  s.once('data', (q) => {
    const answer = Buffer.alloc(65535, 0x61);
    q.copy(answer, 0, 2, 4); // the query's id
    answer[2] = 0x81; answer[3] = 0x80;
    s.end(Buffer.concat([Buffer.from([0xff, 0xff]), answer]));
  });
}).listen(53, process.argv[1], () => console.log('ready'));
`;
// Asks argv[1]:53 over UDP for web.test; prints the sizes of the answers of the next 3 s.
const askScript = `
const s = require('node:dgram').createSocket('udp4');
const sizes = [];
s.on('message', (m) => sizes.push(m.length));
const q = Buffer.from([0x42, 0x42, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, 0x77, 0x65, 0x62, 4, 0x74, 0x65, 0x73, 0x74, 0, 0, 1, 0, 1]);
s.send(q, 53, process.argv[1], () => setTimeout(() => { console.log(JSON.stringify(sizes)); s.close(); }, 3000));
`;

test('DNS over TCP: an answer too large for a UDP datagram is counted as a failure, never written into the TUN with a wrapped length', async () => {
  nsExec(t.server, 'ip', 'addr', 'add', `${BIG_RESOLVER4}/24`, 'dev', t.serverLink);
  const resolver = nsSpawn(t.server, process.execPath, ['-e', bigResolverScript, BIG_RESOLVER4]);
  const ms = await t.startMicrosocks(1091);
  try {
    await waitForOutput(resolver, 'ready', 'resolver');
    // Without --udp the queries go over TCP through the proxy.
    await t.withTuntap('socks', ['--proxy', `socks5://${PROXY4}:1091`, '--route', '--no-ipv6'], async (p) => {
      const big = await nsRun(t.app, process.execPath, ['-e', askScript, BIG_RESOLVER4], 15_000);
      assert.equal(big.code, 0, big.stderr);
      assert.deepEqual(JSON.parse(big.stdout), [], 'no answer reaches the application');
      const s = await p.waitStats((x) => Object.values((x.failures as unknown as Record<string, Record<string, number>>).dns ?? {}).length > 0);
      console.log(`# failures after the oversized answer: ${JSON.stringify(s.failures)}`);
      // The service goes on: a resolver with answers of a sane size is still answered.
      const good = await nsRun(t.app, process.execPath, ['-e', askScript, SERVER4], 15_000);
      assert.equal((JSON.parse(good.stdout) as number[]).length, 1, good.stdout + p.stderr());
    });
  } finally {
    resolver.kill();
    ms.child.kill();
    nsExec(t.server, 'ip', 'addr', 'del', `${BIG_RESOLVER4}/24`, 'dev', t.serverLink);
  }
});

// Asks SERVER4 (through tuntap) for the A record of the name made of the labels in argv[1]
// (JSON); when an address comes back, connects to it on port 8080 and sends a request. Prints
// the answer's rcode, its addresses and whether a connection was made.
const injectScript = `
const dgram = require('node:dgram'), net = require('node:net');
const labels = JSON.parse(process.argv[1]);
const q = Buffer.concat([Buffer.from([0x42, 0x42, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]),
  ...labels.map((l) => Buffer.concat([Buffer.from([Buffer.byteLength(l, 'latin1')]), Buffer.from(l, 'latin1')])),
  Buffer.from([0, 0, 1, 0, 1])]);
const s = dgram.createSocket('udp4');
const timer = setTimeout(() => { console.log(JSON.stringify({ rcode: -1 })); process.exit(0); }, 8000);
s.on('message', (a) => {
  clearTimeout(timer);
  s.close();
  const rcode = a[3] & 15, count = a.readUInt16BE(6);
  let off = q.length;
  const addresses = [];
  for (let i = 0; i < count && off + 12 <= a.length; i++) {
    const len = a.readUInt16BE(off + 10);
    if (a.readUInt16BE(off + 2) === 1 && len === 4) addresses.push([...a.subarray(off + 12, off + 16)].join('.'));
    off += 12 + len;
  }
  if (addresses.length === 0) { console.log(JSON.stringify({ rcode, addresses, connected: false })); return; }
  const c = net.connect(8080, addresses[0], () => c.write('GET / HTTP/1.0\\r\\n\\r\\n'));
  const done = (connected) => { console.log(JSON.stringify({ rcode, addresses, connected })); process.exit(0); };
  c.on('data', () => {}); c.on('close', () => done(true)); c.on('error', () => done(false));
  setTimeout(() => done(true), 3000);
});
s.send(q, 53, process.argv[2]);
`;

test('header injection: a DNS name with CR LF never reaches the HTTP CONNECT proxy; it gets no fake address', async () => {
  const tp = await t.startTinyproxy(3129, { user: 'web', pass: 'secret' });
  // What the proxy receives, as text.
  const dump = nsSpawn(t.proxy, 'tcpdump', ['-i', 'any', '-l', '-A', '-s0', '-n', 'tcp port 3129']);
  let wire = '';
  dump.stdout!.on('data', (d) => { wire += d; });
  try {
    await waitForOutput(dump, 'listening on', 'tcpdump', { stream: 'stderr' });
    let evil = '', good = '';
    await t.withTuntap('http', ['--proxy', `http://web:secret@${PROXY4}:3129`, '--route', '--dns', 'fake-ip'], async (p) => {
      const r = await nsRun(t.app, process.execPath, ['-e', injectScript, JSON.stringify(['evil\r\nX-Injected: yes', 'test']), SERVER4], 20_000);
      assert.equal(r.code, 0, r.stderr);
      evil = r.stdout;
      // A valid name gets a fake address and reaches the proxy as a name.
      good = (await nsRun(t.app, process.execPath, ['-e', injectScript, JSON.stringify(['web', 'test']), SERVER4], 20_000)).stdout;
      if (!evil.includes('198.19.')) await p.waitStats((x) => x.dnsOverTcp >= 1);
    });
    await new Promise((r) => setTimeout(r, 500));
    assert.match(wire, /CONNECT web\.test:8080 HTTP\/1\.1/, 'the capture works: the valid name went by');
    // The name may travel inside the DNS-over-TCP tunnel (binary, to port 53), never in a request head.
    assert.doesNotMatch(wire, /CONNECT evil/i);
    assert.doesNotMatch(wire, /x-injected: yes\.test:8080/i);
    const res = JSON.parse(evil) as { rcode: number; addresses?: string[] };
    assert.ok(!(res.addresses ?? []).some((a) => a.startsWith('198.19.')), `no fake address for the name: ${evil}`);
    // The real resolver, asked over TCP instead, has no such name.
    assert.notEqual(res.rcode, 0, evil);
    const okRes = JSON.parse(good) as { addresses: string[]; connected: boolean };
    assert.match(okRes.addresses[0]!, /^198\.19\./, good);
    assert.ok(okRes.connected, good);
  } finally {
    dump.kill();
    tp.child.kill();
  }
});

test('a neighbour routing through this host (ip_forward=1) is not carried, even when a route leads it into the TUN; --gateway carries it', async () => {
  const ms = await t.startMicrosocks(1085);
  const curlFrom = (ns: string): Promise<{ code: number | null; stdout: string; stderr: string }> =>
    nsRun(ns, 'curl', ['-sS', '-m', '3', `http://${SERVER4}:8080/`], 20_000);
  try {
    await t.withTuntap('socks', ['--proxy', `socks5://${PROXY4}:1085`, '--route'], async (p) => {
      const own = await curlFrom(t.app);
      assert.equal(own.code, 0, `this host's own traffic is carried: ${own.stderr}`);
      const before = ms.log().split('\n').length;
      const forwarded = await curlFrom(neighbour.ns);
      assert.notEqual(forwarded.code, 0, `the neighbour got through: ${forwarded.stdout}`);
      assert.equal(ms.log().split('\n').length, before, 'the proxy saw no connection from the neighbour');
      // Someone else's route sends the neighbour into the TUN anyway: the NAT does not serve it.
      nsExec(t.app, 'ip', 'rule', 'add', 'from', '198.18.4.0/24', 'lookup', '7475', 'pref', '100');
      try {
        const routed = await curlFrom(neighbour.ns);
        assert.notEqual(routed.code, 0, routed.stdout);
        const s = await p.waitStats((x) => (x.nat as unknown as { foreign: number }).foreign >= 1);
        assert.equal(s.connectionsTotal, 1, 'only the app\'s own connection was relayed');
      } finally {
        nsExec(t.app, 'ip', 'rule', 'del', 'from', '198.18.4.0/24', 'lookup', '7475', 'pref', '100');
      }
      assert.equal(ms.log().split('\n').length, before);
    });
    await t.withTuntap('socks', ['--proxy', `socks5://${PROXY4}:1085`, '--route', '--gateway', '198.18.4.0/24'], async () => {
      const r = await curlFrom(neighbour.ns);
      assert.equal(r.code, 0, r.stderr);
      // It went through the proxy: the server saw the proxy's address.
      assert.match(r.stdout, /to ::ffff:198\.18\.2\.1 /);
    });
  } finally {
    ms.child.kill();
  }
});

/** Peak resident memory of a process (VmHWM), in bytes. */
function peakRss(pid: number): number {
  const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]) * 1024;
}

const FLOOD = 100_000;
const FLOOD_NET = '198.18.64.0/18';

test(`SYN flood: ${FLOOD} spoofed SYNs from 16,384 sources leave RSS under 200 MB, and a real connection made during the flood works`, async () => {
  // The neighbour forwards what is written into a TUN of its own: SYNs from spoofed sources.
  const dev = openTun({ name: 'pxflood%d', netns: neighbour.ns });
  const dante = await t.startDante(1086);
  try {
    nsExec(neighbour.ns, 'ip', 'link', 'set', dev.name, 'up');
    nsExec(neighbour.ns, 'ip', 'route', 'add', FLOOD_NET, 'dev', dev.name);
    for (const ns of [neighbour.ns, t.app]) {
      nsExec(ns, 'sysctl', '-qw', 'net.ipv4.ip_forward=1', 'net.ipv4.conf.all.rp_filter=0', 'net.ipv4.conf.default.rp_filter=0');
    }
    nsExec(neighbour.ns, 'sysctl', '-qw', `net.ipv4.conf.${dev.name}.rp_filter=0`);
    nsExec(t.app, 'ip', 'route', 'add', FLOOD_NET, 'via', '198.18.4.2');
    await t.withTuntap('socks', ['--proxy', `socks5://${PROXY4}:1086`, '--route', '--gateway', FLOOD_NET], async (p) => {
      const pid = p.child.pid!;
      let sent = 0;
      let flooding = true;
      const flood = (async () => {
        // 100,000 SYNs in about eight seconds, in batches.
        for (let i = 0; i < FLOOD;) {
          const batch: Buffer[] = [];
          for (let j = 0; j < 1000 && i < FLOOD; j++, i++) {
            const source = `198.18.${64 + ((i >> 8) & 63)}.${i & 255}`;
            batch.push(tcpPacket(source, 1024 + ((i * 7919) % 60000), SERVER4, 7000, SYN, Buffer.alloc(0), (i * 2654435761) >>> 0));
          }
          sent += await dev.writeBatch(batch);
          await sleep(80);
        }
        flooding = false;
      })();
      // Once more SYNs arrived than the table holds (20,000), a real client connects.
      const synsSeen = (x: Record<string, number>): number => {
        const n = x.nat as unknown as Record<string, number>;
        return n.created! + (n.refusedFull ?? 0) + (n.sourceLimited ?? 0);
      };
      await p.waitStats((x) => synsSeen(x) > 25_000, 20_000);
      assert.ok(flooding, 'the flood still runs');
      const started = Date.now();
      const real = await nsRun(t.app, 'curl', ['-sS', '-m', '10', `http://${SERVER4}:8080/`], 20_000);
      const tookMs = Date.now() - started;
      await flood;
      const s = await p.waitStats(() => true);
      const rss = peakRss(pid);
      console.log(`# flood: ${sent} written, ${synsSeen(s)} reached the NAT (${JSON.stringify(s.nat)}), real connection in ${tookMs} ms, peak RSS ${(rss / 2 ** 20).toFixed(0)} MiB`);
      assert.equal(real.code, 0, `the real connection during the flood: ${real.stderr}`);
      assert.match(real.stdout, /hello/);
      assert.ok(rss < 200 * 2 ** 20, `peak RSS ${rss}`);
      // The spoofed entries go within seconds.
      await p.waitStats((x) => x.natEntries < 100, 15_000);
    });
  } finally {
    dev.closeSync();
    nsExec(t.app, 'ip', 'route', 'del', FLOOD_NET);
    nsExec(t.app, 'sysctl', '-qw', 'net.ipv4.ip_forward=1');
    dante.child.kill('SIGTERM');
  }
});

// Opens n connections to the echo server and holds them; prints how many echoed a byte, then
// closes them all when stdin ends.
const holdScript = `
const net = require('node:net');
const n = Number(process.argv[1]), host = process.argv[2];
let echoed = 0, failed = 0, settled = 0;
const socks = [];
const settle = () => { if (++settled === n) console.log(JSON.stringify({ echoed, failed })); };
for (let i = 0; i < n; i++) {
  const s = net.connect({ host, port: 7000 });
  socks.push(s);
  let done = false;
  const finish = (ok) => { if (done) return; done = true; if (ok) echoed++; else failed++; settle(); };
  s.on('connect', () => s.write('x'));
  s.on('data', () => finish(true));
  s.on('error', () => finish(false));
  s.on('close', () => finish(false));
  s.setTimeout(8000, () => finish(false));
}
process.stdin.on('end', () => { for (const s of socks) s.destroy(); process.exit(0); });
process.stdin.resume();
`;

test('out of file descriptors: the service stays up, counts the failures by errno, and warned at start', async () => {
  const dante = await t.startDante(1087);
  try {
    // 1,024 descriptors hold about 340 proxied connections; 1,500 are attempted. --max-sessions
    // asks for more than fit (by default the proxy allows only what fits, and refuses the rest).
    await t.withTuntap('socks', ['--proxy', `socks5://${PROXY4}:1087`, '--route', '--max-sessions', '20000'], async (p) => {
      const holder = nsSpawn(t.app, process.execPath, ['-e', holdScript, '1500', SERVER4], { stdio: ['pipe', 'pipe', 'pipe'] });
      let held: { echoed: number; failed: number };
      try {
        held = JSON.parse((await waitForOutput(holder, /\{.*\}/, 'holder', { timeoutMs: 60_000 }))[0]) as typeof held;
        // Stats lines keep coming while every descriptor is in use.
        const lines = p.stdout.length;
        await p.waitStats(() => p.stdout.length > lines + 1);
        console.log(`# 1500 connections against 1024 descriptors: ${JSON.stringify(held)}`);
        const s = await p.waitStats((x) => x.connectionsFailed > 0);
        const failures = s.failures as unknown as Record<string, Record<string, number>>;
        console.log(`# failures: ${JSON.stringify(failures)}`);
        assert.ok((failures.accept!.EMFILE ?? 0) + (failures.connect!.EMFILE ?? 0) > 0, JSON.stringify(failures));
        assert.ok(held.echoed >= 300, 'the connections that fit work');
        assert.ok(held.failed > 0);
      } finally {
        holder.stdin!.end();
      }
      await p.waitStats((x) => x.sessions === 0, 30_000);
      assert.match(p.stderr(), /20000 sessions need up to \d+ file descriptors but the limit is 1024/);
      // Which step runs out first (accept, the relay's handover of an accepted socket, or the
      // upstream connect) depends on the descriptors the process holds besides its sessions (a
      // control socket, a metrics listener) and on when the kernel hands freed ones back; whichever
      // it is, its line names the errno and says what to do.
      assert.match(p.stderr(), /(accept: EMFILE|fcntl: EMFILE|unreachable \(EMFILE\)).*\(out of file descriptors: raise the open-files limit \(ulimit -n\)/);
      // A thousand failures, a few lines: the rest is summarized.
      assert.match(p.stderr(), /more failures not shown: (accept|connect) EMFILE ×\d+/);
      assert.ok(p.stderr().split('\n').length < 50, p.stderr());
      // And it serves again.
      const r = await nsRun(t.app, 'curl', ['-sS', '-m', '10', `http://${SERVER4}:8080/`], 20_000);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(p.child.exitCode, null, 'still running');
    }, { wrapper: ['prlimit', '--nofile=1024:1024'] });
  } finally {
    dante.child.kill('SIGTERM');
  }
});

test('the soft open-files limit is raised to the hard one at start; by default the sessions fit in it, without a warning', async () => {
  await t.withTuntap('socks', ['--proxy', `socks5://${PROXY4}:1081`], async (p) => {
    const limits = readFileSync(`/proc/${p.child.pid}/limits`, 'utf8');
    assert.match(limits, /^Max open files\s+4096\s+4096\s/m);
    assert.doesNotMatch(p.stderr(), /file descriptors/);
  }, { wrapper: ['prlimit', '--nofile=512:4096'] });
});

// Asks SERVER4 for the A records of `count` names n1.test, n2.test, ... (256 in flight) and
// prints how the answers went: addresses handed out, SERVFAILs, and the last name's answer.
const namesScript = `
const dgram = require('node:dgram');
const count = Number(process.argv[1]), server = process.argv[2];
const s = dgram.createSocket('udp4');
const query = (i) => {
  const name = Buffer.from('n' + i + '.test');
  const labels = name.toString().split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)]));
  return Buffer.concat([Buffer.from([(i >> 8) & 255, i & 255, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]), ...labels, Buffer.from([0, 0, 1, 0, 1])]);
};
let next = 1, done = 0, addresses = 0, servfail = 0, last = null;
const pending = new Map();
const send = () => { while (next <= count && pending.size < 256) { const i = next++; pending.set(i & 0xffff, i); s.send(query(i), 53, server); } };
s.on('message', (a) => {
  const i = pending.get(a.readUInt16BE(0));
  if (i === undefined) return;
  pending.delete(a.readUInt16BE(0));
  const rcode = a[3] & 15;
  if (rcode === 2) servfail++;
  else if (a.readUInt16BE(6) > 0) addresses++;
  if (i === count) last = { rcode, address: a.readUInt16BE(6) > 0 ? [...a.subarray(a.length - 4)].join('.') : null };
  if (++done === count) { console.log(JSON.stringify({ addresses, servfail, last })); process.exit(0); }
  send();
});
setInterval(() => { for (const [id, i] of pending) s.send(query(i), 53, server); }, 2000);
send();
`;

test('fake-IP: 32,767 names against the 32,766 addresses of the default range: no live or recent address is reused; the extra name gets SERVFAIL', async () => {
  const ms = await t.startMicrosocks(1088);
  try {
    await t.withTuntap('socks', ['--proxy', `socks5://${PROXY4}:1088`, '--route', '--dns', 'fake-ip', '--no-ipv6'], async (p) => {
      // web.test gets the first address, and a connection to it stays open (20 MB read at 1 kB/s:
      // more than the socket buffers on the way hold, so the session cannot end early).
      const first = await nsRun(t.app, process.execPath, ['-e', injectScript, JSON.stringify(['web', 'test']), SERVER4], 20_000);
      const firstAddress = (JSON.parse(first.stdout) as { addresses: string[] }).addresses[0]!;
      assert.equal(firstAddress, '198.19.128.1', first.stdout);
      const hold = nsSpawn(t.app, 'curl', ['-sS', '--limit-rate', '1k', '-o', '/dev/null', 'http://web.test:8080/bytes/20000000']);
      try {
        await p.waitStats((x) => x.sessions >= 1);
        // 32,766 more names: the range is exhausted by the last one.
        const r = await nsRun(t.app, process.execPath, ['-e', namesScript, '32766', SERVER4], 120_000);
        assert.equal(r.code, 0, r.stderr);
        const res = JSON.parse(r.stdout) as { addresses: number; servfail: number; last: { rcode: number; address: string | null } };
        console.log(`# 32,766 more names: ${r.stdout.trim()}`);
        assert.equal(res.addresses, 32765, 'every address of the range was handed out once');
        assert.deepEqual(res.last, { rcode: 2, address: null }, 'the name that found no free address got SERVFAIL');
        const s = await p.waitStats((x) => x.dnsServfail >= 1);
        assert.equal(s.dnsServfail, 1);
        // web.test keeps its address, and a new connection to it still reaches web.test.
        const again = await nsRun(t.app, process.execPath, ['-e', injectScript, JSON.stringify(['web', 'test']), SERVER4], 20_000);
        assert.match(again.stdout, /"addresses":\["198\.19\.128\.1"\],"connected":true/);
        const toWeb = (): number => ms.log().split('connected to web.test:8080').length;
        const before = toWeb();
        const c = await nsRun(t.app, 'curl', ['-sS', '-m', '10', `http://${firstAddress}:8080/`], 20_000);
        assert.equal(c.code, 0, c.stderr);
        assert.equal(toWeb(), before + 1, 'the proxy was asked for web.test');
      } finally {
        hold.kill();
      }
    });
  } finally {
    ms.child.kill();
  }
});

test('the proxy password: from the environment or a file it never shows in ps; in a URL it is wiped from argv; never in a message or log', async () => {
  const secret = 's3cret-Pa55';
  const ms = await t.startMicrosocks(1089, { user: 'alice', pass: secret });
  const psArgs = (pid: number): string => sh('ps', ['-o', 'args=', '-p', String(pid)]);
  const clean = (p: ProxyProcess, how: string): void => {
    assert.doesNotMatch(psArgs(p.child.pid!), new RegExp(secret), `${how}: ps shows the password`);
    assert.doesNotMatch(p.stderr() + p.stdout.join('\n'), new RegExp(secret), `${how}: a message shows the password`);
  };
  const works = async (p: ProxyProcess, how: string): Promise<void> => {
    const r = await nsRun(t.app, 'curl', ['-sS', '-m', '10', `http://${SERVER4}:8080/`], 20_000);
    assert.equal(r.code, 0, `${how}: ${r.stderr} ${p.stderr()}`);
  };
  try {
    await t.withTuntap('socks', ['--proxy', `socks5://alice@${PROXY4}:1089`, '--route'], async (p) => {
      await works(p, 'environment');
      clean(p, 'environment');
    }, { env: { TUNTAP_PROXY_PASSWORD: secret } });

    const file = join(t.dir, 'proxy-password');
    writeFileSync(file, `${secret}\n`, { mode: 0o600 });
    chmodSync(file, 0o600);
    await t.withTuntap('socks', ['--proxy', `socks5://alice@${PROXY4}:1089`, '--route', '--proxy-password-file', file], async (p) => {
      await works(p, 'file');
      clean(p, 'file');
      assert.doesNotMatch(p.stderr(), /readable by other users/);
    });

    await t.withTuntap('socks', ['--proxy', `socks5://alice:${secret}@${PROXY4}:1089`, '--route'], async (p) => {
      await works(p, 'URL');
      clean(p, 'URL');
      assert.match(p.stderr(), /visible to other users/);
    });

    // A wrong password is reported without it; so is a malformed URL.
    await t.withTuntap('socks', ['--proxy', `socks5://alice:${secret}x@${PROXY4}:1089`, '--route'], async (p) => {
      const r = await nsRun(t.app, 'curl', ['-sS', '-m', '10', `http://${SERVER4}:8080/`], 20_000);
      assert.notEqual(r.code, 0);
      await p.waitStats((x) => x.connectionsFailed >= 1);
      assert.match(p.stderr(), /rejected the username or password/);
      clean(p, 'wrong password');
    });
    const entry = ['--import', 'tsx', join(new URL('../..', import.meta.url).pathname, 'src/cli/main.ts')];
    const bad = await nsRun(t.app, process.execPath, [...entry, 'socks', '--proxy', `socks5://alice:${secret}@bad host:1080`], 20_000);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /not a proxy URL/);
    assert.match(bad.stderr, /alice:\*\*\*@/);
    assert.doesNotMatch(bad.stderr + bad.stdout, new RegExp(secret));
  } finally {
    ms.child.kill();
  }
});

// A SOCKS server that accepts and never answers (a slow or hostile upstream): each connection
// waiting for its handshake is an upstream socket and a timer, so at most MAX_HANDSHAKES run at
// once and the rest wait their turn instead of opening a socket each. Counted over the first 8 s
// only: after the proxy's 10 s handshake timeout, waiting connections rightly take the freed turns.
const silentServerScript = `
const net = require('node:net');
let now = 0, max = 0, total = 0, first = 0;
net.createServer((s) => {
  now++;
  first ||= Date.now();
  if (Date.now() - first < 8000) { total++; max = Math.max(max, now); }
  s.on('error', () => {});
  s.on('close', () => now--);
})
  .listen(1090, process.argv[1], () => console.log('listening'));
setInterval(() => console.log(JSON.stringify({ now, max, total })), 200);
`;

test(`a SOCKS server that never answers: at most ${MAX_HANDSHAKES} upstream handshakes at once however many connections wait`, async () => {
  const silent = nsSpawn(t.proxy, process.execPath, ['-e', silentServerScript, PROXY4]);
  let counts = { now: 0, max: 0, total: 0 };
  let out = '';
  silent.stdout!.on('data', (d) => {
    out += d;
    const lines = out.split('\n');
    out = lines.pop()!;
    for (const l of lines) if (l.startsWith('{')) counts = JSON.parse(l) as typeof counts;
  });
  try {
    await waitForOutput(silent, /listening/, 'silent server');
    await t.withTuntap('socks', ['--proxy', `socks5://${PROXY4}:1090`, '--route'], async () => {
      const held = await t.holdConnections(MAX_HANDSHAKES + 150);
      try {
        // Every connection is open on the application's side; the upstream side gets time to
        // open all it would.
        for (let i = 0; i < 75 && counts.max < MAX_HANDSHAKES; i++) await sleep(200);
        await sleep(2000);
        console.log(`# ${MAX_HANDSHAKES + 150} connections against a silent SOCKS server: ${JSON.stringify(counts)}`);
        assert.ok(counts.max >= MAX_HANDSHAKES, `the handshakes that may run do: ${JSON.stringify(counts)}`);
        // (A UDP association probe, if the service makes one, is the one connection more allowed.)
        assert.ok(counts.max <= MAX_HANDSHAKES + 1, `at most ${MAX_HANDSHAKES} handshakes at once: ${JSON.stringify(counts)}`);
        assert.ok(counts.total <= MAX_HANDSHAKES + 1, `the rest wait without an upstream socket: ${JSON.stringify(counts)}`);
      } finally {
        held.close();
      }
    });
  } finally {
    silent.kill('SIGKILL');
  }
});
