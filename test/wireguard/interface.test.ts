// A WireGuardInterface that loses its UDP socket closes and says why, instead of staying up deaf;
// its TUN queue splits and coalesces TCP super-packets for it, and it runs without offload too.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { WireGuardInterface } from '../../src/wireguard/interface.js';
import { generatePrivateKey } from '../../src/wireguard/crypto.js';
import type { UdpSocket } from '../../src/net/udp.js';
import { TestNet, uniqueName } from '../helpers/netns.js';
import { WgTopology, ping, iperf } from './topology.js';

const net = new TestNet();
after(() => net.cleanup());

test('when its UDP receive loop ends under it, the interface closes and reports the reason; a rebind does not count', async () => {
  const iface = await WireGuardInterface.open({ name: uniqueName('wgi'), netns: net.namespace('wgi'), privateKey: generatePrivateKey(), uapi: false });
  try {
    // A rebind replaces the sockets: their loops end, the interface stays up.
    iface.setListenPort(0);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(iface.failure, undefined);
    // The kernel does not fail an unconnected UDP socket's receive from outside (an ICMP error
    // is counted, not raised), so the loop is ended here by closing the socket under the
    // interface: whatever ends it, the interface must not go on deaf.
    const port = iface.listenPort;
    await (iface as unknown as { udp4: UdpSocket }).udp4.close();
    const closed = await Promise.race([iface.closed.then(() => true), new Promise((r) => setTimeout(() => r(false), 5000))]);
    assert.ok(closed, 'the interface closed');
    assert.equal((iface.failure as Error | undefined)?.message, `the UDP socket on port ${port} closed`);
  } finally {
    await iface.close();
  }
});

// The TUN's queue does the offload work (offload 'split'): TCP through the tunnel reaches the
// interface as super-packets the queue splits, and what it delivers is merged into super-packets
// again on the way into the kernel. Without offload the same tunnel carries the same traffic.
for (const offload of [true, false]) {
  test(`iperf3 both ways through two interfaces ${offload ? 'with offload: the TUN queue splits and coalesces' : 'without offload'}`, async () => {
    const topo = new WgTopology(offload ? 31 : 32);
    try {
      const a = topo.side(1);
      const b = topo.side(2);
      topo.link(a, b);
      const wa = await topo.tuntap(a, [{ side: b, endpoint: 4 }], undefined, { offload });
      const wb = await topo.tuntap(b, [{ side: a, endpoint: 4 }], undefined, { offload });
      const p = await ping(a.ns, b.inner4);
      assert.ok(p.ok, p.out);
      const up = await iperf(b.ns, a.ns, b.inner4, 2);
      const down = await iperf(b.ns, a.ns, b.inner6, 2, true);
      assert.ok(up > 20e6 && down > 20e6, `iperf3 ${up} / ${down} bit/s`);
      for (const [who, wg] of [['a', wa], ['b', wb]] as const) {
        const c = wg.counters;
        assert.equal(wg.tun.offload, offload ? 'split' : 'none', who);
        assert.ok(c.tunPacketsRead > 1000 && c.udpReceiveBatches > 0, `${who}: ${JSON.stringify(c)}`);
        assert.equal(c.gsoErrors + c.tunWriteErrors + c.sendErrors, 0, `${who}: ${JSON.stringify(c)}`);
        if (offload) {
          // Both sides sent a bulk stream (up, then down) and received one.
          assert.ok(c.gsoSplits > 0, `${who} split super-packets from its TUN: ${JSON.stringify(c)}`);
          assert.ok(c.groSuperPackets > 0 && c.groMerged > c.groSuperPackets, `${who} wrote super-packets: ${JSON.stringify(c)}`);
        } else {
          assert.equal(c.gsoSplits + c.groSuperPackets + c.groMerged, 0, `${who}: ${JSON.stringify(c)}`);
        }
      }
      assert.equal(wa.engine.stats.dropped.malformed + wb.engine.stats.dropped.malformed, 0);
    } finally {
      await topo.cleanup();
    }
  });
}
