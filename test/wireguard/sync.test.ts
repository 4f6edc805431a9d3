// Reloading a running `tuntap wg up` without dropping sessions: SIGHUP (systemctl reload),
// `tuntap wg syncconf` and the real `wg syncconf` add a peer and remove another while a ping run
// goes through an unchanged peer, which must lose nothing and keep its session (same handshake,
// counters carried on). The peers are Debian's wireguard-go. Then the network side: addresses,
// routes and the policy rules of a default route follow the file, and a file the reload cannot
// apply changes nothing.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestNet, nsExec, nsSpawn, nsRun, uniqueName } from '../helpers/netns.js';
import { waitFor, sleep } from '../helpers/wait.js';
import { builtCli } from '../helpers/user.js';
import { nsRunOk } from './topology.js';
import { generatePrivateKey, publicKey, keyToBase64 } from '../../src/wireguard/crypto.js';
import { uapiRequest } from '../../src/wireguard/status.js';

const net = new TestNet();
const dir = mkdtempSync(join(tmpdir(), 'wgsync-'));
const children: ChildProcess[] = [];
const uapiNames: string[] = [];
after(async () => {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) {
      c.kill('SIGTERM');
      await Promise.race([new Promise((r) => c.once('exit', r)), sleep(3000)]);
      if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    }
  }
  for (const n of uapiNames) for (const f of [`${n}.sock`, `${n}.tuntap.pid`]) rmSync(`/var/run/wireguard/${f}`, { force: true });
  net.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

interface Host {
  ns: string;
  name: string;
  privateKey: Buffer;
  publicKey: Buffer;
  /** Tunnel address (198.19.40.k) and the outer addresses of its link to A (198.18.(40+k).1 and .2). */
  inner: string;
  outer: string;
  aOuter: string;
  port: number;
}

const A_PORT = 51900;
const A_INNER = '198.19.40.1';

function host(k: number): Host {
  const privateKey = generatePrivateKey();
  const ns = net.namespace('wgs');
  const name = uniqueName('wgs');
  uapiNames.push(name);
  return { ns, name, privateKey, publicKey: publicKey(privateKey), inner: `198.19.40.${k}`, outer: `198.18.${40 + k}.2`, aOuter: `198.18.${40 + k}.1`, port: 51900 + k };
}

/** wireguard-go on `h`, peered with A only (A reached over their own veth). */
async function wireguardGo(h: Host, a: Host): Promise<void> {
  const child = nsSpawn(h.ns, 'wireguard-go', ['-f', h.name], { env: { ...process.env, WG_PROCESS_FOREGROUND: '1', LOG_LEVEL: 'error' } });
  children.push(child);
  await waitFor(`wireguard-go ${h.name}`, () => existsSync(`/var/run/wireguard/${h.name}.sock`));
  const conf = join(dir, `${h.name}.conf`);
  writeFileSync(conf, `[Interface]\nPrivateKey = ${keyToBase64(h.privateKey)}\nListenPort = ${h.port}\n\n` +
    `[Peer]\nPublicKey = ${keyToBase64(a.publicKey)}\nAllowedIPs = 198.19.40.0/24\nEndpoint = ${h.aOuter}:${A_PORT}\n`, { mode: 0o600 });
  await nsRunOk(h.ns, 'wg', ['setconf', h.name, conf]);
  await nsRunOk(h.ns, 'ip', ['link', 'set', h.name, 'mtu', '1420', 'up']);
  await nsRunOk(h.ns, 'ip', ['addr', 'add', `${h.inner}/24`, 'dev', h.name]);
}

/** A's config: wg-quick's format, or wg's (`strip`: no Address, Table or hooks). */
function configOf(a: Host, peers: Host[], opts: { strip?: boolean; extra?: string } = {}): string {
  const lines = ['[Interface]', `PrivateKey = ${keyToBase64(a.privateKey)}`, `ListenPort = ${A_PORT}`];
  if (!opts.strip) lines.push(`Address = ${A_INNER}/24`);
  if (opts.extra) lines.push(opts.extra);
  for (const p of peers) {
    lines.push('', '[Peer]', `PublicKey = ${keyToBase64(p.publicKey)}`, `AllowedIPs = ${p.inner}/32`, `Endpoint = ${p.outer}:${p.port}`);
  }
  return `${lines.join('\n')}\n`;
}

