// Routes over rtnetlink against `ip -j route`, both directions, IPv4 and IPv6; kernel errors;
// a dump of 10,000 routes.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { TestNet, uniqueName, sh } from '../helpers/netns.js';
import {
  addAddress, addRoute, createVeth, deleteRoute, listRoutes, NetlinkError, Netlink, replaceRoute, type Route,
} from '../../src/netlink/index.js';
import { ip, ipJson, withLength } from './ip.js';

interface IpRoute { type?: string; dst: string; gateway?: string; dev?: string; table?: string; metric?: number; scope?: string; prefsrc?: string; protocol?: string; from?: string }

// ip omits the table when it is main, or when it was the one asked for.
const tableNumber = (t: string | undefined, shown: number) => (t === undefined ? shown : t === 'main' ? 254 : t === 'local' ? 255 : Number(t));

function sameRoutes(mine: Route[], theirs: IpRoute[], family: 4 | 6, shown = 254): void {
  assert.equal(mine.length, theirs.length, `${mine.length} routes vs ip's ${theirs.length}`);
  for (const t of theirs) {
    const dst = withLength(t.dst, family);
    const m = mine.find((r) => r.dst === dst && r.table === tableNumber(t.table, shown) && r.dev === t.dev
      && (t.metric === undefined || r.metric === t.metric));
    assert.ok(m, `tuntap lists ${t.dst} table ${t.table ?? 'main'}`);
    assert.equal(m.type, t.type ?? 'unicast');
    assert.equal(m.gateway, t.gateway);
    assert.equal(m.dev, t.dev);
    assert.equal(m.prefsrc, t.prefsrc);
    assert.equal(m.protocol, t.protocol ?? 'boot');
    if (family === 4) assert.equal(m.scope, t.scope ?? 'global');
    if (t.from) assert.equal(m.src, withLength(t.from, family));
  }
}

