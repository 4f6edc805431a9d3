// Where IPv6 is disabled (net.ipv6.conf.all.disable_ipv6 = 1, set inside a test namespace
// only), the commands that add IPv6 by default start with IPv4 and print one warning line.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TestNet, nsExec, uniqueName } from '../helpers/netns.js';
import { readableDir } from '../helpers/user.js';
import { assertOneLine, cli, processesWith, runUntilReady, state } from './helpers.js';

// A warning line: the one-shot commands' `tuntap: warning: ...`, the long-running ones' logged `warn` lines.
const warnings = (stderr: string) => stderr.split('\n').filter((l) => /\bwarn(ing)?\b/i.test(l));

describe('commands on a host with IPv6 disabled', () => {
  const net = new TestNet();
  let ns: string;
  let dir: string;
  before(() => {
    ns = net.namespace('c6');
    nsExec(ns, 'sysctl', '-q', '-w', 'net.ipv6.conf.all.disable_ipv6=1');
    dir = readableDir('tuntap-cli-ipv6-');
  });
  after(() => {
    net.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  for (const command of ['socks', 'http']) {
    test(`${command} starts with IPv4 only and one warning`, async () => {
      const stderr = await runUntilReady(ns, [command, '--proxy', 'direct', '--json', '--name', uniqueName('tp')], '"event":"ready"', 'stdout');
      assert.equal(warnings(stderr).length, 1, stderr);
      assert.match(warnings(stderr)[0]!, /^\S+ warn {2}IPv6 is disabled here .*IPv4 only/);
    });
  }

  test('wg up with IPv4 addresses starts, routes its IPv4 AllowedIPs, and warns once', async () => {
    const name = uniqueName('wg6');
    const conf = join(dir, `${name}.conf`);
    writeFileSync(conf, `[Interface]\nPrivateKey = ${randomBytes(32).toString('base64')}\nAddress = 198.18.123.1/24\n\n` +
      `[Peer]\nPublicKey = ${randomBytes(32).toString('base64')}\nAllowedIPs = 198.18.124.0/24, fd00:124::/64, 0.0.0.0/0, ::/0\n`, { mode: 0o600 });
    const stderr = await runUntilReady(ns, ['wg', 'up', conf], `${name} is up`, 'stderr', { whileUp: () => {
      assert.match(nsExec(ns, 'ip', '-4', 'route', 'show', 'table', 'all'), new RegExp(`198\\.18\\.124\\.0/24 dev ${name}`));
      assert.match(nsExec(ns, 'ip', '-4', 'rule'), /not from all fwmark 0xca6c lookup 51820/);
    } });
    assert.equal(warnings(stderr).length, 1, stderr);
    assert.match(warnings(stderr)[0]!, new RegExp(`IPv6 is disabled here .*${name} carries IPv4 only`));
  });

  test('wg up with an IPv6 address: one line saying why it cannot', () => {
    const name = uniqueName('wg6');
    const conf = join(dir, `${name}.conf`);
    writeFileSync(conf, `[Interface]\nPrivateKey = ${randomBytes(32).toString('base64')}\nAddress = 198.18.123.1/24, fd00:123::1/64\n`, { mode: 0o600 });
    const before = state(ns);
    const r = cli(['wg', 'up', conf], { ns });
    assert.equal(r.code, 1);
    assert.match(assertOneLine(r, 'wg up'), /Address fd00:123::1\/64 is IPv6, but IPv6 is disabled here/);
    assert.equal(state(ns), before);
  });

  test('the demo runs on IPv4 and warns once', () => {
    const r = cli(['demo', '--count', '1', '--seconds', '1', '--quiet'], { ns, timeoutMs: 120_000 });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(assertOneLine(r, 'demo'), 'tuntap: warning: IPv6 is disabled here (net.ipv6.conf.all.disable_ipv6 = 1), so the demo uses IPv4 only');
    assert.match(r.stdout, /answered 1 echo requests; all pings replied/);
    assert.doesNotMatch(r.stdout, /fd00:|fd01:/);
    assert.match(r.stdout, /3 packets transmitted, 3 received/);
    assert.deepEqual(processesWith(r.marker), []);
  });
});
