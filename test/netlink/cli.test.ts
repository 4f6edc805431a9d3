// `tuntap add | del | list | show`, run as a real process; iproute2 checks what it did.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { TestNet, uniqueName } from '../helpers/netns.js';
import { asUser, stageBuiltCli } from '../helpers/user.js';
import { attachAs, ip, ipJson } from './ip.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

function tuntap(args: string[]): { code: number | null; stdout: string; stderr: string } {
  return spawn([process.execPath, '--import', 'tsx', 'src/cli/main.ts', ...args]);
}

function spawn(argv: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(argv[0]!, argv.slice(1), { cwd: root, encoding: 'utf8', timeout: 30_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('tuntap CLI device management', () => {
  const net = new TestNet();
  let ns: string;
  before(() => { ns = net.namespace('nc'); });
  after(() => net.cleanup());

  test('add creates a configured persistent tap that ip sees and its owner can open; show/list/del', () => {
    const name = uniqueName('ct');
    const r = tuntap(['add', name, '--mode', 'tap', '--owner', '4242', '--group', '4343', '--multi-queue', '--vnet-hdr',
      '--address', '198.18.90.1/24', '--address', 'fd00:90::1/64', '--mtu', '1400', '--up', '--netns', ns, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const made = JSON.parse(r.stdout);
    assert.equal(made.name, name);
    assert.equal(made.mode, 'tap');
    const [j] = ipJson(ns, '-d', 'link', 'show', 'dev', name);
    const d = j.linkinfo.info_data;
    assert.deepEqual([d.type, d.pi, d.vnet_hdr, d.multi_queue, d.persist, Number(d.user), Number(d.group)],
      ['tap', false, true, true, true, 4242, 4343]);
    assert.equal(j.mtu, 1400);
    assert.ok(j.flags.includes('UP'));
    const addrs = ipJson(ns, 'addr', 'show', 'dev', name)[0].addr_info.map((a: { local: string; prefixlen: number }) => `${a.local}/${a.prefixlen}`);
    assert.ok(addrs.includes('198.18.90.1/24') && addrs.includes('fd00:90::1/64'), addrs.join(' '));
    assert.equal(attachAs(ns, 4242, 4343, name, 0x0002 | 0x1000 | 0x4000 | 0x0100), 'attached');

    const shown = JSON.parse(tuntap(['show', name, '--netns', ns, '--json']).stdout);
    assert.deepEqual([shown.owner, shown.group, shown.vnetHdr, shown.multiQueue, shown.pi, shown.persist, shown.mtu],
      [4242, 4343, true, true, false, true, 1400]);
    // (a link-local fe80:: address may have appeared once the owner attached)
    assert.deepEqual(shown.addresses.filter((a: string) => !a.startsWith('fe80:')).sort(), ['198.18.90.1/24', 'fd00:90::1/64']);

    ip(ns, 'link', 'add', `${name}v`, 'type', 'veth', 'peer', 'name', `${name}w`);
    ip(ns, 'tuntap', 'add', 'dev', `${name}i`, 'mode', 'tun', 'pi');
    const listed = JSON.parse(tuntap(['list', '--netns', ns, '--json']).stdout) as { name: string; mode: string; pi: boolean }[];
    assert.deepEqual(listed.map((v) => v.name).sort(), [name, `${name}i`].sort(), 'only tun/tap devices are listed');
    assert.equal(listed.find((v) => v.name === `${name}i`)?.pi, true);
    const table = tuntap(['list', '--netns', ns]);
    assert.match(table.stdout, /^NAME\s+MODE\s+ADMIN\s+OPER\s/);
    // Up, but no process has it open: the kernel says DOWN (no carrier), and the table says both.
    assert.match(table.stdout, new RegExp(`${name}\\s+tap\\s+up\\s+DOWN\\s`));

    assert.equal(tuntap(['del', name, '--netns', ns]).code, 0);
    assert.equal(tuntap(['del', `${name}i`, '--netns', ns]).code, 0);
    assert.equal(ipJson<{ ifname: string }[]>(ns, 'link', 'show').some((l) => l.ifname === name || l.ifname === `${name}i`), false);
  });

  test('helpful errors: existing device, wrong name, bad address, not a tun, missing privilege, no namespace', () => {
    const name = uniqueName('ce');
    assert.equal(tuntap(['add', name, '--netns', ns]).code, 0);
    const exists = tuntap(['add', name, '--netns', ns]);
    assert.equal(exists.code, 1);
    assert.match(exists.stderr, /already exists/);

    const badName = tuntap(['add', 'far-too-long-device-name', '--netns', ns]);
    assert.equal(badName.code, 2);
    assert.match(badName.stderr, /not a valid device name/);

    const other = uniqueName('cb');
    const badAddr = tuntap(['add', other, '--address', '198.18.0.300/24', '--netns', ns]);
    assert.equal(badAddr.code, 2);
    assert.match(badAddr.stderr, /"198\.18\.0\.300" is not a valid address/);
    assert.equal(ipJson<{ ifname: string }[]>(ns, 'link', 'show').some((l) => l.ifname === other), false, 'nothing was created');

    const notTun = tuntap(['show', 'lo', '--netns', ns]);
    assert.equal(notTun.code, 1);
    assert.match(notTun.stderr, /not a tun\/tap device/);
    const delNotTun = tuntap(['del', 'lo', '--netns', ns]);
    assert.equal(delNotTun.code, 1);
    assert.match(delNotTun.stderr, /not a tun\/tap device/);

    const missing = tuntap(['del', 'nosuch0', '--netns', ns]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /"nosuch0" does not exist/);

    // Run as that user from a copy it can read: the checkout may be root's alone.
    const staged = stageBuiltCli();
    try {
      const unprivileged = spawn(['ip', 'netns', 'exec', ns, ...asUser(4242, 4242, [process.execPath, staged.main, 'add', other])]);
      assert.equal(unprivileged.code, 1, unprivileged.stderr);
      assert.match(unprivileged.stderr, /CAP_NET_ADMIN/);
    } finally {
      staged.remove();
    }

    const noNs = tuntap(['list', '--netns', 'no-such-netns-q']);
    assert.equal(noNs.code, 1);
    assert.match(noNs.stderr, /no such namespace/);

    const usage = tuntap(['add']);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /usage: tuntap add NAME/);
    assert.equal(tuntap(['del', name, '--netns', ns]).code, 0);
  });
});
