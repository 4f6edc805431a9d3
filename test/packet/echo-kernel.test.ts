// echoReplyInPlace against the kernel: the system ping, through a TUN in a private namespace, is
// answered by turning each request into its reply in place; ping counts the replies it accepts
// (IPv4 and IPv6, several payload sizes).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { TestNet, nsRun } from '../helpers/netns.js';
import { openTun, type TunDevice } from '../../src/device/index.js';
import { echoReplyInPlace } from '../../src/packet/index.js';

const net = new TestNet();
after(() => net.cleanup());

async function answer(dev: TunDevice): Promise<number> {
  let answered = 0;
  for await (const batch of dev.batches()) {
    const replies: Buffer[] = [];
    for (const packet of batch) if (echoReplyInPlace(packet)) replies.push(packet);
    // The replies are views into the batch's buffer: written before the next read.
    if (replies.length > 0) await dev.writeBatch(replies);
    answered += replies.length;
  }
  return answered;
}

test('echo requests from ping, answered in place, are replies the kernel accepts', async () => {
  const ns = net.namespace('echo');
  const dev = openTun({ netns: ns });
  const answering = answer(dev);
  try {
    net.configure(ns, dev.name, { addresses: ['198.18.72.1/24', { address: 'fd00:72::1/64', nodad: true }], up: true });
    for (const [target, size] of [['198.18.72.2', 56], ['198.18.72.9', 1400], ['fd00:72::2', 56], ['fd00:72::9', 0]] as const) {
      const r = await nsRun(ns, 'ping', [...(target.includes(':') ? ['-6'] : []), '-c', '3', '-i', '0.2', '-W', '2', '-s', String(size), target]);
      assert.equal(r.code, 0, `${target}: ${r.stdout}${r.stderr}`);
      assert.match(r.stdout, /3 packets transmitted, 3 received/, target);
    }
  } finally {
    await dev.close();
  }
  assert.ok(await answering >= 12);
});
