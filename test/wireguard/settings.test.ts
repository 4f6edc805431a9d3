// One table of settings serves the wg-quick parser and UAPI `set`: a value is refused for the
// same reason whichever way it comes, and what both accept lands in the same place.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig, ConfigError } from '../../src/wireguard/config.js';
import { uapiSet, type UapiDevice } from '../../src/wireguard/uapi.js';
import { WireGuardEngine } from '../../src/wireguard/engine.js';
import { INTERFACE_SETTINGS, PEER_SETTINGS } from '../../src/wireguard/settings.js';
import { generatePrivateKey, publicKey, keyToBase64 } from '../../src/wireguard/crypto.js';

function device(): UapiDevice & { listenPort: number; fwmark: number } {
  const engine = new WireGuardEngine({ send() {}, deliver() {} }, { privateKey: generatePrivateKey() });
  return { engine, listenPort: 0, fwmark: 0, setListenPort(p) { this.listenPort = p; }, setFwmark(m) { this.fwmark = m; } };
}

const peerKey = publicKey(generatePrivateKey());
const fileReason = (section: string, line: string) => {
  const text = section === 'peer' ? `[Interface]\n[Peer]\nPublicKey = ${keyToBase64(peerKey)}\n${line}\n` : `[Interface]\n${line}\n`;
  try { parseConfig(text, 'x.conf'); } catch (e) { if (e instanceof ConfigError) return e.message.replace(/^x\.conf:\d+: \w+: /, ''); throw e; }
  return 'accepted';
};
const uapiReason = (section: string, line: string) => {
  const body = section === 'peer' ? [`public_key=${peerKey.toString('hex')}`, line] : [line];
  try { uapiSet(device(), body); } catch (e) { return (e as Error).message.replace(/^\w+: /, ''); }
  return 'accepted';
};

test('a value is refused with the same reason in a wg-quick file and in a UAPI set', () => {
  const cases: Array<[section: string, file: string, uapi: string]> = [
    ['interface', 'ListenPort = 65536', 'listen_port=65536'],
    ['interface', 'ListenPort = 1e3', 'listen_port=1e3'],
    ['interface', 'FwMark = 4294967296', 'fwmark=4294967296'],
    ['peer', 'AllowedIPs = 198.18.300.0/24', 'allowed_ip=198.18.300.0/24'],
    ['peer', 'AllowedIPs = 198.18.0.0/33', 'allowed_ip=198.18.0.0/33'],
    ['peer', 'PersistentKeepalive = 65536', 'persistent_keepalive_interval=65536'],
    ['peer', 'PersistentKeepalive = -1', 'persistent_keepalive_interval=-1'],
  ];
  for (const [section, file, uapi] of cases) {
    const reason = fileReason(section, file);
    assert.notEqual(reason, 'accepted', file);
    assert.equal(uapiReason(section, uapi), reason, `${file} / ${uapi}`);
  }
  // An all-zero public key, in either spelling.
  assert.equal(fileReason('interface', `[Peer]\nPublicKey = ${Buffer.alloc(32).toString('base64')}`), 'an all-zero key is no key');
  assert.equal(uapiReason('interface', `public_key=${'0'.repeat(64)}`), 'an all-zero key is no key');
});

test('a key is 32 bytes exactly: 64 hex digits in UAPI, nothing before, after or instead of them', () => {
  const hex = peerKey.toString('hex');
  // Buffer.from(text, 'hex') would take 33 bytes from 66 digits and stop quietly at a bad one.
  for (const bad of [hex.slice(0, 63), `${hex}0`, `${hex}00`, `${hex.slice(0, 62)}zz`, `zz${hex}`, ` ${hex}`]) {
    assert.equal(uapiReason('interface', `public_key=${bad}`), 'a key must be 64 hex digits', bad);
    assert.equal(uapiReason('interface', `private_key=${bad}`), 'a key must be 64 hex digits', bad);
  }
  assert.equal(uapiReason('interface', `public_key=${hex}`), 'accepted');
});

test('each spelling keeps what only it allows: off and hex in a file, host names only where they are resolved', () => {
  const c = parseConfig(`[Interface]\nFwMark = 0x42\n[Peer]\nPublicKey = ${keyToBase64(peerKey)}\nPersistentKeepalive = off\nEndpoint = vpn.example.test:51820\n`);
  assert.equal(c.interface.fwmark, 0x42);
  assert.equal(c.peers[0]!.persistentKeepalive, 0);
  assert.deepEqual(c.peers[0]!.endpoint, { host: 'vpn.example.test', port: 51820 });
  for (const line of ['fwmark=0x42', 'fwmark=off']) assert.notEqual(uapiReason('interface', line), 'accepted', line);
  for (const line of ['persistent_keepalive_interval=off', 'endpoint=vpn.example.test:51820']) assert.notEqual(uapiReason('peer', line), 'accepted', line);
});

test('every setting UAPI knows is also a wg-quick key (wg setconf reads the same file)', () => {
  for (const rows of [INTERFACE_SETTINGS, PEER_SETTINGS] as const) {
    for (const row of rows) if (row.uapi) assert.ok(row.file, row.uapi);
  }
  const dev = device();
  uapiSet(dev, [`public_key=${peerKey.toString('hex')}`, 'allowed_ip=198.18.4.0/24', 'replace_allowed_ips=true', 'allowed_ip=198.18.5.9/24',
    'endpoint=[fd00::9]:9', 'persistent_keepalive_interval=0']);
  const peer = dev.engine.getPeer(peerKey)!;
  assert.deepEqual(dev.engine.allowedIps.entries(peer).map((e) => e.cidr), ['198.18.5.0/24'], 'replace_allowed_ips drops what came before it');
  assert.deepEqual([peer.endpoint?.address, peer.endpoint?.port], ['fd00::9', 9]);
});