/** `tuntap wg up FILE --netns NS` (the built CLI); resolves once it says it is up. */
async function wgUp(file: string, ns: string): Promise<{ child: ChildProcess; stderr: () => string; exited: Promise<number | null> }> {
  const child = spawn(process.execPath, [builtCli(), 'wg', 'up', file, '--netns', ns], { stdio: ['ignore', 'ignore', 'pipe'] });
  children.push(child);
  let err = '';
  child.stderr!.on('data', (d) => { err += d; });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  await waitFor('wg up', () => {
    if (child.exitCode !== null) throw new Error(`wg up exited: ${err}`);
    return err.includes(' is up');
  }, 20_000);
  return { child, stderr: () => err, exited };
}

/** One peer as A's UAPI reports it (handshake time to the nanosecond, byte counters). */
async function peerState(name: string, peer: Host): Promise<{ handshake: string; rx: number; tx: number } | undefined> {
  const lines = await uapiRequest(name, 'get=1\n\n');
  const at = lines.indexOf(`public_key=${peer.publicKey.toString('hex')}`);
  if (at < 0) return undefined;
  const end = lines.findIndex((l, i) => i > at && l.startsWith('public_key='));
  const section = lines.slice(at, end < 0 ? undefined : end);
  const value = (k: string) => section.find((l) => l.startsWith(`${k}=`))?.slice(k.length + 1);
  return { handshake: `${value('last_handshake_time_sec')}.${value('last_handshake_time_nsec')}`, rx: Number(value('rx_bytes')), tx: Number(value('tx_bytes')) };
}

const peersOf = async (name: string) => (await uapiRequest(name, 'get=1\n\n')).filter((l) => l.startsWith('public_key='))
  .map((l) => l.slice('public_key='.length)).sort();

const pingOnce = async (ns: string, to: string, waitSeconds = 3) => (await nsRun(ns, 'ping', ['-c', '1', '-W', String(waitSeconds), to])).code === 0;

/** A in the middle, wireguard-go hosts B, C, D around it, each on its own veth. */
async function star(): Promise<{ a: Host; b: Host; c: Host; d: Host }> {
  const a = host(1);
  const [b, c, d] = [host(2), host(3), host(4)];
  for (const h of [b, c, d]) {
    const v = net.veth(a.ns, h.ns);
    net.configure(a.ns, v.a, { addresses: [`${h.aOuter}/24`] });
    net.configure(h.ns, v.b, { addresses: [`${h.outer}/24`] });
    await wireguardGo(h, a);
  }
  return { a, b, c, d };
}

