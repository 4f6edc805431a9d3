// Persistent TUN/TAP devices made by tuntap, checked with `ip -d -j link` and opened by a
// non-root owner; and devices made by `ip tuntap` read back with the same details.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { TestNet, uniqueName } from '../helpers/netns.js';
import { createTun, deleteTun, getLink, listLinks, NetlinkError } from '../../src/netlink/index.js';
import { attachAs, ip, ipJson } from './ip.js';

describe('netlink tun/tap', () => {
  const net = new TestNet();
  let ns: string;
  before(() => { ns = net.namespace('nt'); });
  after(() => net.cleanup());

  test('tuntap creates a persistent tap that ip sees with the same details; its owner can open it', () => {
    const name = uniqueName('tp');
    const link = createTun(name, { mode: 'tap', owner: 4242, group: 4343, vnetHdr: true, multiQueue: true }, { netns: ns });
    assert.deepEqual(link.tun, {
      type: 'tap', pi: false, vnetHdr: true, persist: true, multiQueue: true, numQueues: 0, numDisabledQueues: 0,
      owner: 4242, group: 4343,
    });
    const [j] = ipJson(ns, '-d', 'link', 'show', 'dev', name);
    const d = j.linkinfo.info_data;
    assert.equal(j.linkinfo.info_kind, 'tun');
    assert.equal(d.type, 'tap');
    assert.equal(d.pi, false);
    assert.equal(d.vnet_hdr, true);
    assert.equal(d.multi_queue, true);
    assert.equal(d.persist, true);
    assert.equal(Number(d.user), 4242);
    assert.equal(Number(d.group), 4343);
    const tapFlags = 0x0002 | 0x1000 | 0x4000 | 0x0100;  // IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_MULTI_QUEUE
    // With both owner and group set, the kernel wants both to match (tun_not_capable).
    assert.equal(attachAs(ns, 4242, 4343, name, tapFlags), 'attached');
    assert.equal(attachAs(ns, 4999, 4343, name, tapFlags), 'error 1', 'another user gets EPERM');
    assert.equal(attachAs(ns, 4242, 4999, name, tapFlags), 'error 1', 'another group gets EPERM');
    deleteTun(name, { netns: ns });
    assert.equal(ipJson<any[]>(ns, 'link', 'show').some((l) => l.ifname === name), false);
  });

  test('a tun with packet info and no owner; listing filters tun/tap devices', () => {
    const name = uniqueName('tn');
    createTun(name, { mode: 'tun', pi: true }, { netns: ns });
    const [j] = ipJson(ns, '-d', 'link', 'show', 'dev', name);
    assert.equal(j.linkinfo.info_data.type, 'tun');
    assert.equal(j.linkinfo.info_data.pi, true);
    assert.equal(j.linkinfo.info_data.multi_queue, false);
    assert.equal(j.linkinfo.info_data.user, undefined);
    const tuns = listLinks({ netns: ns, kind: 'tun' });
    assert.ok(tuns.some((l) => l.name === name && l.tun?.pi === true && l.tun.owner === undefined));
    assert.ok(tuns.every((l) => l.kind === 'tun'));
    deleteTun(name, { netns: ns });
  });

  test('devices made by ip tuntap are read back with the same details', () => {
    const name = uniqueName('it');
    ip(ns, 'tuntap', 'add', 'dev', name, 'mode', 'tap', 'user', '4242', 'group', '4343', 'multi_queue', 'vnet_hdr');
    const link = getLink(name, { netns: ns });
    const d = ipJson(ns, '-d', 'link', 'show', 'dev', name)[0].linkinfo.info_data;
    assert.equal(link.tun?.type, d.type);
    assert.equal(link.tun?.pi, d.pi);
    assert.equal(link.tun?.vnetHdr, d.vnet_hdr);
    assert.equal(link.tun?.multiQueue, d.multi_queue);
    assert.equal(link.tun?.persist, d.persist);
    assert.equal(link.tun?.numQueues, d.numqueues);
    assert.equal(link.tun?.numDisabledQueues, d.numdisabled);
    assert.equal(link.tun?.owner, Number(d.user));
    assert.equal(link.tun?.group, Number(d.group));
    ip(ns, 'tuntap', 'del', 'dev', name, 'mode', 'tap', 'multi_queue');
  });

  test('errors: existing device, wrong name, deleting a non-tun device', () => {
    const name = uniqueName('te');
    createTun(name, {}, { netns: ns });
    assert.throws(() => createTun(name, {}, { netns: ns }),
      (e: unknown) => e instanceof NetlinkError && e.code === 'EEXIST' && /already exists/.test(e.message));
    assert.throws(() => createTun('bad/name', {}, { netns: ns }), /not a valid device name/);
    assert.throws(() => deleteTun('lo', { netns: ns }), /not a tun\/tap device/);
    deleteTun(name, { netns: ns });
  });
});
