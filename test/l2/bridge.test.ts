// Two hosts (namespaces), each behind a TAP whose fd our switch holds in a third namespace: the
// TAP netdevs are moved into the host namespaces (the fd keeps working across the move). ARP,
// ping v4/v6 and iperf3 go through the switch; the MAC table learns both hosts and ages them out.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TestNet, nsExec, nsRun } from '../helpers/netns.js';
import { iperf, macOf, tapIntoHost } from './helpers.js';
import { LearningSwitch } from '../../src/l2/switch.js';
import type { TapPort } from '../../src/l2/tap-port.js';
import { setLink } from '../../src/netlink/index.js';

const A4 = '198.18.20.1'; const B4 = '198.18.20.2';
const A6 = 'fd00:20::1'; const B6 = 'fd00:20::2';

describe('learning switch between two TAP-attached namespaces', () => {
  const net = new TestNet();
  let sw: string; let hostA: string; let hostB: string;
  let bridge: LearningSwitch;
  let tapA: TapPort; let tapB: TapPort;

  before(() => {
    sw = net.namespace('l2sw');
    hostA = net.namespace('l2a');
    hostB = net.namespace('l2b');
    tapA = tapIntoHost(sw, hostA, A4, A6);
    tapB = tapIntoHost(sw, hostB, B4, B6);
    bridge = new LearningSwitch({ ageSeconds: 300 });
    bridge.addPort(tapA);
    bridge.addPort(tapB);
  });
  after(async () => {
    await bridge?.close();
    net.cleanup();
  });

  it('resolves ARP and answers ping over IPv4', async () => {
    const r = await nsRun(hostA, 'ping', ['-c', '3', '-i', '0.2', '-W', '2', B4]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /3 received/);
    const neigh = nsExec(hostA, 'ip', 'neigh', 'show', B4);
    assert.ok(neigh.includes(macOf(hostB, tapB.name)), `ARP entry carries B's MAC: ${neigh}`);
  });

  it('answers ping over IPv6 (neighbour discovery through multicast flooding)', async () => {
    const r = await nsRun(hostA, 'ping', ['-6', '-c', '3', '-i', '0.2', '-W', '2', B6]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /3 received/);
  });

  it('carries iperf3 TCP both ways', async (t) => {
    const ab = await iperf(hostB, hostA, B4);
    const ba = await iperf(hostA, hostB, A4);
    t.diagnostic(`A→B ${(ab / 1e6).toFixed(0)} Mbit/s, B→A ${(ba / 1e6).toFixed(0)} Mbit/s`);
    assert.ok(ab > 50e6, `A→B ${ab / 1e6} Mbit/s`);
    assert.ok(ba > 50e6, `B→A ${ba / 1e6} Mbit/s`);
    const st = bridge.stats();
    assert.ok(st[tapA.name]!.rxBytes > 1e6 && st[tapB.name]!.txBytes > 1e6, JSON.stringify(st));
    assert.ok(st[tapA.name]!.floods > 0, 'ARP requests were flooded');
  });

  it('learned both hosts behind the right ports, then ages them out', async () => {
    const table = bridge.macTable();
    const portOf = (mac: string) => table.find((r) => r.mac === mac)?.port;
    const macA = macOf(hostA, tapA.name); const macB = macOf(hostB, tapB.name);
    assert.equal(portOf(macA), tapA.name);
    assert.equal(portOf(macB), tapB.name);
    bridge.ageSeconds = 1;
    // Hosts go quiet after the traffic above; allow for a stray IPv6 report re-learning a MAC.
    const deadline = Date.now() + 8000;
    while (bridge.macTable().some((r) => r.mac === macA || r.mac === macB) && Date.now() < deadline) {
      await new Promise((res) => setTimeout(res, 200));
    }
    assert.deepEqual(bridge.macTable().filter((r) => r.mac === macA || r.mac === macB), []);
    // Traffic teaches the switch again.
    bridge.ageSeconds = 300;
    const r = await nsRun(hostA, 'ping', ['-c', '1', '-W', '2', B4]);
    assert.equal(r.code, 0);
    assert.equal(bridge.macTable().find((x) => x.mac === macA)?.port, tapA.name);
  });

  it('keeps a port whose interface is down, dropping (and counting) what was for it', async () => {
    setLink(tapB.name, { up: false }, { netns: hostB });
    const before = bridge.stats()[tapB.name]!.txDrops;
    await nsRun(hostA, 'ping', ['-c', '2', '-i', '0.2', '-W', '1', '198.18.20.99']); // ARP floods reach B
    assert.ok(bridge.stats()[tapB.name]!.txDrops > before, JSON.stringify(bridge.stats()));
    setLink(tapB.name, { up: true }, { netns: hostB });
    const r = await nsRun(hostA, 'ping', ['-c', '2', '-i', '0.2', '-W', '2', B4]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
  });
});
