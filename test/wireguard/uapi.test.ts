// The UAPI socket driven by the real `wg` tool (wireguard-tools): show, set, setconf; and by raw
// requests no `wg` would send (loose numbers, a zero key, a set failing halfway), as an attacker might.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WireGuardEngine } from '../../src/wireguard/engine.js';
import { UapiServer, type UapiDevice } from '../../src/wireguard/uapi.js';
import { generatePrivateKey, keyToBase64, publicKey } from '../../src/wireguard/crypto.js';
import { uapiRequest } from '../../src/wireguard/status.js';
import { WireGuardInterface } from '../../src/wireguard/interface.js';
import { openUdp } from '../../src/net/udp.js';
import { TestNet, uniqueName } from '../helpers/netns.js';

const run = promisify(execFile);
const wg = async (...args: string[]) => (await run('wg', args, { encoding: 'utf8' })).stdout;

class FakeDevice implements UapiDevice {
  listenPort = 0;
  fwmark = 0;
  constructor(readonly engine: WireGuardEngine) {}
  setListenPort(p: number) { this.listenPort = p; }
  setFwmark(m: number) { this.fwmark = m; }
}

const name = `tt${(process.pid % 100000).toString(36)}u`;
const dir = mkdtempSync(join(tmpdir(), 'wguapi-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('wg show / set / setconf work over our UAPI socket', async () => {
  const priv = generatePrivateKey();
  const engine = new WireGuardEngine({ send() {}, deliver() {} }, { privateKey: priv });
  const dev = new FakeDevice(engine);
  dev.listenPort = 51820;
  const server = new UapiServer(name, dev);
  await server.listen();
  try {
    const peerPub = keyToBase64(publicKey(generatePrivateKey()));
    await wg('set', name, 'listen-port', '51999', 'fwmark', '0x42', 'peer', peerPub, 'allowed-ips', '10.0.0.2/32,fd00::2/128',
      'endpoint', '198.18.0.2:51821', 'persistent-keepalive', '25');
    assert.equal(dev.listenPort, 51999);
    assert.equal(dev.fwmark, 0x42);
    const peer = engine.getPeer(Buffer.from(peerPub, 'base64'))!;
    assert.ok(peer);
    assert.equal(peer.endpoint?.address, '198.18.0.2');
    assert.equal(peer.persistentKeepalive, 25);
    const dump = (await wg('show', name, 'dump')).trim().split('\n').map((l) => l.split('\t'));
    assert.equal(dump[0]![0], keyToBase64(priv));
    assert.equal(dump[0]![1], keyToBase64(engine.publicKey!));
    assert.equal(dump[0]![2], '51999');
    assert.equal(dump[1]![0], peerPub);
    assert.equal(dump[1]![2], '198.18.0.2:51821');
    assert.equal(dump[1]![3], '10.0.0.2/32,fd00::2/128');
    assert.equal(dump[1]![7], '25');
    const pretty = await wg('show', name);
    assert.match(pretty, new RegExp(`interface: ${name}`));
    assert.match(pretty, /allowed ips: 10\.0\.0\.2\/32, fd00::2\/128/);
    // remove the peer, then setconf replaces everything
    await wg('set', name, 'peer', peerPub, 'remove');
    assert.equal(engine.peers.size, 0);
    const newPriv = keyToBase64(generatePrivateKey());
    const p2 = keyToBase64(publicKey(generatePrivateKey()));
    const conf = join(dir, 'set.conf');
    writeFileSync(conf, `[Interface]\nPrivateKey = ${newPriv}\nListenPort = 40000\n\n[Peer]\nPublicKey = ${p2}\nAllowedIPs = 198.18.9.0/24\nEndpoint = [fd00::9]:9\n`, { mode: 0o600 });
    await wg('setconf', name, conf);
    assert.equal(keyToBase64(engine.privateKey!), newPriv);
    assert.equal(dev.listenPort, 40000);
    assert.deepEqual([...engine.peers.keys()], [p2]);
    assert.equal((await wg('show', name, 'endpoints')).trim(), `${p2}\t[fd00::9]:9`);
    // a bad request gets an errno, and wg reports failure
    await assert.rejects(wg('set', name, 'peer', p2, 'endpoint', 'not-an-endpoint'));
  } finally {
    await server.close();
  }
});

/** A device whose engine has one peer, served on a socket of its own; the request helper answers the errno. */
async function served(run: (dev: FakeDevice, request: (body: string) => Promise<number>) => Promise<void>): Promise<void> {
  const engine = new WireGuardEngine({ send() {}, deliver() {} }, { privateKey: generatePrivateKey() });
  const dev = new FakeDevice(engine);
  dev.listenPort = 51820;
  dev.fwmark = 7;
  const sockName = `${name}s`;
  const server = new UapiServer(sockName, dev, dir);
  await server.listen();
  const request = async (body: string) => {
    const lines = await uapiRequest(sockName, `${body}\n\n`, dir);
    return Number(lines.find((l) => l.startsWith('errno='))!.slice(6));
  };
  try { await run(dev, request); } finally { await server.close(); }
}

const hexOf = (key: Buffer) => key.toString('hex');

