// 802.1Q between two of our switches over a VXLAN trunk (real kernel hosts, TAPs and UDP):
//   hostA (VLAN 10) ─┐                                ┌─ hostB (VLAN 10)
//                    ├ switch 1 ═ VXLAN trunk 10,20 ═ switch 2 ┤
//   hostC (VLAN 20) ─┘        (underlay veth, MTU 1600)  └─ hostD (VLAN 20)
// All four hosts share one subnet, so only the VLANs keep A/B apart from C/D. TCP super-packets
// from the TAPs get tagged, cut to wire size (behind the tag) for the tunnel and untagged again.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TestNet, nsRun } from '../helpers/netns.js';
import { LearningSwitch } from '../../src/l2/switch.js';
import { VxlanPort } from '../../src/l2/vxlan.js';
import { iperf, macOf, tapIntoHost } from './helpers.js';
import type { TapPort } from '../../src/l2/tap-port.js';

describe('802.1Q access ports and a VXLAN trunk between two switches', () => {
  const net = new TestNet();
  const switches: LearningSwitch[] = [];
  let hostA: string; let hostB: string; let hostC: string; let hostD: string;
  let tapB: TapPort; let trunk1: VxlanPort;

  before(async () => {
    const s1 = net.namespace('l2q1'); const s2 = net.namespace('l2q2');
    hostA = net.namespace('l2qa'); hostB = net.namespace('l2qb'); hostC = net.namespace('l2qc'); hostD = net.namespace('l2qd');
    const ul = net.veth(s1, s2, { mtu: 1600 });
    net.configure(s1, ul.a, { addresses: ['198.18.72.1/24'] });
    net.configure(s2, ul.b, { addresses: ['198.18.72.2/24'] });
    const plan = [
      { ns: s1, local: '198.18.72.1', remote: '198.18.72.2', hosts: [[hostA, '198.18.70.1', 10], [hostC, '198.18.70.3', 20]] },
      { ns: s2, local: '198.18.72.2', remote: '198.18.72.1', hosts: [[hostB, '198.18.70.2', 10], [hostD, '198.18.70.4', 20]] },
    ] as const;
    for (const side of plan) {
      const sw = new LearningSwitch();
      switches.push(sw);
      for (const [host, addr, vid] of side.hosts) {
        const tap = tapIntoHost(side.ns, host, addr, `fd00:70::${addr.split('.')[3]}`);
        if (host === hostB) tapB = tap;
        sw.addPort(tap, { vlan: { mode: 'access', pvid: vid } });
      }
      const vx = await VxlanPort.open({ vni: 70, local: side.local, remotes: [side.remote], netns: side.ns });
      if (side.ns === s1) trunk1 = vx;
      sw.addPort(vx, { vlan: { mode: 'trunk', allowed: [10, 20] } });
    }
  });
  after(async () => {
    for (const sw of switches) await sw.close();
    net.cleanup();
  });

  it('connects each VLAN end to end and keeps the VLANs apart', async () => {
    for (const [from, to] of [[hostA, '198.18.70.2'], [hostC, '198.18.70.4']] as const) {
      const r = await nsRun(from, 'ping', ['-c', '2', '-i', '0.2', '-W', '2', to]);
      assert.equal(r.code, 0, `${to}: ${r.stdout}${r.stderr}`);
    }
    for (const target of ['198.18.70.3', '198.18.70.4']) {
      const r = await nsRun(hostA, 'ping', ['-c', '1', '-W', '1', target]);
      assert.notEqual(r.code, 0, `${target} (VLAN 20) must be unreachable from VLAN 10`);
    }
    const row = switches[0]!.macTable().find((r) => r.mac === macOf(hostB, tapB.name));
    assert.deepEqual([row?.vlan, row?.port], [10, trunk1.name], 'B learned on VLAN 10 behind the trunk');
  });

  it('carries iperf3 TCP across the tagged trunk both ways', async (t) => {
    const ab = await iperf(hostB, hostA, '198.18.70.2');
    const ba = await iperf(hostA, hostB, '198.18.70.1');
    t.diagnostic(`A→B ${(ab / 1e6).toFixed(0)} Mbit/s, B→A ${(ba / 1e6).toFixed(0)} Mbit/s`);
    assert.ok(ab > 20e6 && ba > 20e6);
    for (const sw of switches) {
      for (const s of Object.values(sw.stats())) assert.equal(s.txDrops, 0, JSON.stringify(sw.stats()));
    }
  });
});
