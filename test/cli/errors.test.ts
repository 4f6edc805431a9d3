// Every error a user can cause is one line on stderr naming what failed and why, with exit
// code 1 (2 for a wrong command line), and leaves nothing behind. Each bad input runs through
// the built CLI inside a test namespace.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TestNet, nsExec } from '../helpers/netns.js';
import { readableDir } from '../helpers/user.js';
import { assertOneLine, cli, processesWith, state } from './helpers.js';

interface Case {
  args: string[];
  code: 1 | 2;
  says: RegExp;
  /** What the message must not say (the old wording). */
  not?: RegExp;
  input?: string;
  /** wg-quick's "[#] command" progress lines (logged at info) come before the error. */
  progress?: boolean;
}

describe('tuntap: one line per error, nothing left behind', () => {
  const net = new TestNet();
  let ns: string;
  let dir: string;
  before(() => {
    ns = net.namespace('ce');
    nsExec(ns, 'ip', 'tuntap', 'add', 'dev', 'tunx0', 'mode', 'tun');
    dir = readableDir('tuntap-cli-errors-');
    const conf = `[Interface]\nPrivateKey = ${randomBytes(32).toString('base64')}\nAddress = 198.18.120.1/24\n`;
    for (const f of ['ok0.conf', 'averyveryverylongname.conf']) writeFileSync(join(dir, f), conf, { mode: 0o600 });
    writeFileSync(join(dir, 'hook0.conf'), `${conf}PreUp = false\n`, { mode: 0o600 });
    writeFileSync(join(dir, 'endpoint0.conf'), `${conf}\n[Peer]\nPublicKey = ${randomBytes(32).toString('base64')}\n` +
      'Endpoint = nosuchhost.invalid:51820\n', { mode: 0o600 });
  });
  after(() => {
    net.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  test('each bad input', () => {
    const cases: Case[] = [
      // The six that printed a Node stack trace.
      { args: ['wg', 'show', 'nosuch'], code: 1, says: /no WireGuard interface named "nosuch"/ },
      { args: ['dump', '-w', '/nonexistent/dir/x.pcap'], code: 1, says: /\/nonexistent\/dir\/x\.pcap: cannot write: no such file or directory/ },
      { args: ['bridge', 'tapx0', '--vxlan', 'vni=42,local=bogus'], code: 2, says: /--vxlan local must be an IP address, got "bogus"/ },
      { args: ['bridge', 'tapx0', 'tapx1', '--vlan', 'tapx0=access:5000'], code: 2, says: /--vlan tapx0=access:5000: a VLAN id must be a number 1\.\.4094/ },
      { args: ['bridge', 'vm-tap', 'add', 'vmx0', '--user', 'nosuchuser'], code: 1, says: /--user: no user named "nosuchuser"/ },
      // (wg show as another user: test/cli/wg.test.ts, which has an interface to show.)
      // Consistency: options as typed, the action named, names checked as add checks them.
      { args: ['dump', '-c', 'x'], code: 2, says: /^tuntap: -c needs an integer, got "x"$/ },
      // Number() alone would read these as 16, 1000 and 0: an integer is decimal digits.
      { args: ['dump', '-c', '0x10'], code: 2, says: /^tuntap: -c needs an integer, got "0x10"$/ },
      { args: ['dump', '-c', '1e3'], code: 2, says: /^tuntap: -c needs an integer, got "1e3"$/ },
      { args: ['dump', '-c', ''], code: 2, says: /^tuntap: -c needs an integer, got ""$/ },
      { args: ['dump', '-c'], code: 2, says: /^tuntap: -c needs a value$/ },
      { args: ['del', 'nosuch0'], code: 1, says: /^tuntap: deleting nosuch0: device "nosuch0" does not exist/, not: /showing/ },
      { args: ['add', 'a/b'], code: 2, says: /^tuntap: "a\/b" is not a valid device name/ },
      { args: ['wg', 'up', join(dir, 'ok0.conf'), '--name', 'a/b'], code: 2, says: /^tuntap: "a\/b" is not a valid device name/ },
      { args: ['wg', 'up', join(dir, 'averyveryverylongname.conf')], code: 2, says: /^tuntap: "averyveryverylongname" is not a valid device name/ },
      { args: ['wg', 'up', join(dir, 'missing0.conf')], code: 1, says: /^tuntap: \S+\/missing0\.conf: cannot read: no such file or directory/, not: /:0:/ },
      { args: ['wg', 'up', join(dir, 'hook0.conf')], code: 1, says: /^tuntap: hook failed \(exit 1\): false$/, progress: true },
      { args: ['wg', 'up', join(dir, 'endpoint0.conf')], code: 1, says: /endpoint0\.conf:\d+: Endpoint: cannot resolve host "nosuchhost\.invalid"/ },
      { args: ['socks', '--proxy', 'http://198.18.120.9:3128'], code: 2, says: /tuntap socks takes a socks5:\/\/ or socks4a:\/\/ proxy/ },
      { args: ['http', '--proxy', 'socks5://198.18.120.9:1080'], code: 2, says: /tuntap http takes an http:\/\/ proxy/ },
      // More that escaped as TypeError or Error, and other everyday mistakes.
      { args: ['bridge', 'tunx0', 'tapx1'], code: 1, says: /tunx0 is a TUN device; a bridge port needs a TAP/ },
      { args: ['bridge', 'tapx0', 'tapx0'], code: 2, says: /the port name tapx0 is given twice/ },
      { args: ['bridge', 'tapx0'], code: 2, says: /a bridge needs at least two ports/ },
      { args: ['bridge', 'vm-tap', 'del', 'nosuch0'], code: 1, says: /deleting nosuch0: device "nosuch0" does not exist/ },
      { args: ['bridge', 'vm-tap', 'del', 'tunx0'], code: 1, says: /tunx0: it is not a TAP device/ },
      { args: ['bridge', 'vm-tap', 'add', 'vmx0', '--user', '0', '--queues', '300'], code: 2, says: /--queues must be 1\.\.256/ },
      { args: ['add', 'x0', '--owner', 'nosuchuser'], code: 1, says: /--owner: no user named "nosuchuser"/ },
      { args: ['add', 'x0', '--mode', 'tan'], code: 2, says: /--mode must be tun or tap, not "tan"/ },
      { args: ['add'], code: 2, says: /usage: tuntap add NAME/ },
      { args: ['show', 'lo'], code: 1, says: /lo is a \S+ device, not a tun\/tap device/ },
      { args: ['list', '--netns', 'no-such-netns-q'], code: 1, says: /no such namespace/ },
      { args: ['wg', 'pubkey'], input: 'not a key\n', code: 1, says: /the key on stdin is not 32 bytes in base64/ },
      { args: ['wg', 'bogus'], code: 2, says: /unknown wg command "bogus"/ },
      { args: ['wg'], code: 2, says: /wg needs a command/ },
      { args: ['wg', 'show', '--bogus'], code: 2, says: /unknown option --bogus/ },
      { args: ['dump', '--json'], code: 2, says: /unknown option --json/ },
      { args: ['demo', '--count', '0'], code: 2, says: /--count needs a positive number/ },
      { args: ['nosuchcommand'], code: 2, says: /unknown command "nosuchcommand"/ },
    ];
    const before = state(ns);
    for (const c of cases) {
      const what = `tuntap ${c.args.join(' ')}`;
      const r = cli(c.args, { ns, input: c.input });
      const line = assertOneLine(c.progress ? { ...r, stderr: r.stderr.replace(/^(?:\S+ )?info {2}\[#\] .*\n/gm, '') } : r, what);
      assert.equal(r.code, c.code, `${what}: exit code (${line})`);
      assert.match(line, c.says, what);
      if (c.not) assert.doesNotMatch(line, c.not, what);
      assert.deepEqual(processesWith(r.marker), [], `${what}: a process of it is still running`);
      assert.equal(state(ns), before, `${what}: left something behind`);
    }
  });

  test('anything else is a bug: its stack, and a line asking to report it', () => {
    // A fault injected into the process (JSON.stringify throws), as a bug in tuntap would throw.
    const fault = encodeURIComponent('JSON.stringify = () => { throw new TypeError("injected fault"); };');
    const inject = `NODE_OPTIONS=--import=data:text/javascript,${fault}`;
    const r = cli(['list', '--json'], { ns, prefix: ['env', inject] });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^TypeError: injected fault\n\s+at /);
    assert.match(r.stderr, /\ntuntap: this is a bug in tuntap, not a mistake of yours; please report it with the command you ran and the output above\n$/);
  });

  test('wg up and add name an invalid interface in the same words', () => {
    const viaAdd = cli(['add', 'far-too-long-name0'], { ns });
    const viaWg = cli(['wg', 'up', join(dir, 'ok0.conf'), '--name', 'far-too-long-name0'], { ns });
    assert.equal(assertOneLine(viaWg, 'wg up'), assertOneLine(viaAdd, 'add'));
  });
});