describe('netlink routes', () => {
  const net = new TestNet();
  let ns: string;
  let dev: string;
  before(() => {
    ns = net.namespace('nr');
    dev = uniqueName('rt');
    createVeth(dev, `${dev}p`, { up: true }, { netns: ns });
    addAddress(dev, '198.18.0.1/24', { netns: ns });
    addAddress(dev, { address: 'fd00::1/64', nodad: true }, { netns: ns });
  });
  after(() => net.cleanup());

  test('what tuntap adds, ip reports identically (v4 and v6)', () => {
    using nl = Netlink.open({ netns: ns });
    const t = { netlink: nl };
    addRoute({ dst: '198.18.40.0/24', gateway: '198.18.0.2' }, t);
    addRoute({ dst: '198.18.41.0/24', gateway: '198.18.0.2', metric: 50, table: 100 }, t);
    addRoute({ dst: '198.18.42.0/24', dev, prefsrc: '198.18.0.1' }, t);
    addRoute({ dst: '198.18.43.0/24', type: 'blackhole' }, t);
    addRoute({ dst: '198.18.44.0/24', type: 'unreachable', metric: 7 }, t);
    addRoute({ dst: '198.18.45.1', dev, scope: 'host', protocol: 'static' }, t);
    addRoute({ dst: 'default', gateway: '198.18.0.2' }, t);
    addRoute({ dst: 'fd00:40::/64', gateway: 'fd00::2' }, t);
    addRoute({ dst: 'fd00:41::/64', dev, metric: 77, table: 100 }, t);
    addRoute({ dst: 'fd00:42::/64', type: 'blackhole' }, t);
    addRoute({ dst: 'fd00:43::/64', type: 'unreachable' }, t);
    addRoute({ dst: 'fd00:44::/64', src: 'fd00:99::/64', gateway: 'fd00::3' }, t);
    addRoute({ dst: 'default', gateway: 'fd00::2', family: 6 }, t);
    const v4 = ipJson<IpRoute[]>(ns, '-4', 'route', 'show', 'table', 'all').filter((r) => r.table !== 'local');
    const v6 = ipJson<IpRoute[]>(ns, '-6', 'route', 'show', 'table', 'all').filter((r) => r.table !== 'local');
    const find = (list: IpRoute[], dst: string) => list.find((r) => r.dst === dst);
    assert.equal(find(v4, '198.18.41.0/24')?.table, '100');
    assert.equal(find(v4, '198.18.41.0/24')?.metric, 50);
    assert.equal(find(v4, '198.18.42.0/24')?.prefsrc, '198.18.0.1');
    assert.equal(find(v4, '198.18.42.0/24')?.scope, 'link');
    assert.equal(find(v4, '198.18.43.0/24')?.type, 'blackhole');
    assert.equal(find(v4, '198.18.44.0/24')?.type, 'unreachable');
    assert.equal(find(v4, '198.18.45.1')?.scope, 'host');
    assert.equal(find(v4, '198.18.45.1')?.protocol, 'static');
    assert.equal(find(v4, 'default')?.gateway, '198.18.0.2');
    assert.equal(find(v6, 'fd00:40::/64')?.gateway, 'fd00::2');
    assert.equal(find(v6, 'fd00:41::/64')?.metric, 77);
    assert.equal(find(v6, 'fd00:44::/64')?.from, 'fd00:99::/64');
    assert.equal(find(v6, 'default')?.gateway, 'fd00::2');
    sameRoutes(listRoutes({ netlink: nl, family: 4, table: 'all' }).filter((r) => r.table !== 255), v4, 4);
    sameRoutes(listRoutes({ netlink: nl, family: 6, table: 'all' }).filter((r) => r.table !== 255), v6, 6);

    replaceRoute({ dst: '198.18.40.0/24', gateway: '198.18.0.3' }, t);
    assert.equal(ipJson<IpRoute[]>(ns, 'route', 'show', '198.18.40.0/24')[0]?.gateway, '198.18.0.3');
    deleteRoute({ dst: '198.18.40.0/24' }, t);
    deleteRoute({ dst: '198.18.41.0/24', table: 100, metric: 50 }, t);
    deleteRoute({ dst: 'fd00:40::/64' }, t);
    deleteRoute({ dst: 'default', family: 6 }, t);
    assert.equal(ipJson<IpRoute[]>(ns, 'route', 'show', '198.18.40.0/24').length, 0);
    assert.equal(ipJson<IpRoute[]>(ns, '-6', 'route', 'show', 'default').length, 0);
    sameRoutes(listRoutes({ netlink: nl, family: 4 }), ipJson<IpRoute[]>(ns, '-4', 'route', 'show'), 4);
  });

  test('what ip adds, tuntap lists identically', () => {
    ip(ns, 'route', 'add', '198.18.60.0/24', 'via', '198.18.0.2', 'metric', '5', 'table', '200');
    ip(ns, 'route', 'add', 'blackhole', '198.18.61.0/24', 'table', '200');
    ip(ns, 'route', 'add', '198.18.62.0/24', 'dev', dev, 'src', '198.18.0.1', 'table', '200');
    ip(ns, 'route', 'add', 'unreachable', '198.18.63.0/24', 'table', '200');
    ip(ns, '-6', 'route', 'add', 'fd00:60::/64', 'via', 'fd00::2', 'table', '200');
    ip(ns, '-6', 'route', 'add', 'blackhole', 'fd00:61::/64', 'table', '200');
    ip(ns, '-6', 'route', 'add', 'fd00:62::/64', 'dev', dev, 'metric', '9', 'table', '200');
    sameRoutes(listRoutes({ netns: ns, family: 4, table: 200 }), ipJson(ns, '-4', 'route', 'show', 'table', '200'), 4, 200);
    sameRoutes(listRoutes({ netns: ns, family: 6, table: 200 }), ipJson(ns, '-6', 'route', 'show', 'table', '200'), 6, 200);
    const onDev = listRoutes({ netns: ns, table: 200, dev });
    assert.ok(onDev.length >= 3 && onDev.every((r) => r.dev === dev));
  });

  test('kernel errors carry the kernel text', () => {
    assert.throws(() => addRoute({ dst: '198.18.70.0/24', gateway: '198.19.9.9' }, { netns: ns }),
      (e: unknown) => e instanceof NetlinkError && e.code === 'ENETUNREACH'
        && e.kernelMessage === 'Nexthop has invalid gateway' && e.message.includes('Nexthop has invalid gateway'));
    assert.throws(() => addRoute({ dst: '198.18.71.1/24', dev }, { netns: ns }),
      (e: unknown) => e instanceof NetlinkError && e.code === 'EINVAL' && /Invalid prefix/.test(e.message));
    addRoute({ dst: '198.18.72.0/24', dev }, { netns: ns });
    assert.throws(() => addRoute({ dst: '198.18.72.0/24', dev }, { netns: ns }),
      (e: unknown) => e instanceof NetlinkError && e.code === 'EEXIST');
    assert.throws(() => deleteRoute({ dst: '198.18.73.0/24' }, { netns: ns }),
      (e: unknown) => e instanceof NetlinkError && e.code === 'ESRCH');
    assert.throws(() => addRoute({ dst: '198.18.74.0/24', gateway: 'fd00::2' }, { netns: ns }), /must be IPv4/);
  });

  test('a dump of 10,000 routes completes and is parsed completely', () => {
    const lines: string[] = [];
    for (let i = 0; i < 10_000; i++) lines.push(`route add 198.19.${i >> 8}.${(i & 0xff)}/32 dev ${dev} table 300`);
    sh('ip', ['-n', ns, '-batch', '-'], { input: `${lines.join('\n')}\n` });
    const started = Date.now();
    const routes = listRoutes({ netns: ns, family: 4, table: 300 });
    const ms = Date.now() - started;
    assert.equal(routes.length, 10_000);
    const seen = new Set(routes.map((r) => r.dst));
    assert.equal(seen.size, 10_000);
    for (let i = 0; i < 10_000; i += 997) assert.ok(seen.has(`198.19.${i >> 8}.${i & 0xff}/32`));
    assert.ok(routes.every((r) => r.dev === dev && r.table === 300));
    assert.ok(ms < 5000, `dump took ${ms} ms`);
  });
});
