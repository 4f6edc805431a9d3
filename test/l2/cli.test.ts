// `tuntap bridge` as a user runs it: it creates two TAPs in a switch namespace; their netdevs
// are moved into two host namespaces that then ping each other. The JSON lines show the
// traffic and the learned MACs; SIGTERM stops it cleanly and the TAPs disappear.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { spawn } from 'node:child_process';
import { TestNet, nsExec, nsRun, uniqueName } from '../helpers/netns.js';
import { macOf } from './helpers.js';
import { moveLink } from '../../src/netlink/index.js';

const main = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

describe('tuntap bridge (CLI)', () => {
  const net = new TestNet();
  after(() => net.cleanup());

  it('bridges two TAPs, reports stats and MACs as JSON, stops on SIGTERM', async () => {
    const sw = net.namespace('l2csw'); const a = net.namespace('l2ca'); const b = net.namespace('l2cb');
    const tapA = uniqueName('ca'); const tapB = uniqueName('cb');
    const cli = spawn(process.execPath, ['--import', 'tsx', main, 'bridge', tapA, tapB, '--netns', sw, '--json',
      '--interval', '0.3', '--age', '60'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    cli.stderr.on('data', (d) => { stderr += d; });
    const exited = new Promise<number | null>((resolve) => cli.once('exit', (code) => resolve(code)));
    try {
      const lines = createInterface({ input: cli.stdout })[Symbol.asyncIterator]();
      const next = async () => {
        const r = await lines.next();
        assert.ok(!r.done, `the bridge stopped early: ${stderr}`);
        return JSON.parse(r.value) as { time: string; ports: Record<string, { rxFrames: number; floods: number }>; macs: { mac: string; port: string }[]; final: boolean };
      };
      const first = await next();
      assert.deepEqual(Object.keys(first.ports).sort(), [tapA, tapB].sort());
      for (const [host, tap, addr] of [[a, tapA, '198.18.60.1'], [b, tapB, '198.18.60.2']] as const) {
        moveLink(tap, host, { netns: sw });
        net.configure(host, tap, { up: true, addresses: [`${addr}/24`] });
      }
      const ping = await nsRun(a, 'ping', ['-c', '3', '-i', '0.2', '-W', '2', '198.18.60.2']);
      assert.equal(ping.code, 0, ping.stdout + ping.stderr);
      // Lines queue up while ping runs: take the first one written after it finished.
      const pingDone = Date.now();
      let report = await next();
      while (Date.parse(report.time) <= pingDone) report = await next();
      assert.ok(report.ports[tapA]!.rxFrames >= 4 && report.ports[tapA]!.floods >= 1, JSON.stringify(report.ports));
      const macs = new Map(report.macs.map((m) => [m.mac, m.port]));
      assert.equal(macs.get(macOf(a, tapA)), tapA);
      assert.equal(macs.get(macOf(b, tapB)), tapB);
      cli.kill('SIGTERM');
      let last = report;
      for (;;) {
        const r = await lines.next();
        if (r.done) break;
        last = JSON.parse(r.value);
      }
      assert.equal(last.final, true);
      assert.equal(await exited, 0, stderr);
      // Non-persistent TAPs go with the process that held them.
      assert.equal(nsExec(a, 'ip', '-o', 'link', 'show').includes(tapA), false);
    } finally {
      cli.kill('SIGKILL');
    }
  });

  it('vm-tap add/del makes and removes a persistent TAP for an unprivileged user', async () => {
    const ns = net.namespace('l2cvm');
    const name = uniqueName('cv');
    const cli = (...args: string[]) => new Promise<{ code: number | null; out: string }>((resolve) => {
      const p = spawn(process.execPath, ['--import', 'tsx', main, 'bridge', 'vm-tap', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      p.stdout.on('data', (d) => { out += d; });
      p.stderr.on('data', (d) => { out += d; });
      p.once('exit', (code) => resolve({ code, out }));
    });
    const add = await cli('add', name, '--user', 'nobody', '--queues', '2', '--netns', ns);
    assert.equal(add.code, 0, add.out);
    const details = nsExec(ns, 'ip', '-d', 'link', 'show', name);
    assert.match(details, /tun type tap .*vnet_hdr on .*multi_queue .*persist on .*user (65534|nobody)/s);
    const del = await cli('del', name, '--netns', ns);
    assert.equal(del.code, 0, del.out);
    assert.equal(nsExec(ns, 'ip', '-o', 'link', 'show').includes(name), false);
  });

  it('adds VXLAN ports and VLAN membership from the command line', async () => {
    const ns = net.namespace('l2cvx');
    net.configure(ns, 'lo', { addresses: ['198.18.80.1/32'] });
    const tap = uniqueName('cx');
    const r = await new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
      const p = spawn(process.execPath, ['--import', 'tsx', main, 'bridge', tap, '--netns', ns, '--json', '--duration', '1',
        '--vxlan', 'vni=5,local=198.18.80.1,remote=198.18.80.2,static=02:00:00:00:00:09@198.18.80.3',
        '--vlan', `${tap}=access:10`, '--vlan', 'vxlan5=trunk:10,20/native:30'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = ''; let err = '';
      p.stdout.on('data', (d) => { out += d; });
      p.stderr.on('data', (d) => { err += d; });
      p.once('exit', (code) => resolve({ code, out, err }));
    });
    assert.equal(r.code, 0, r.err);
    const last = JSON.parse(r.out.trim().split('\n').at(-1)!) as { final: boolean; ports: Record<string, unknown>; vxlan: Record<string, { remotes: { mac: string; remote: string; static: boolean }[] }> };
    assert.equal(last.final, true);
    assert.deepEqual(Object.keys(last.ports).sort(), [tap, 'vxlan5'].sort());
    assert.deepEqual(last.vxlan.vxlan5!.remotes, [{ mac: '02:00:00:00:00:09', remote: '198.18.80.3', age: 0, static: true }]);
  });

  it('rejects a bridge with fewer than two ports and malformed options', async () => {
    for (const args of [['bridge', 'tap0'], ['bridge', 'tap0', '--vxlan', 'vni=1'], ['bridge', 'a', 'b', '--vlan', 'a=x:1']]) {
      const r = await new Promise<{ code: number | null; err: string }>((resolve) => {
        const p = spawn(process.execPath, ['--import', 'tsx', main, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
        let err = '';
        p.stderr.on('data', (d) => { err += d; });
        p.once('exit', (code) => resolve({ code, err }));
      });
      assert.notEqual(r.code, 0, args.join(' '));
      assert.match(r.err, /tuntap: /, args.join(' '));
    }
  });
});
