// Addresses over rtnetlink against `ip -j addr`, both directions, IPv4 and IPv6.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { TestNet, uniqueName } from '../helpers/netns.js';
import { addAddress, createVeth, deleteAddress, listAddresses, NetlinkError, Netlink } from '../../src/netlink/index.js';
import { ip, ipJson } from './ip.js';

interface IpAddr { family: string; local: string; prefixlen: number; address?: string; broadcast?: string; label?: string; scope: string; nodad?: boolean; noprefixroute?: boolean }

function ipAddrs(ns: string, dev: string): IpAddr[] {
  return ipJson(ns, 'addr', 'show', 'dev', dev)[0].addr_info;
}

describe('netlink addresses', () => {
  const net = new TestNet();
  let ns: string;
  let dev: string;
  before(() => {
    ns = net.namespace('na');
    dev = uniqueName('ad');
    createVeth(dev, `${dev}p`, { up: true }, { netns: ns });
  });
  after(() => net.cleanup());

  function sameAsIp(): void {
    const theirs = ipAddrs(ns, dev);
    const mine = listAddresses({ netns: ns, dev });
    assert.equal(mine.length, theirs.length);
    for (const t of theirs) {
      const m = mine.find((a) => a.address === t.local && a.prefixLength === t.prefixlen);
      assert.ok(m, `tuntap lists ${t.local}/${t.prefixlen}`);
      assert.equal(m.family, t.family === 'inet' ? 4 : 6);
      assert.equal(m.peer, t.address);
      assert.equal(m.broadcast, t.broadcast);
      assert.equal(m.scope, t.scope);
      assert.equal(m.dev, dev);
      if (t.family === 'inet') assert.equal(m.label, t.label);
      assert.equal(m.flags.includes('nodad'), t.nodad === true);
      assert.equal(m.flags.includes('noprefixroute'), t.noprefixroute === true);
    }
  }

  test('what tuntap adds, ip reports identically (v4 and v6, peer, broadcast, label, flags)', () => {
    using nl = Netlink.open({ netns: ns });
    const t = { netlink: nl };
    addAddress(dev, '198.18.10.1/24', t);
    addAddress(dev, { address: '198.18.11.1', peer: '198.18.11.2/32' }, t);
    addAddress(dev, { address: '198.18.12.1/24', broadcast: true, label: `${dev}:x`.slice(0, 15) }, t);
    addAddress(dev, { address: 'fd00:10::1/64', nodad: true }, t);
    addAddress(dev, { address: '198.18.13.1/24', scope: 'link' }, t);
    addAddress(dev, { address: 'fd00:11::1/64', nodad: true, noprefixroute: true }, t);
    const theirs = ipAddrs(ns, dev);
    const find = (local: string) => theirs.find((a) => a.local === local);
    assert.equal(find('198.18.10.1')?.prefixlen, 24);
    assert.equal(find('198.18.11.1')?.address, '198.18.11.2');
    assert.equal(find('198.18.11.1')?.prefixlen, 32);
    assert.equal(find('198.18.12.1')?.broadcast, '198.18.12.255');
    assert.equal(find('fd00:10::1')?.nodad, true);
    assert.equal(find('198.18.13.1')?.scope, 'link');
    assert.equal(find('fd00:11::1')?.noprefixroute, true);
    sameAsIp();
    deleteAddress(dev, '198.18.10.1/24', t);
    deleteAddress(dev, 'fd00:10::1/64', t);
    deleteAddress(dev, { address: '198.18.11.1', peer: '198.18.11.2/32' }, t);
    const left = ipAddrs(ns, dev).map((a) => a.local);
    assert.ok(!left.includes('198.18.10.1') && !left.includes('fd00:10::1') && !left.includes('198.18.11.1'));
    sameAsIp();
  });

  test('what ip adds, tuntap lists identically', () => {
    ip(ns, 'addr', 'add', '198.18.20.1/28', 'brd', '+', 'dev', dev);
    ip(ns, 'addr', 'add', '198.18.21.1', 'peer', '198.18.21.9/32', 'dev', dev);
    ip(ns, 'addr', 'add', 'fd00:20::5/80', 'dev', dev, 'nodad');
    ip(ns, 'addr', 'add', 'fd00:21::5/64', 'peer', 'fd00:21::9', 'dev', dev, 'nodad');
    sameAsIp();
    const mine = listAddresses({ netns: ns, dev, family: 6 });
    assert.ok(mine.every((a) => a.family === 6));
    const p2p = mine.find((a) => a.address === 'fd00:21::5');
    assert.equal(p2p?.peer, 'fd00:21::9');
    assert.equal(listAddresses({ netns: ns, dev, family: 4 }).find((a) => a.address === '198.18.20.1')?.broadcast, '198.18.20.15');
  });

  test('errors carry the kernel text; bad addresses are refused before the kernel', () => {
    assert.throws(() => addAddress(987654, '198.18.30.1/24', { netns: ns }),
      (e: unknown) => e instanceof NetlinkError && e.code === 'ENODEV' && e.kernelMessage === 'ipv4: Device not found'
        && e.message.includes('ipv4: Device not found'));
    addAddress(dev, '198.18.31.1/24', { netns: ns });
    assert.throws(() => addAddress(dev, '198.18.31.1/24', { netns: ns }),
      (e: unknown) => e instanceof NetlinkError && e.code === 'EEXIST' && /already assigned/.test(e.message));
    addAddress(dev, '198.18.31.1/24', { netns: ns, replace: true });  // replace is idempotent
    assert.throws(() => deleteAddress(dev, '198.18.99.1/24', { netns: ns }), (e: unknown) => e instanceof NetlinkError);
    assert.throws(() => addAddress(dev, '198.18.0.300/24', { netns: ns }), /not a valid address/);
    assert.throws(() => addAddress(dev, 'fd00::1/129', { netns: ns }), /prefix length/);
    assert.throws(() => addAddress(dev, { address: '198.18.32.1/24', scope: 'galaxy' as 'link' }, { netns: ns }),
      /unknown scope "galaxy"/);
    assert.throws(() => addAddress('nosuch0', '198.18.1.1/24', { netns: ns }), /"nosuch0" does not exist/);
  });
});
