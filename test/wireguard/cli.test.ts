// `tuntap wg`: keys byte-compatible with `wg`, and up/show/down of a wg-quick file in a namespace
// against wireguard-go (with a default route through the tunnel, as wg-quick sets it up).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { writeFileSync, existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { WgTopology, ping, nsRunOk, waitFor } from './topology.js';
import { keyToBase64, generatePrivateKey } from '../../src/wireguard/crypto.js';
import { uniqueName } from '../helpers/netns.js';

const run = promisify(execFile);
const cli = ['--import', 'tsx', join(import.meta.dirname, '../../src/cli/main.ts'), 'wg'];
const tuntap = async (args: string[], input?: string) => {
  const p = run(process.execPath, [...cli, ...args], { encoding: 'utf8' });
  if (input !== undefined) { p.child.stdin!.end(input); }
  return (await p).stdout;
};

test('genkey, pubkey and genpsk are byte-compatible with wg', async () => {
  const ours = await tuntap(['genkey']);
  assert.match(ours, /^[A-Za-z0-9+/]{43}=\n$/);
  const theirPub = execFileSync('wg', ['pubkey'], { input: ours, encoding: 'utf8' });
  assert.equal(await tuntap(['pubkey'], ours), theirPub);
  const theirKey = execFileSync('wg', ['genkey'], { encoding: 'utf8' });
  assert.equal(await tuntap(['pubkey'], theirKey), execFileSync('wg', ['pubkey'], { input: theirKey, encoding: 'utf8' }));
  // the private key is clamped, as wg genkey makes it
  const raw = Buffer.from(ours.trim(), 'base64');
  assert.equal(raw[0]! & 7, 0);
  assert.equal(raw[31]! & 0xc0, 0x40);
  assert.match(await tuntap(['genpsk']), /^[A-Za-z0-9+/]{43}=\n$/);
  await assert.rejects(tuntap(['pubkey'], 'not a key\n'));
});

const topo = new WgTopology(18);
after(() => topo.cleanup());

