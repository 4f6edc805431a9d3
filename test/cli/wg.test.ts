// `tuntap wg` around one running interface (the built CLI in a test namespace): show --json,
// show as a user who may not read it, and up again, each error in one line. Every run has its
// own /var/run/wireguard (withUapiDir), so other tests' interfaces do not show up in its lists.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TestNet, nsExec, uniqueName } from '../helpers/netns.js';
import { waitForOutput } from '../helpers/wait.js';
import { asUser, readableDir, stageBuiltCli, withUapiDir } from '../helpers/user.js';
import { assertOneLine, cli, processesWith, startCli } from './helpers.js';
import type { ChildProcess } from 'node:child_process';

describe('tuntap wg with an interface up', () => {
  const net = new TestNet();
  let ns: string;
  let dir: string;
  let uapi: string[];
  let name: string;
  let conf: string;
  let up: { child: ChildProcess; marker: string };
  let stderr = '';

  before(async () => {
    ns = net.namespace('cw');
    dir = readableDir('tuntap-cli-wg-');
    mkdirSync(join(dir, 'uapi'), { mode: 0o755 });
    uapi = withUapiDir(join(dir, 'uapi'));
    name = uniqueName('wgc');
    conf = join(dir, `${name}.conf`);
    const peer = randomBytes(32).toString('base64');
    writeFileSync(conf, `[Interface]\nPrivateKey = ${randomBytes(32).toString('base64')}\nAddress = 198.18.121.1/24\n` +
      `ListenPort = 51900\n\n[Peer]\nPublicKey = ${peer}\nAllowedIPs = 198.18.122.0/24\n`, { mode: 0o600 });
    up = startCli(['wg', 'up', conf], { ns, prefix: uapi });
    up.child.stderr!.on('data', (d) => { stderr += d; });
    await waitForOutput(up.child, `${name} is up`, 'tuntap wg up', { stream: 'stderr', timeoutMs: 30_000 });
  });
  after(() => {
    up?.child.kill('SIGKILL');
    net.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  test('show --json prints the status as JSON', () => {
    const one = cli(['wg', 'show', name, '--json'], { prefix: uapi });
    assert.equal(one.code, 0, one.stderr);
    const status = JSON.parse(one.stdout) as { name: string; listenPort: number; peers: unknown[] };
    assert.equal(status.name, name);
    assert.equal(status.listenPort, 51900);
    assert.equal(status.peers.length, 1);
    const names = cli(['wg', 'show', 'interfaces', '--json'], { prefix: uapi });
    assert.deepEqual(JSON.parse(names.stdout), [name]);
    const all = cli(['wg', 'show', '--json'], { prefix: uapi });
    assert.deepEqual((JSON.parse(all.stdout) as { name: string }[]).map((s) => s.name), [name]);
  });

  test('show as a user without the right to read it: one line saying so', () => {
    const staged = stageBuiltCli();
    try {
      for (const args of [['wg', 'show', name], ['wg', 'show']]) {
        const r = cli(args, { main: staged.main, prefix: [...uapi, ...asUser(4242, 4242, [])] });
        const line = assertOneLine(r, args.join(' '));
        assert.equal(r.code, 1);
        assert.match(line, /needs root .*permission denied/);
      }
    } finally {
      staged.remove();
    }
  });

  test('up again: one line saying it is already up, and the running one is untouched', () => {
    const again = cli(['wg', 'up', conf], { ns, prefix: uapi });
    const line = assertOneLine(again, 'wg up again');
    assert.equal(again.code, 1);
    assert.match(line, new RegExp(`${name} is already up`));
    assert.doesNotMatch(line, /IFF_|EBUSY/);
    assert.deepEqual(processesWith(again.marker), []);
    assert.equal(up.child.exitCode, null, stderr);
    assert.match(nsExec(ns, 'ip', '-o', 'link'), new RegExp(` ${name}: `));
  });

  test('down stops it; nothing is left', async () => {
    const exited = new Promise<number | null>((r) => up.child.once('exit', (code) => r(code)));
    const down = cli(['wg', 'down', name], { ns, prefix: uapi });
    assert.equal(down.code, 0, down.stderr);
    assert.equal(await exited, 0, stderr);
    assert.doesNotMatch(nsExec(ns, 'ip', '-o', 'link'), new RegExp(` ${name}: `));
    assert.deepEqual(readdirSync(join(dir, 'uapi')), [], 'its UAPI socket and pid file are gone');
    assert.deepEqual(processesWith(up.marker), []);
  });
});