test('UAPI integers are decimal digits only; an all-zero public key is refused', async () => {
  await served(async (dev, request) => {
    const peerKey = hexOf(publicKey(generatePrivateKey()));
    for (const line of ['listen_port=1e3', 'listen_port= 7', 'listen_port=0x10', 'listen_port=65536', 'listen_port=-1', 'listen_port=',
      'fwmark=0x10', 'fwmark=1e3', 'fwmark= 7', 'fwmark=7 ', 'fwmark=', 'fwmark=4294967296', 'fwmark=1.5']) {
      assert.equal(await request(`set=1\n${line}`), 22, line);
    }
    assert.equal(await request(`set=1\npublic_key=${peerKey}\npersistent_keepalive_interval=0x19`), 22);
    assert.equal(await request(`set=1\npublic_key=${'0'.repeat(64)}\nallowed_ip=198.18.0.0/16`), 22);
    assert.deepEqual([dev.listenPort, dev.fwmark, dev.engine.peers.size], [51820, 7, 0], 'nothing changed');
    assert.equal(await request('set=1\nfwmark=4294967295\nlisten_port=0065'), 0);
    assert.deepEqual([dev.listenPort, dev.fwmark], [65, 0xffffffff]);
  });
});

test('a UAPI set that fails anywhere changes nothing', async () => {
  await served(async (dev, request) => {
    const e = dev.engine;
    const kept = publicKey(generatePrivateKey());
    e.setPeer({ publicKey: kept, allowedIps: ['198.18.1.0/24'], endpoint: { address: '198.18.0.1', port: 1 } });
    const ourKey = Buffer.from(e.privateKey!);
    const newcomer = publicKey(generatePrivateKey());
    const changes = [`private_key=${hexOf(generatePrivateKey())}`, 'listen_port=40000', 'fwmark=9', 'replace_peers=true',
      `public_key=${hexOf(newcomer)}`, 'allowed_ip=198.18.2.0/24', 'persistent_keepalive_interval=25'];
    for (const bad of ['endpoint=not-an-endpoint', 'endpoint=[fe80::1%eth0]:51820', 'allowed_ip=198.18.300.0/24', 'remove=yes', 'no_such_key=1', 'protocol_version=2']) {
      assert.equal(await request(['set=1', ...changes, bad].join('\n')), 22, bad);
      assert.ok(e.privateKey!.equals(ourKey), `${bad}: private key kept`);
      assert.deepEqual([dev.listenPort, dev.fwmark], [51820, 7], `${bad}: port and mark kept`);
      assert.deepEqual([...e.peers.values()].map((p) => p.publicKey), [kept], `${bad}: peers kept`);
      assert.deepEqual(e.allowedIps.entries(e.getPeer(kept)!).map((x) => x.cidr), ['198.18.1.0/24'], bad);
    }
    // the same changes, all valid, are all made
    assert.equal(await request(['set=1', ...changes].join('\n')), 0);
    assert.deepEqual([dev.listenPort, dev.fwmark], [40000, 9]);
    assert.deepEqual([...e.peers.values()].map((p) => p.publicKey), [newcomer]);
    assert.equal(e.getPeer(newcomer)!.persistentKeepalive, 25);
    // update_only for a peer that does not exist makes none; remove ends a peer's section
    const ghost = publicKey(generatePrivateKey());
    assert.equal(await request(`set=1\npublic_key=${hexOf(ghost)}\nupdate_only=true\nallowed_ip=198.18.3.0/24`), 0);
    assert.equal(e.getPeer(ghost), undefined);
    assert.equal(await request(`set=1\npublic_key=${hexOf(newcomer)}\nremove=true\nallowed_ip=198.18.4.0/24`), 0);
    assert.equal(e.peers.size, 0);
  });
});

test('the UAPI socket is born 0600: no moment exists when others may connect to it', async () => {
  // Under strace every chmod the server might make afterwards is turned into a no-op that
  // succeeds, so the mode seen is the one the socket was created with.
  const sockName = `${name}m`;
  const code = `
    const { UapiServer } = await import(${JSON.stringify(new URL('../../src/wireguard/uapi.ts', import.meta.url).pathname)});
    const { WireGuardEngine } = await import(${JSON.stringify(new URL('../../src/wireguard/engine.ts', import.meta.url).pathname)});
    const { statSync } = await import('node:fs');
    const dev = { engine: new WireGuardEngine({ send() {}, deliver() {} }), listenPort: 0, fwmark: 0, setListenPort() {}, setFwmark() {} };
    const server = new UapiServer(${JSON.stringify(sockName)}, dev, ${JSON.stringify(dir)});
    await server.listen();
    console.log((statSync(server.path).mode & 0o777).toString(8));
    await server.close();`;
  const { stdout } = await run('strace', ['-f', '-qq', '-o', '/dev/null', '-e', 'trace=chmod,fchmodat,fchmod',
    '-e', 'inject=chmod,fchmodat,fchmod:retval=0', process.execPath, '--import', 'tsx', '--input-type=module', '-e', code],
  { encoding: 'utf8', cwd: new URL('../..', import.meta.url).pathname });
  assert.equal(stdout.trim(), '600');
});

test('a UAPI set whose new port is taken fails whole: the key it carried is not applied either', async () => {
  const net = new TestNet();
  const iface = await WireGuardInterface.open({ name: uniqueName('wgu'), netns: net.namespace('wgu'), privateKey: generatePrivateKey(), uapiDir: dir });
  const squatter = openUdp({ netns: net.namespaces[0], bind: { address: '0.0.0.0', port: 0 } });
  try {
    const taken = squatter.localEndpoint.port;
    const ourKey = Buffer.from(iface.engine.privateKey!);
    const port = iface.listenPort;
    const lines = await uapiRequest(iface.name, `set=1\nprivate_key=${hexOf(generatePrivateKey())}\nlisten_port=${taken}\n\n`, dir);
    assert.deepEqual(lines, ['errno=98'], 'EADDRINUSE');
    assert.ok(iface.engine.privateKey!.equals(ourKey));
    assert.equal(iface.listenPort, port);
  } finally {
    await squatter.close();
    await iface.close();
    net.cleanup();
  }
});
