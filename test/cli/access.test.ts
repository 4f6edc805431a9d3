// Handing a device to a user who cannot open /dev/net/tun (mode 0600 on a fresh boot) makes a
// device they cannot attach to: add --owner and bridge vm-tap add --user say so, and how to fix
// it. Each run sees its own node of the TUN device (a private mount namespace), of mode 0600 or
// 0666; the host's node is not touched.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { TestNet, nsExec, uniqueName } from '../helpers/netns.js';
import { withTunNode } from '../helpers/user.js';
import { cli } from './helpers.js';

describe('a device for a user who cannot open /dev/net/tun', () => {
  const net = new TestNet();
  let ns: string;
  before(() => { ns = net.namespace('ca'); });
  after(() => net.cleanup());

  const commands: [string, (name: string) => string[]][] = [
    ['add --owner', (name) => ['add', name, '--owner', '4242', '--mode', 'tap']],
    ['add --group', (name) => ['add', name, '--group', '4343']],
    ['bridge vm-tap add --user', (name) => ['bridge', 'vm-tap', 'add', name, '--user', '4242']],
  ];

  for (const [what, args] of commands) {
    test(`${what}: a warning with the fix at mode 0600, none at 0666; the device is made either way`, () => {
      for (const mode of [0o600, 0o666]) {
        const name = uniqueName('ac');
        const r = cli(args(name), { ns, prefix: withTunNode(mode) });
        assert.equal(r.code, 0, r.stderr);
        assert.match(nsExec(ns, 'ip', '-o', 'link'), new RegExp(` ${name}: `));
        if (mode === 0o600) {
          assert.match(r.stderr, /^tuntap: warning: (user|group) 4\d+ cannot open \/dev\/net\/tun \(mode 0600, root:root\).*chmod 0666 \/dev\/net\/tun.*udev rule/);
          assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
        } else {
          assert.equal(r.stderr, '');
        }
        nsExec(ns, 'ip', 'link', 'del', name);
      }
    });
  }

  test('root as owner needs no warning', () => {
    const name = uniqueName('ac');
    const r = cli(['add', name, '--owner', '0'], { ns, prefix: withTunNode(0o600) });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
    nsExec(ns, 'ip', 'link', 'del', name);
  });
});