test('SIGHUP and tuntap wg syncconf add and remove peers while a ping through an unchanged peer loses nothing and keeps its session', async () => {
  const { a, b, c, d } = await star();
  const file = join(dir, `${a.name}.conf`);
  writeFileSync(file, configOf(a, [b, c]), { mode: 0o600 });
  const up = await wgUp(file, a.ns);
  assert.ok(await pingOnce(a.ns, b.inner), 'B answers through the tunnel');
  assert.ok(await pingOnce(a.ns, c.inner), 'C answers through the tunnel');
  const before = (await peerState(a.name, b))!;
  const theirsBefore = await nsRunOk(b.ns, 'wg', ['show', b.name, 'latest-handshakes']);

  // 1500 pings, 10 ms apart, to B for the whole of both reloads.
  const COUNT = 1500;
  const run = nsRun(a.ns, 'ping', ['-c', String(COUNT), '-i', '0.01', '-W', '2', b.inner], 60_000);
  await sleep(1500);

  // SIGHUP: C removed, D added.
  writeFileSync(file, configOf(a, [b, d]), { mode: 0o600 });
  up.child.kill('SIGHUP');
  await waitFor('the reload', () => up.stderr().includes('reloaded'), 15_000).catch((e: Error) => { throw new Error(`${e.message}: ${up.stderr()}`); });
  assert.match(up.stderr(), /1 peers added, 1 removed, 0 updated, 1 unchanged/);
  assert.deepEqual(await peersOf(a.name), [b, d].map((h) => h.publicKey.toString('hex')).sort());
  assert.ok(await pingOnce(a.ns, d.inner), 'the added peer D answers');
  assert.ok(!(await pingOnce(a.ns, c.inner, 1)), 'the removed peer C no longer does');
  const routes = nsExec(a.ns, 'ip', 'route', 'show', 'dev', a.name);
  assert.match(routes, new RegExp(`^${d.inner.replace(/\./g, '\\.')} `, 'm'));
  assert.doesNotMatch(routes, new RegExp(`^${c.inner.replace(/\./g, '\\.')} `, 'm'), 'the removed peer\'s route went with it');

  // tuntap wg syncconf, from another process: C back, D removed.
  const other = join(dir, 'other.conf');
  writeFileSync(other, configOf(a, [c, b]), { mode: 0o600 });
  const sync = await nsRun(a.ns, process.execPath, [builtCli(), 'wg', 'syncconf', a.name, other], 30_000);
  assert.equal(sync.code, 0, sync.stderr);
  assert.match(sync.stderr, /1 peers added, 1 removed, 0 updated, 1 unchanged/);
  assert.deepEqual(await peersOf(a.name), [b, c].map((h) => h.publicKey.toString('hex')).sort());
  assert.ok(await pingOnce(a.ns, c.inner), 'C answers again');

  const result = await run;
  assert.match(result.stdout, new RegExp(`${COUNT} packets transmitted, ${COUNT} received`), result.stdout + result.stderr);
  // B's session is the one from before: the same handshake on both sides, counters carried on.
  const after = (await peerState(a.name, b))!;
  assert.equal(after.handshake, before.handshake, 'B was not handshaken again');
  assert.ok(after.tx >= before.tx + COUNT * 84 && after.rx >= before.rx + COUNT * 84, `counters carried on: ${JSON.stringify({ before, after })}`);
  assert.equal(await nsRunOk(b.ns, 'wg', ['show', b.name, 'latest-handshakes']), theirsBefore);

  up.child.kill('SIGTERM');
  assert.equal(await up.exited, 0, up.stderr());
});

test('the real `wg syncconf` on a tuntap interface: peers added and removed, the unchanged one keeps its session', async () => {
  const { a, b, c, d } = await star();
  const file = join(dir, `${a.name}.conf`);
  writeFileSync(file, configOf(a, [b, c]), { mode: 0o600 });
  const up = await wgUp(file, a.ns);
  assert.ok(await pingOnce(a.ns, b.inner));
  const before = (await peerState(a.name, b))!;
  await sleep(1100); // a new handshake would now differ in its second
  const stripped = join(dir, 'stripped.conf');
  writeFileSync(stripped, configOf(a, [b, d], { strip: true }), { mode: 0o600 });
  // wg sends the private key, listen port and every peer of the file along with the removals.
  await nsRunOk(a.ns, 'wg', ['syncconf', a.name, stripped]);
  assert.deepEqual(await peersOf(a.name), [b, d].map((h) => h.publicKey.toString('hex')).sort());
  assert.ok(await pingOnce(a.ns, b.inner));
  assert.ok(await pingOnce(a.ns, d.inner), 'wg syncconf added D (the /24 of A\'s address routes to it)');
  const after = (await peerState(a.name, b))!;
  assert.equal(after.handshake, before.handshake, 'the session with B outlived wg syncconf');

  // And the other way round: tuntap wg syncconf on wireguard-go's interface (B), a peer added.
  const theirsBefore = await nsRunOk(b.ns, 'wg', ['show', b.name, 'latest-handshakes']);
  const extra = keyToBase64(publicKey(generatePrivateKey()));
  const bConf = join(dir, `${b.name}.conf`);
  writeFileSync(bConf, `[Interface]\nPrivateKey = ${keyToBase64(b.privateKey)}\nListenPort = ${b.port}\nAddress = ${b.inner}/24\n\n` +
    `[Peer]\nPublicKey = ${keyToBase64(a.publicKey)}\nAllowedIPs = 198.19.40.0/24\nEndpoint = ${b.aOuter}:${A_PORT}\n\n` +
    `[Peer]\nPublicKey = ${extra}\nAllowedIPs = 198.19.41.0/24\n`, { mode: 0o600 });
  const sync = await nsRun(b.ns, process.execPath, [builtCli(), 'wg', 'syncconf', b.name, bConf], 30_000);
  assert.equal(sync.code, 0, sync.stderr);
  assert.match(await nsRunOk(b.ns, 'wg', ['show', b.name, 'peers']), new RegExp(extra.replace(/[+/]/g, '\\$&')));
  assert.match(nsExec(b.ns, 'ip', 'route', 'show', 'dev', b.name), /^198\.19\.41\.0\/24 /m);
  const ofA = (t: string) => t.split('\n').find((l) => l.startsWith(keyToBase64(a.publicKey)));
  assert.equal(ofA(await nsRunOk(b.ns, 'wg', ['show', b.name, 'latest-handshakes'])), ofA(theirsBefore), 'B kept its session with A');
  assert.ok(await pingOnce(a.ns, b.inner));
  up.child.kill('SIGTERM');
  assert.equal(await up.exited, 0, up.stderr());
});

