// Opening and closing many devices leaves no fd, handle or device behind.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { TestNet, nsExec } from '../helpers/netns.js';
import { openTap, openTun } from '../../src/device/index.js';

const net = new TestNet();
after(() => net.cleanup());

const fdCount = () => readdirSync('/proc/self/fd').length;
const handleCount = () => (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles().length;

test('opening and closing 1,000 devices returns fd and handle counts to where they were', async () => {
  const ns = net.namespace('dl');
  // Warm up lazily created state (module loading, the first namespace fds) before measuring.
  const warm = openTun({ netns: ns });
  await warm.close();
  await new Promise((r) => setImmediate(r));
  const fds = fdCount();
  const handles = handleCount();
  const resources = process.getActiveResourcesInfo().length;

  for (let i = 0; i < 1000; i++) {
    const dev = i % 2 === 0 ? openTun({ netns: ns, offload: i % 4 === 2 ? 'split' : undefined })
      : openTap({ netns: ns, queues: i % 10 === 1 ? 2 : 1, vnetHdr: i % 4 === 1 });
    if (i % 10 === 0) {
      // A waiting read arms the poll handle; closing must release it too.
      const pending = dev.readBatch();
      void dev.mtu; // creates the control socket
      await dev.close();
      assert.equal(await pending, null);
    } else if (i % 10 === 5) {
      // So must closing under a readEach loop, whose wait stays armed across wake-ups.
      const q = dev.queues[0]!;
      const ends: unknown[] = [];
      q.readEach(() => {}, (err) => ends.push(err));
      await dev.close();
      assert.deepEqual(ends, [null], 'the loop ended once, without an error');
    } else {
      await dev.close();
    }
  }
  await new Promise((r) => setImmediate(r));
  await new Promise((r) => setTimeout(r, 10));
  assert.equal(fdCount(), fds, 'fd count is back');
  assert.equal(handleCount(), handles, 'active handle count is back');
  assert.equal(process.getActiveResourcesInfo().length, resources);
  const links = nsExec(ns, 'ip', '-o', 'link').trim().split('\n');
  assert.equal(links.length, 1, `only lo is left: ${links.join(' | ')}`);
});

test('an open that fails once its queue fds are open closes every one of them, and the device goes', () => {
  const ns = net.namespace('dl');
  const warm = openTun({ netns: ns });
  warm.closeSync();
  const fds = fdCount();
  // The queues refuse these sizes after TUNSETIFF has made the device and its three fds.
  assert.throws(() => openTun({ netns: ns, queues: 3, readSize: Number.NaN }), RangeError);
  assert.throws(() => openTap({ netns: ns, queues: 2, batchSize: 0.5 }), RangeError);
  assert.throws(() => openTun({ netns: ns, name: 'tleak0', readSize: -1 }), RangeError);
  assert.equal(fdCount(), fds, 'fd count is back');
  const links = nsExec(ns, 'ip', '-o', 'link').trim().split('\n');
  assert.equal(links.length, 1, `only lo is left: ${links.join(' | ')}`);
});
