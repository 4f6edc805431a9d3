import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, chmodSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { parseConfig, readConfig, ConfigError, interfaceNameOf } from '../../src/wireguard/config.js';
import { parseEndpoint } from '../../src/wireguard/settings.js';

const key = (cmd: string, input?: string) => execFileSync('wg', [cmd], { input, encoding: 'utf8' }).trim();

test('parses a full wg-quick file', () => {
  const priv = key('genkey');
  const pub = key('pubkey', priv);
  const psk = key('genpsk');
  const text = `# comment
[Interface]
PrivateKey = ${priv}
Address = 10.0.0.1/24, fd00::1/64
Address = 10.0.1.1/32
ListenPort = 51820
MTU = 1380
Table = off
DNS = 1.1.1.1
PreUp = echo pre
PostUp = echo up   # trailing comment
PreDown = echo predown
PostDown = echo down

[Peer]
PublicKey = ${pub}
PresharedKey = ${psk}
AllowedIPs = 10.0.0.2/32, fd00::2/128
Endpoint = [fd00:1::2]:51821
PersistentKeepalive = 25

[peer]
publickey = ${key('pubkey', key('genkey'))}
allowedips = 0.0.0.0/0
endpoint = 198.18.0.2:1234
`;
  const c = parseConfig(text, 'wg0.conf');
  assert.equal(c.interface.privateKey!.toString('base64'), priv);
  assert.deepEqual(c.interface.addresses, ['10.0.0.1/24', 'fd00::1/64', '10.0.1.1/32']);
  assert.equal(c.interface.listenPort, 51820);
  assert.equal(c.interface.mtu, 1380);
  assert.equal(c.interface.table, 'off');
  assert.deepEqual(c.interface.postUp, ['echo up']);
  assert.deepEqual(c.interface.preDown, ['echo predown']);
  assert.equal(c.peers.length, 2);
  assert.equal(c.peers[0]!.publicKey.toString('base64'), pub);
  assert.equal(c.peers[0]!.presharedKey!.toString('base64'), psk);
  assert.deepEqual(c.peers[0]!.endpoint, { host: 'fd00:1::2', port: 51821 });
  assert.equal(c.peers[0]!.persistentKeepalive, 25);
  assert.deepEqual(c.peers[1]!.allowedIps, ['0.0.0.0/0']);
  assert.equal(c.warnings.length, 1);
  assert.match(c.warnings[0]!, /DNS is ignored/);
});

test('errors name the file, line and key', () => {
  const bad = (text: string, re: RegExp) => assert.throws(() => parseConfig(text, 'x.conf'), (e: unknown) => e instanceof ConfigError && re.test(e.message));
  bad('[Interface]\nPrivateKey = nope\n', /^x\.conf:2: PrivateKey: a key must be 44 characters/);
  bad('[Interface]\nListenPort = 70000\n', /^x\.conf:2: ListenPort: expected a whole number/);
  for (const table of ['4294967297', '4294967296', '0', '01', '-1']) bad(`[Interface]\nTable = ${table}\n`, /^x\.conf:2: Table: expected off, auto, main or a table number/);
  for (const mark of ['0xzz', '0x', '0x123456789', '1e3', '-1']) bad(`[Interface]\nFwMark = ${mark}\n`, /^x\.conf:2: FwMark: expected a whole number/);
  bad(`[Interface]\n[Peer]\nPublicKey = ${'A'.repeat(43)}=\n`, /^x\.conf:3: PublicKey: an all-zero key is no key/);
  bad('[Interface]\nFoo = 1\n', /^x\.conf:2: Foo: unknown key/);
  bad('[Interface]\n[Peer]\nAllowedIPs = 10.0.0.300/32\n', /^x\.conf:3: AllowedIPs: "10.0.0.300\/32" is not/);
  bad('[Interface]\n[Peer]\nEndpoint = fd00::1:5\n', /^x\.conf:3: Endpoint: expected host:port/);
  bad('[Interface]\n\n[Peer]\nAllowedIPs = 10.0.0.0/8\n', /^x\.conf:3: PublicKey: every \[Peer\] needs/);
  bad('Address = 1.2.3.4\n', /^x\.conf:1: Address: settings must follow/);
  bad('[Interface]\njunk\n', /^x\.conf:2: expected "Key = value"/);
  bad('# nothing\n', /no \[Interface\]/);
  assert.equal(interfaceNameOf('/etc/wireguard/wg0.conf'), 'wg0');
  assert.equal(parseEndpoint('host.example:80')?.host, 'host.example');
});

test('warns when the file with the private key is readable by others', () => {
  const dir = mkdtempSync(join(tmpdir(), 'wgconf-'));
  try {
    const f = join(dir, 'wgt0.conf');
    writeFileSync(f, `[Interface]\nPrivateKey = ${key('genkey')}\n`);
    chmodSync(f, 0o644);
    assert.ok(readConfig(f).warnings.some((w) => /readable by others/.test(w)));
    chmodSync(f, 0o600);
    assert.deepEqual(readConfig(f).warnings, []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
