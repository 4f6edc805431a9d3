// Link and address notifications as an async iterator.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { TestNet, uniqueName } from '../helpers/netns.js';
import { addAddress, createVeth, deleteAddress, setLink, watchEvents, type NetlinkEvent } from '../../src/netlink/index.js';
import { ip } from './ip.js';

async function waitFor(events: AsyncIterator<NetlinkEvent>, match: (e: NetlinkEvent) => boolean, ms: number, what = 'a matching event'): Promise<NetlinkEvent> {
  const deadline = Date.now() + ms;
  const seen: string[] = [];
  for (;;) {
    const left = deadline - Date.now();
    if (left <= 0) throw new Error(`no ${what} within ${ms} ms; saw ${seen.join(', ')}`);
    let timer: NodeJS.Timeout | undefined;
    const r = await Promise.race([
      events.next(),
      new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms; saw ${seen.join(', ')}`)), left); }),
    ]).finally(() => clearTimeout(timer));
    if (r.done) throw new Error('the event stream ended');
    if (match(r.value)) return r.value;
    const v = r.value;
    seen.push(`${v.type} ${'link' in v ? v.link.name : 'address' in v ? v.address.address : ''}`);
  }
}

describe('netlink events', () => {
  const net = new TestNet();
  let ns: string;
  let dev: string;
  before(() => {
    ns = net.namespace('ne');
    dev = uniqueName('ev');
    createVeth(dev, `${dev}p`, { up: true }, { netns: ns });
  });
  after(() => net.cleanup());

  test('sees a link go down within 100 ms', async () => {
    const ac = new AbortController();
    const events = watchEvents({ netns: ns, signal: ac.signal });
    try {
      // The change is made in-process so the clock measures the kernel and the notification
      // path, not the start-up of a spawned `ip`. Taking a device down waits for RCU grace
      // periods, which scheduling noise on a loaded machine can stretch, so the best of a few
      // attempts must be within 100 ms (a polling or batching delay would fail every attempt).
      const latencies: number[] = [];
      for (let attempt = 0; attempt < 5; attempt++) {
        const started = process.hrtime.bigint();
        setLink(dev, { up: false }, { netns: ns });
        const e = await waitFor(events, (ev) => ev.type === 'newlink' && ev.link.name === dev && !ev.link.up, 5000);
        latencies.push(Number(process.hrtime.bigint() - started) / 1e6);
        assert.ok(e.type === 'newlink' && e.link.operState === 'DOWN');
        ip(ns, 'link', 'set', dev, 'up');
        await waitFor(events, (ev) => ev.type === 'newlink' && ev.link.name === dev && ev.link.up, 5000);
        if (latencies.at(-1)! < 100) break;
      }
      assert.ok(Math.min(...latencies) < 100, `the down event came after ${latencies.map((ms) => ms.toFixed(1)).join(', ')} ms`);
    } finally {
      ac.abort();
    }
    assert.deepEqual(await events.next(), { value: undefined, done: true });
  });

  test('sees addresses added and removed (v4 and v6), and a new link', async () => {
    const events = watchEvents({ netns: ns, groups: ['link', 'ipv4-address', 'ipv6-address'] });
    try {
      addAddress(dev, '198.18.80.1/24', { netns: ns });
      addAddress(dev, { address: 'fd00:80::1/64', nodad: true }, { netns: ns });
      deleteAddress(dev, '198.18.80.1/24', { netns: ns });
      const other = uniqueName('ew');
      ip(ns, 'link', 'add', other, 'type', 'veth', 'peer', 'name', `${other}p`);
      // IPv6 announces a new address from a work queue, so the order across families varies.
      const wanted: [string, (e: NetlinkEvent) => boolean][] = [
        ['newaddr v4', (e) => e.type === 'newaddr' && e.address.address === '198.18.80.1' && e.address.prefixLength === 24],
        ['newaddr v6', (e) => e.type === 'newaddr' && e.address.address === 'fd00:80::1'],
        ['deladdr v4', (e) => e.type === 'deladdr' && e.address.address === '198.18.80.1'],
        ['newlink', (e) => e.type === 'newlink' && e.link.name === other && e.link.kind === 'veth'],
      ];
      while (wanted.length > 0) {
        const e = await waitFor(events, (ev) => wanted.some(([, match]) => match(ev)), 5000, wanted.map(([n]) => n).join(' / '));
        wanted.splice(wanted.findIndex(([, match]) => match(e)), 1);
      }
      ip(ns, 'link', 'del', other);
      await waitFor(events, (e) => e.type === 'dellink' && e.link.name === other, 5000, 'dellink');
    } finally {
      events.close();
    }
  });

  test('a consumer that does not read stops the reading past maxQueued events, and loses none the kernel kept', { timeout: 30_000 }, async () => {
    const events = watchEvents({ netns: ns, groups: ['ipv4-address'], maxQueued: 20 });
    try {
      // Ten rounds of ten, each read in its own wake-up: reading stops once 20 wait, so at most
      // one more wake-up's worth is held; the rest waits in the kernel's socket buffer.
      for (let i = 1; i <= 100; i++) {
        addAddress(dev, `198.18.81.${i}/32`, { netns: ns });
        if (i % 10 === 0) await new Promise((r) => setTimeout(r, 100));
      }
      assert.ok(events.queued >= 20 && events.queued <= 30, `${events.queued} events held`);
      const seen = new Set<string>();
      while (seen.size < 100) {
        const e = await waitFor(events, (ev) => ev.type === 'newaddr', 5000, `newaddr ${seen.size + 1} of 100`);
        if (e.type === 'newaddr') seen.add(e.address.address);
      }
    } finally {
      events.close();
      for (let i = 1; i <= 100; i++) deleteAddress(dev, `198.18.81.${i}/32`, { netns: ns });
    }
  });

  test('breaking out of for-await releases the subscription', { timeout: 10_000 }, async () => {
    const events = watchEvents({ netns: ns });
    setTimeout(() => ip(ns, 'link', 'set', dev, 'mtu', '1400'), 10);
    for await (const e of events) {
      if (e.type === 'newlink' && e.link.mtu === 1400) break;
    }
    assert.deepEqual(await events.next(), { value: undefined, done: true });
  });
});
