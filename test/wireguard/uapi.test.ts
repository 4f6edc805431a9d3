// The UAPI socket driven by the real `wg` tool (wireguard-tools): show, set, setconf.
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
