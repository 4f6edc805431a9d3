// Policy rules over rtnetlink against `ip -j rule`, both directions, IPv4 and IPv6.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { TestNet } from '../helpers/netns.js';
import { addRule, deleteRule, listRules, NetlinkError, type Rule } from '../../src/netlink/index.js';
import { ip, ipJson } from './ip.js';

interface IpRule { priority: number; src: string; srclen?: number; dst?: string; dstlen?: number; table?: string; fwmark?: string; fwmask?: string; not?: null; action?: string; iif?: string; oif?: string }

const tableNumber = (t: string | undefined) => (t === 'main' ? 254 : t === 'local' ? 255 : t === 'default' ? 253 : t === undefined ? undefined : Number(t));

function sameRules(mine: Rule[], theirs: IpRule[]): void {
  assert.equal(mine.length, theirs.length);
  theirs.forEach((t, i) => {
    const m = mine[i]!;  // both list in priority order
    assert.equal(m.priority, t.priority);
    assert.equal(m.table, tableNumber(t.table));
    assert.equal(m.from, t.src === 'all' ? undefined : `${t.src}/${t.srclen ?? (t.src.includes(':') ? 128 : 32)}`);
    assert.equal(m.to, t.dst === undefined ? undefined : `${t.dst}/${t.dstlen ?? (t.dst.includes(':') ? 128 : 32)}`);
    assert.equal(m.fwmark, t.fwmark === undefined ? undefined : Number(t.fwmark));
    if (t.fwmask !== undefined) assert.equal(m.fwmask, Number(t.fwmask));
    assert.equal(m.invert, 'not' in t);
    assert.equal(m.iif, t.iif);
    assert.equal(m.oif, t.oif);
    if (t.action) assert.equal(m.action, t.action);
  });
}

describe('netlink rules', () => {
  const net = new TestNet();
  let ns: string;
  before(() => { ns = net.namespace('nu'); });
  after(() => net.cleanup());

  test('what tuntap adds, ip reports identically (v4 and v6)', () => {
    const t = { netns: ns };
    addRule({ priority: 100, fwmark: 0x1, fwmask: 0xff, table: 100 }, t);
    addRule({ priority: 101, from: '198.18.0.0/16', to: '198.18.5.0/24', table: 101 }, t);
    addRule({ priority: 102, iif: 'lo', invert: true, table: 102 }, t);
    addRule({ priority: 103, to: '198.18.9.0/24', action: 'blackhole' }, t);
    addRule({ priority: 100, fwmark: 7, table: 100, family: 6 }, t);
    addRule({ priority: 101, from: 'fd00::/8', table: 101 }, t);
    const v4 = ipJson<IpRule[]>(ns, '-4', 'rule', 'show');
    const r100 = v4.find((r) => r.priority === 100)!;
    assert.equal(r100.fwmark, '0x1');
    assert.equal(r100.fwmask, '0xff');
    assert.equal(r100.table, '100');
    const r101 = v4.find((r) => r.priority === 101)!;
    assert.deepEqual([r101.src, r101.srclen, r101.dst, r101.dstlen], ['198.18.0.0', 16, '198.18.5.0', 24]);
    assert.ok('not' in v4.find((r) => r.priority === 102)!);
    assert.equal(v4.find((r) => r.priority === 103)?.action, 'blackhole');
    const v6 = ipJson<IpRule[]>(ns, '-6', 'rule', 'show');
    assert.equal(v6.find((r) => r.priority === 101)?.src, 'fd00::');
    sameRules(listRules({ netns: ns, family: 4 }), v4);
    sameRules(listRules({ netns: ns, family: 6 }), v6);
    deleteRule({ priority: 100, fwmark: 0x1, fwmask: 0xff, table: 100 }, t);
    deleteRule({ priority: 101, family: 6 }, t);
    assert.equal(ipJson<IpRule[]>(ns, '-4', 'rule', 'show').some((r) => r.priority === 100), false);
    assert.equal(ipJson<IpRule[]>(ns, '-6', 'rule', 'show').some((r) => r.priority === 101), false);
    assert.throws(() => deleteRule({ priority: 4242 }, t), (e: unknown) => e instanceof NetlinkError && e.code === 'ENOENT');
    assert.throws(() => addRule({ priority: 102, iif: 'lo', invert: true, table: 102 }, t),
      (e: unknown) => e instanceof NetlinkError && e.code === 'EEXIST');
  });

  test('what ip adds, tuntap lists identically', () => {
    ip(ns, 'rule', 'add', 'pref', '200', 'from', '198.18.20.0/24', 'to', '198.18.21.0/24', 'lookup', '200');
    ip(ns, 'rule', 'add', 'pref', '201', 'fwmark', '0x10/0xf0', 'lookup', '201');
    ip(ns, 'rule', 'add', 'pref', '202', 'not', 'from', '198.18.22.0/24', 'oif', 'lo', 'lookup', '202');
    ip(ns, 'rule', 'add', 'pref', '203', 'from', '198.18.23.0/24', 'unreachable');
    ip(ns, '-6', 'rule', 'add', 'pref', '200', 'from', 'fd00:20::/48', 'lookup', '200');
    ip(ns, '-6', 'rule', 'add', 'pref', '201', 'fwmark', '0x3', 'prohibit');
    sameRules(listRules({ netns: ns, family: 4 }), ipJson(ns, '-4', 'rule', 'show'));
    sameRules(listRules({ netns: ns, family: 6 }), ipJson(ns, '-6', 'rule', 'show'));
    const all = listRules({ netns: ns });
    assert.ok(all.some((r) => r.family === 4) && all.some((r) => r.family === 6));
  });
});
