// `tuntap bridge --metrics`: two TAPs moved into two hosts with static neighbours (no ARP) and
// no IPv6 (no neighbour discovery), so the only frames are the pings: every per-port counter
// moves by exactly their number and size.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { TestNet, nsExec, nsRun, uniqueName } from '../helpers/netns.js';
import { sleep } from '../helpers/wait.js';
import { moveLink } from '../../src/netlink/index.js';
import { macOf } from '../l2/helpers.js';
import { assertPromtoolAccepts, parseExposition, scrape, startTuntap, value } from './helpers.js';

const net = new TestNet();
after(() => net.cleanup());

test('per-port frames, bytes, floods and drops, and the MAC table, moving by exactly the pings', async () => {
  const sw = net.namespace('obs');
  const hosts = [net.namespace('obh'), net.namespace('obh')] as const;
  const taps = [uniqueName('oba'), uniqueName('obb')] as const;
  const addrs = ['198.18.74.1', '198.18.74.2'] as const;
  const bridge = await startTuntap(sw, ['bridge', ...taps, '--metrics', '9100'], { ready: 'bridging' });
  try {
    for (const i of [0, 1] as const) {
      moveLink(taps[i], hosts[i], { netns: sw });
      nsExec(hosts[i], 'sysctl', '-qw', `net.ipv6.conf.${taps[i]}.disable_ipv6=1`);
      net.configure(hosts[i], taps[i], { up: true, addresses: [`${addrs[i]}/24`] });
    }
    for (const i of [0, 1] as const) {
      nsExec(hosts[i], 'ip', 'neigh', 'replace', addrs[1 - i]!, 'lladdr', macOf(hosts[1 - i]!, taps[1 - i]!), 'dev', taps[i], 'nud', 'permanent');
    }
    await sleep(1100);
    const before = parseExposition(scrape(sw, 9100));
    const n = 10;
    const r = await nsRun(hosts[0], 'ping', ['-c', String(n), '-i', '0.05', '-s', '1000', addrs[1]]);
    assert.match(r.stdout, new RegExp(`${n} packets transmitted, ${n} received`), r.stdout);
    await sleep(1100);
    const text = scrape(sw, 9100);
    assertPromtoolAccepts(text, 'bridge');
    const after = parseExposition(text);
    const moved = (name: string, labels: Record<string, string>) => value(after, name, labels) - value(before, name, labels);
    // An echo request or reply of 1000 bytes: 1000 + 8 (ICMP) + 20 (IPv4) + 14 (Ethernet).
    const frame = 1042;
    for (const port of taps) {
      for (const direction of ['rx', 'tx']) {
        assert.equal(moved('tuntap_bridge_frames_total', { port, direction }), n, `${port} ${direction}`);
        assert.equal(moved('tuntap_bridge_bytes_total', { port, direction }), n * frame, `${port} ${direction}`);
        assert.equal(moved('tuntap_bridge_dropped_frames_total', { port, direction }), 0);
      }
    }
    // At most the first request went to a MAC not learned yet (flooded); the rest were switched.
    assert.ok(moved('tuntap_bridge_flooded_frames_total', { port: taps[0] }) <= 1);
    assert.equal(moved('tuntap_bridge_flooded_frames_total', { port: taps[1] }), 0);
    assert.equal(moved('tuntap_bridge_filtered_frames_total', { port: taps[0] }), 0);
    assert.equal(value(after, 'tuntap_bridge_fdb_entries'), 2);
    assert.equal(value(after, 'tuntap_bridge_fdb_refused_total'), 0);
  } finally {
    assert.equal(await bridge.stop(), 0, bridge.stderr());
  }
});
