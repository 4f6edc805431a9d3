// A WireGuardInterface that loses its UDP socket closes and says why, instead of staying up deaf.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { WireGuardInterface } from '../../src/wireguard/interface.js';
import { generatePrivateKey } from '../../src/wireguard/crypto.js';
import type { UdpSocket } from '../../src/net/udp.js';
import { TestNet, uniqueName } from '../helpers/netns.js';

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