test('wg up FILE / show / down: wg-quick semantics in a namespace, default route through the tunnel', async () => {
  const a = topo.side(1);
  const b = topo.side(2);
  topo.link(a, b);
  await topo.wireguardGo(b, [{ side: a, endpoint: 4 }]);
  const marker = join(topo.dir, 'hooks.log');
  const conf = join(topo.dir, `${a.name}.conf`);
  writeFileSync(conf, `[Interface]
PrivateKey = ${keyToBase64(a.privateKey)}
ListenPort = ${a.port}
Address = ${a.inner4}/24, ${a.inner6}/64
MTU = 1400
PostUp = echo up %i >> ${marker}
PostDown = echo down %i >> ${marker}

[Peer]
PublicKey = ${keyToBase64(b.publicKey)}
AllowedIPs = 0.0.0.0/0, ::/0
Endpoint = ${b.outer4}:${b.port}
PersistentKeepalive = 25
`, { mode: 0o600 });
  const child = spawn(process.execPath, [...cli, 'up', conf, '--netns', a.ns], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => { stderr += d; });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  try {
    await waitFor('interface up', () => stderr.includes('is up'), 15_000);
    assert.equal(readFileSync(marker, 'utf8'), `up ${a.name}\n`);
    // persistent keepalive started the handshake; traffic to any address now goes through the tunnel
    const r = await ping(a.ns, b.inner4, 2);
    assert.ok(r.ok, r.out + stderr);
    const r6 = await ping(a.ns, b.inner6, 2);
    assert.ok(r6.ok, r6.out);
    // an address outside the tunnel's subnet is reached through the default route in table 51820
    await nsRunOk(b.ns, 'ip', ['addr', 'add', '198.19.200.1/32', 'dev', b.name]);
    const far = await ping(a.ns, '198.19.200.1', 2);
    assert.ok(far.ok, far.out);
    const routes = await nsRunOk(a.ns, 'ip', ['route', 'show', 'table', '51820']);
    assert.match(routes, new RegExp(`default dev ${a.name}`));
    const mtu = await nsRunOk(a.ns, 'ip', ['link', 'show', a.name]);
    assert.match(mtu, /mtu 1400/);
    const show = await tuntap(['show', a.name]);
    assert.match(show, new RegExp(`interface: ${a.name}`));
    assert.match(show, new RegExp(`peer: ${keyToBase64(b.publicKey).replace(/[+/]/g, '\\$&')}`));
    assert.match(show, /latest handshake: /);
    assert.match(show, /allowed ips: 0\.0\.0\.0\/0, ::\/0/);
    assert.match(show, /persistent keepalive: every 25 seconds/);
    assert.match(show, /\n  dropped: /);
    // wireguard-go's own status through its own socket, formatted by us too
    const theirs = await tuntap(['show', b.name]);
    assert.match(theirs, /latest handshake: /);
    assert.doesNotMatch(theirs, /dropped:/);
    await tuntap(['down', a.name]);
    assert.equal(await exited, 0);
    assert.equal(readFileSync(marker, 'utf8'), `up ${a.name}\ndown ${a.name}\n`);
    assert.ok(!existsSync(`/var/run/wireguard/${a.name}.sock`));
    const links = await nsRunOk(a.ns, 'ip', ['link']);
    assert.ok(!links.includes(a.name));
    const rules = await nsRunOk(a.ns, 'ip', ['rule']);
    assert.ok(!rules.includes('51820'), rules);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
});

test('wg up reports a config error with file, line and key', async () => {
  const conf = join(topo.dir, 'bad0.conf');
  writeFileSync(conf, '[Interface]\nPrivateKey = abc\n', { mode: 0o600 });
  const r = await run(process.execPath, [...cli, 'up', conf], { encoding: 'utf8' }).catch((e: { code: number; stderr: string }) => e);
  assert.equal((r as { code: number }).code, 1);
  assert.match((r as { stderr: string }).stderr, new RegExp(`${conf}:2: PrivateKey: `));
});

test('wg up exits 1 with a one-line reason when its TUN is deleted; wg down signals only a `wg up` of that interface', async () => {
  const ns = topo.net.namespace('wgd');
  const name = uniqueName('wgd');
  const conf = join(topo.dir, `${name}.conf`);
  writeFileSync(conf, `[Interface]\nPrivateKey = ${keyToBase64(generatePrivateKey())}\nAddress = 198.19.18.1/24\n`, { mode: 0o600 });
  const child = spawn(process.execPath, [...cli, 'up', conf, '--netns', ns], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => { stderr += d; });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const bystander = spawn('sleep', ['60'], { stdio: 'ignore' });
  const pidFiles: string[] = [];
  const down = (target: string) => run(process.execPath, [...cli, 'down', target], { encoding: 'utf8' })
    .then(() => ({ code: 0, stderr: '' }), (e: { code: number; stderr: string }) => e);
  try {
    await waitFor('interface up', () => stderr.includes('is up'), 15_000);
    // pid files that name the wrong process: another interface's `wg up`, a process that is no
    // tuntap at all, and no pid
    const cases: Array<[string, string]> = [[uniqueName('wgo'), `${child.pid}\n`], [uniqueName('wgs'), `${bystander.pid}\n`], [uniqueName('wgm'), '12abc\n']];
    for (const [other, text] of cases) {
      const file = `/var/run/wireguard/${other}.tuntap.pid`;
      pidFiles.push(file);
      writeFileSync(file, text);
      const r = await down(other);
      assert.equal(r.code, 1, `${other}: ${text}`);
      assert.match(r.stderr, /not signalling it|not a process id/);
    }
    assert.equal(child.exitCode, null, 'the other interface is still up');
    assert.equal(bystander.exitCode, null, 'the bystander was not signalled');
    // the TUN goes away under it
    await nsRunOk(ns, 'ip', ['link', 'del', name]);
    assert.equal(await exited, 1);
    const last = stderr.trim().split('\n').at(-1)!;
    assert.match(last, new RegExp(`^tuntap: ${name} stopped: .+`), stderr);
    assert.ok(!existsSync(`/var/run/wireguard/${name}.sock`));
    assert.ok(!existsSync(`/var/run/wireguard/${name}.tuntap.pid`));
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    bystander.kill('SIGKILL');
    for (const f of pidFiles) rmSync(f, { force: true });
  }
});