test('a reload brings addresses, routes and the policy rules of a default route to what the file asks, and leaves other routes alone', async () => {
  const a = host(1);
  const [p1, p2, p3] = [generatePrivateKey(), generatePrivateKey(), generatePrivateKey()].map((k) => keyToBase64(publicKey(k)));
  const file = join(dir, `${a.name}.conf`);
  const write = (body: string) => writeFileSync(file, `[Interface]\nPrivateKey = ${keyToBase64(a.privateKey)}\nListenPort = ${A_PORT}\n${body}`, { mode: 0o600 });
  const rules = (family: '-4' | '-6') => nsExec(a.ns, 'ip', family, 'rule');
  const routes = (family: '-4' | '-6', table: string) => nsExec(a.ns, 'ip', family, 'route', 'show', 'table', table);
  const before = [rules('-4'), rules('-6'), routes('-4', 'all'), routes('-6', 'all')].join('\n');
  write(`Address = 198.19.50.1/24, fd01:50::1/64
PostUp = ip route add 198.19.99.0/24 dev %i
[Peer]
PublicKey = ${p1}
AllowedIPs = 198.19.60.0/24, fd01:60::/64
`);
  const up = await wgUp(file, a.ns);
  const reload = async (what: string, expect: RegExp) => {
    const seen = up.stderr().length;
    up.child.kill('SIGHUP');
    await waitFor(what, () => expect.test(up.stderr().slice(seen)), 15_000)
      .catch((e: Error) => { throw new Error(`${e.message}: ${up.stderr().slice(seen)}`); });
    return up.stderr().slice(seen);
  };
  assert.match(routes('-4', 'main'), /^198\.19\.60\.0\/24 dev /m);
  assert.match(routes('-6', 'main'), /^fd01:60::\/64 dev /m);

  // A default route through P1: its own table behind the fwmark rules, as wg-quick sets it up.
  write(`Address = 198.19.50.1/24, 198.19.51.1/24
[Peer]
PublicKey = ${p1}
AllowedIPs = 0.0.0.0/0, ::/0
[Peer]
PublicKey = ${p2}
AllowedIPs = 198.19.61.0/24
`);
  await reload('the default-route reload', /reloaded/);
  const addrs = nsExec(a.ns, 'ip', '-o', 'addr', 'show', 'dev', a.name);
  assert.match(addrs, /198\.19\.50\.1\/24/);
  assert.match(addrs, /198\.19\.51\.1\/24/);
  assert.doesNotMatch(addrs, /fd01:50::1/, 'an address the file dropped is gone');
  for (const family of ['-4', '-6'] as const) {
    assert.match(rules(family), /not from all fwmark 0xca6c lookup 51820/);
    assert.match(rules(family), /from all lookup main suppress_prefixlength 0/);
    assert.match(routes(family, '51820'), new RegExp(`^default dev ${a.name}`, 'm'));
  }
  assert.match(routes('-4', '51820'), /^198\.19\.61\.0\/24 dev /m);
  assert.doesNotMatch(routes('-4', 'main'), /198\.19\.60\.0/, 'P1\'s old prefix has no route any more');
  assert.doesNotMatch(routes('-6', 'main'), /fd01:60::/);
  assert.match(routes('-4', 'main'), /^198\.19\.99\.0\/24 dev /m, 'the PostUp route is not the file\'s: it stays');
  assert.ok((await uapiRequest(a.name, 'get=1\n\n')).includes('fwmark=51820'));

  // Table 1234, no default route, P2 gone: the rules go, the routes move.
  write(`Address = 198.19.50.1/24
Table = 1234
[Peer]
PublicKey = ${p1}
AllowedIPs = 198.19.62.0/24
`);
  await reload('the table reload', /reloaded/);
  for (const family of ['-4', '-6'] as const) assert.doesNotMatch(rules(family), /51820|suppress_prefixlength/);
  assert.equal(routes('-4', '51820').trim(), '');
  assert.equal(routes('-6', '51820').trim(), '');
  assert.match(routes('-4', '1234'), /^198\.19\.62\.0\/24 dev /m);
  assert.match(routes('-4', 'main'), /^198\.19\.99\.0\/24 dev /m);
  const peers = await peersOf(a.name);
  assert.deepEqual(peers, [Buffer.from(p1, 'base64').toString('hex')]);

  // A file that does not parse: the reload fails in one line, everything stays.
  write(`Address = 198.19.50.1/24\n[Peer]\nPublicKey = ${p3}\nAllowedIPs = 198.19.63.0/33\n`);
  const bad = await reload('the failed reload', /reload failed/);
  assert.match(bad, new RegExp(`error ${a.name}: reload failed: ${file}:7: AllowedIPs: `));
  assert.deepEqual(await peersOf(a.name), peers);
  // One that parses but cannot be applied whole (its port is taken): nothing of it is made.
  const holder = nsSpawn(a.ns, 'socat', ['-u', `UDP4-RECV:${A_PORT + 50}`, '-']);
  children.push(holder);
  await waitFor('socat bound', () => nsExec(a.ns, 'ss', '-lunH', `sport = :${A_PORT + 50}`).trim() !== '');
  writeFileSync(file, `[Interface]\nPrivateKey = ${keyToBase64(a.privateKey)}\nListenPort = ${A_PORT + 50}\nAddress = 198.19.50.1/24\nTable = 1234\n` +
    `[Peer]\nPublicKey = ${p1}\nAllowedIPs = 198.19.62.0/24\n[Peer]\nPublicKey = ${p3}\nAllowedIPs = 198.19.63.0/24\n`, { mode: 0o600 });
  const taken = await reload('the refused reload', /reload failed/);
  assert.match(taken, /refused the change/);
  assert.deepEqual(await peersOf(a.name), peers, 'the new peer was not added');
  assert.ok((await uapiRequest(a.name, 'get=1\n\n')).includes(`listen_port=${A_PORT}`));
  assert.doesNotMatch(routes('-4', '1234'), /198\.19\.63\.0/);
  assert.equal(up.child.exitCode, null, 'still serving');

  // The default route again, then down: the rules a reload made go with the interface too.
  write(`Address = 198.19.50.1/24\n[Peer]\nPublicKey = ${p1}\nAllowedIPs = 0.0.0.0/0\n`);
  await reload('the last reload', /reloaded/);
  assert.match(rules('-4'), /not from all fwmark 0xca6c lookup 51820/);
  up.child.kill('SIGTERM');
  assert.equal(await up.exited, 0, up.stderr());
  holder.kill('SIGKILL');
  assert.equal([rules('-4'), rules('-6'), routes('-4', 'all'), routes('-6', 'all')].join('\n'), before, 'nothing left behind');
});
