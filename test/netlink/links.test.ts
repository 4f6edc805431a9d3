// Links over rtnetlink, checked against `ip -j link` in both directions, inside test namespaces.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { TestNet, nsSpawn, uniqueName } from '../helpers/netns.js';
import { openNetns, closeNetns } from '../../src/netns.js';
import {
  createVeth, setLink, getLink, findLink, listLinks, deleteLink, moveLink, NetlinkError, Netlink,
} from '../../src/netlink/index.js';
import { ip, ipJson } from './ip.js';
import { TuntapError } from '../../src/errors.js';

describe('netlink links', () => {
  const net = new TestNet();
  let ns: string;
  let ns2: string;
  before(() => { ns = net.namespace('nl'); ns2 = net.namespace('nl'); });
  after(() => net.cleanup());

  function compareWithIp(name: string, inNs: string): void {
    const [j] = ipJson(inNs, '-s', '-d', 'link', 'show', 'dev', name);
    const mine = getLink(name, { netns: inNs });
    assert.equal(mine.index, j.ifindex);
    assert.equal(mine.name, j.ifname);
    assert.equal(mine.mtu, j.mtu);
    assert.equal(mine.txqueuelen, j.txqlen);
    assert.equal(mine.address, j.address);
    assert.equal(mine.operState, j.operstate);
    assert.equal(mine.kind, j.linkinfo?.info_kind);
    assert.equal(mine.minMtu, j.min_mtu);
    assert.equal(mine.maxMtu, j.max_mtu);
    assert.deepEqual(new Set(mine.flagNames), new Set(j.flags.filter((f: string) => f !== 'NO-CARRIER')));
    // Counters move while we look (IPv6 sends solicitations on a new link): ours, read between
    // two readings by ip, must lie between them.
    const [later] = ipJson(inNs, '-s', 'link', 'show', 'dev', name);
    for (const [mineValue, before, after] of [
      [mine.stats!.rxPackets, j.stats64.rx.packets, later.stats64.rx.packets],
      [mine.stats!.txPackets, j.stats64.tx.packets, later.stats64.tx.packets],
      [mine.stats!.rxBytes, j.stats64.rx.bytes, later.stats64.rx.bytes],
      [mine.stats!.txBytes, j.stats64.tx.bytes, later.stats64.tx.bytes],
      [mine.stats!.rxDropped, j.stats64.rx.dropped, later.stats64.rx.dropped],
    ] as const) {
      assert.ok(before <= mineValue && mineValue <= after, `counter ${mineValue} outside [${before}, ${after}]`);
    }
  }

  test('a veth pair made by tuntap (peer in another namespace) is what ip reports', () => {
    const a = uniqueName('na');
    const b = uniqueName('nb');
    createVeth(a, b, { peerNetns: ns2, mtu: 1400, up: true }, { netns: ns });
    setLink(a, { address: '02:00:00:00:aa:01', txqueuelen: 321 }, { netns: ns });
    compareWithIp(a, ns);
    compareWithIp(b, ns2);
    const [ja] = ipJson(ns, 'link', 'show', 'dev', a);
    assert.equal(ja.address, '02:00:00:00:aa:01');
    assert.equal(ja.txqlen, 321);
    assert.ok(ja.flags.includes('UP'));
    const [jb] = ipJson(ns2, 'link', 'show', 'dev', b);
    assert.equal(jb.mtu, 1400);
    assert.ok(jb.flags.includes('UP'));
    // the whole dump agrees with ip's on names and indexes
    const dump = listLinks({ netns: ns }).map((l) => [l.index, l.name]);
    const ipDump = ipJson<any[]>(ns, 'link', 'show').map((l) => [l.ifindex, l.ifname]);
    assert.deepEqual(dump, ipDump);
  });

  test('links made and changed by ip are listed identically', () => {
    const a = uniqueName('ia');
    const b = uniqueName('ib');
    ip(ns, 'link', 'add', a, 'type', 'veth', 'peer', 'name', b);
    ip(ns, 'link', 'set', a, 'mtu', '1280', 'address', '02:00:00:00:bb:02', 'txqueuelen', '77', 'up');
    ip(ns, 'link', 'set', b, 'up');
    compareWithIp(a, ns);
    compareWithIp(b, ns);
    const link = getLink(a, { netns: ns });
    assert.equal(link.mtu, 1280);
    assert.equal(link.up, true);
    assert.equal(link.kind, 'veth');
    assert.equal(link.link, getLink(b, { netns: ns }).index);
    ip(ns, 'link', 'set', a, 'down');
    assert.equal(getLink(a, { netns: ns }).up, false);
  });

  test('set down, rename, MTU and delete, seen by ip', () => {
    const a = uniqueName('ra');
    const b = uniqueName('rb');
    using nl = Netlink.open({ netns: ns });
    createVeth(a, b, { up: true }, { netlink: nl });
    setLink(a, { up: false }, { netlink: nl });
    assert.ok(!ipJson(ns, 'link', 'show', 'dev', a)[0].flags.includes('UP'));
    const renamed = uniqueName('rn');
    setLink(a, { name: renamed, mtu: 9000 }, { netlink: nl });
    assert.equal(ipJson(ns, 'link', 'show', 'dev', renamed)[0].mtu, 9000);
    assert.equal(findLink(a, { netlink: nl }), undefined);
    deleteLink(renamed, { netlink: nl });
    assert.throws(() => ip(ns, 'link', 'show', 'dev', b), /does not exist/);  // the peer went with it
  });

  test('moves a link into another namespace by name, fd and pid', async () => {
    const names = [uniqueName('ma'), uniqueName('mb'), uniqueName('mc')];
    for (const n of names) createVeth(n, `${n}p`, {}, { netns: ns });
    moveLink(names[0]!, ns2, { netns: ns });
    const fd = openNetns(ns2);
    try { moveLink(names[1]!, { fd }, { netns: ns }); } finally { closeNetns(fd); }
    const sleeper = nsSpawn(ns2, 'sleep', ['30']);
    // Use the pid only once it is inside ns2: before its setns it is still in the root namespace.
    const target = statSync(`/run/netns/${ns2}`).ino;
    for (let i = 0; i < 200; i++) {
      try { if (sleeper.pid && statSync(`/proc/${sleeper.pid}/ns/net`).ino === target) break; } catch { /* not yet */ }
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.equal(statSync(`/proc/${sleeper.pid}/ns/net`).ino, target);
    try { moveLink(names[2]!, sleeper.pid!, { netns: ns }); } finally { sleeper.kill('SIGKILL'); }
    const there = new Set(ipJson<any[]>(ns2, 'link', 'show').map((l) => l.ifname));
    const here = new Set(ipJson<any[]>(ns, 'link', 'show').map((l) => l.ifname));
    for (const n of names) {
      assert.ok(there.has(n), `${n} arrived`);
      assert.ok(!here.has(n), `${n} left`);
    }
  });

  test('errors: bad name, missing device, existing device, kernel text', () => {
    // Names are checked as the kernel checks them (IFNAMSIZ: 15 bytes and its NUL) before any request.
    for (const bad of ['this-name-is-far-too-long', 'a'.repeat(16), 'ab/c', 'a b', '..']) {
      assert.throws(() => getLink(bad, { netns: ns }), (e: unknown) => e instanceof TuntapError && !(e instanceof NetlinkError)
        && e.syscall === 'dev_valid_name' && e.code === 'EINVAL' && /not a valid device name/.test(e.message), JSON.stringify(bad));
    }
    // A kernel error names the request it answered, its errno and the device.
    assert.throws(() => getLink('a'.repeat(15), { netns: ns }),
      (e: unknown) => e instanceof NetlinkError && e.code === 'ENODEV' && e.syscall === 'netlink(RTM_GETLINK)');
    assert.throws(() => getLink('nosuchdev0', { netns: ns }),
      (e: unknown) => e instanceof NetlinkError && e.code === 'ENODEV' && e.syscall === 'netlink(RTM_GETLINK)'
        && /nosuchdev0.*\(netlink\(RTM_GETLINK\): ENODEV\)$/.test(e.message));
    const a = uniqueName('ea');
    createVeth(a, `${a}p`, {}, { netns: ns });
    assert.throws(() => createVeth(a, `${a}q`, {}, { netns: ns }),
      (e: unknown) => e instanceof NetlinkError && e.code === 'EEXIST' && e.syscall === 'netlink(RTM_NEWLINK)');
    assert.throws(() => setLink(a, { mtu: 10 }, { netns: ns }),
      (e: unknown) => e instanceof NetlinkError && e.code === 'EINVAL' && /mtu less than device minimum/.test(e.message)
        && e.kernelMessage === 'mtu less than device minimum');
    assert.throws(() => listLinks({ netns: 'no-such-netns-x' }), /no such namespace/);
  });
});
