// The JIT warm-up: its synthetic traffic really crosses the data path (handshake, seal, open,
// route, the TUN queue's own split and coalesce code, and real UDP sockets on loopback), so the
// code it compiles is the code real packets run; and none of it reaches a wire or a real session.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { exercise, exerciseInterfaces, exerciseSockets, warmDataPath } from '../../src/wireguard/warmup.js';
import { nsExec, nsSpawn, TestNet } from '../helpers/netns.js';
import { sleep, waitForOutput } from '../helpers/wait.js';
import { WgTopology, ping, type Side } from './topology.js';
import type { WireGuardInterface } from '../../src/wireguard/interface.js';

const net = new TestNet();
after(() => net.cleanup());

test('warm-up traffic is sealed, opened and delivered in full, and the pass stays cheap', async () => {
  const r = exercise(96);
  assert.ok(r.sent > 96, `sent ${r.sent}`);
  assert.equal(r.delivered, r.sent, 'every routed warm-up packet reached the other engine');
  assert.equal(r.dropped, 0, 'no authentication, replay or routing drops besides the deliberate no-route packets');
  assert.ok(r.superPacketsSplit > 0, `the queue's Splitter split TSO super-packets: ${JSON.stringify(r)}`);
  assert.ok(r.packetsCoalesced > 0, `the queue's Coalescer merged delivered segments: ${JSON.stringify(r)}`);
  const t = performance.now();
  const summary = await warmDataPath(net.namespace('warm'));
  assert.ok(performance.now() - t < 3000, 'the warm-up at interface open takes well under a few seconds');
  // Each pass ran, the last through the real TUN queue code (over packet pairs).
  assert.ok(summary?.sockets && summary.sockets.delivered > 0, JSON.stringify(summary?.sockets));
  const q = summary?.interfaces;
  assert.ok(q && q.roundTrips > 0 && q.queuePacketsRead > 0 && q.queuePacketsWritten > 0, `the interface pass moved packets: ${JSON.stringify(q)}`);
});

/** tcpdump on every interface of `ns` (`filter`: UDP only by default); returns its lines so far. */
async function captureUdp(ns: string, filter = ['udp']): Promise<{ lines: () => string[]; stop: () => void }> {
  const p = nsSpawn(ns, 'tcpdump', ['-i', 'any', '-n', '-l', ...filter]);
  let out = '';
  p.stdout!.on('data', (d) => { out += d; });
  await waitForOutput(p, 'listening on', `tcpdump in ${ns}`, { stream: 'stderr', timeoutMs: 5000 });
  return { lines: () => out.split('\n').filter((l) => l.trim() !== ''), stop: () => p.kill('SIGKILL') };
}

type Capture = Awaited<ReturnType<typeof captureUdp>>;
interface RealTunnel { a: Side; b: Side; wa: WireGuardInterface; wb: WireGuardInterface; capture: Capture }

/**
 * A real tunnel between two of our interfaces in test namespaces (checked with ping) and tcpdump
 * on every interface of side a's namespace (`filter`); `body` runs with them, then all is removed.
 */
async function withTunnelAndCapture(idx: number, filter: string[], body: (t: RealTunnel) => Promise<void>): Promise<void> {
  const topo = new WgTopology(idx);
  let capture: Capture | undefined;
  try {
    const a = topo.side(1);
    const b = topo.side(2);
    topo.link(a, b);
    const wa = await topo.tuntap(a, [{ side: b, endpoint: 4 }]);
    const wb = await topo.tuntap(b, [{ side: a, endpoint: 4 }]);
    assert.ok((await ping(a.ns, b.inner4, 2)).ok, 'the real tunnel passes ping');
    capture = await captureUdp(a.ns, filter);
    await body({ a, b, wa, wb, capture });
  } finally {
    capture?.stop();
    await topo.cleanup();
  }
}

test('the loopback pass crosses real sockets on lo only: nothing on the veth, nothing to the real tunnel, whose session goes on', async () => {
  await withTunnelAndCapture(35, ['udp'], async ({ a, b, wa, wb, capture }) => {
    const before = [wa, wb].map((w) => ({ udp: w.counters.udpReceiveBatches, stats: JSON.stringify(w.engine.stats) }));
    const r = await exerciseSockets(200, { netns: a.ns });
    await sleep(300);
    const lines = capture.lines();
    capture.stop();
    assert.deepEqual(lines.filter((l) => !/^\S+ lo\s/.test(l)), [], 'no datagram on any other interface (the veth, the TUN)');
    assert.ok(r, 'the pass ran (lo is up in a test namespace)');
    assert.equal(r.delivered, r.sent, `every routed packet crossed the sockets: ${JSON.stringify(r)}`);
    assert.equal(r.dropped, 0, JSON.stringify(r));
    // The capture works: it saw the pass's datagrams on lo, between 127.0.0.1 ports.
    const onLo = lines.filter((l) => /^\S+ lo\s/.test(l));
    assert.ok(onLo.length >= 200 && onLo.every((l) => l.includes('127.0.0.1.')), `on lo: ${onLo.length} lines, e.g. ${onLo[0]}`);
    const now = [wa, wb].map((w) => ({ udp: w.counters.udpReceiveBatches, stats: JSON.stringify(w.engine.stats) }));
    assert.deepEqual(now, before, 'the real interfaces received nothing and their engines did nothing meanwhile');
    // The real session is untouched: the next ping needs no new handshake.
    const handshakes = wa.engine.stats.handshakeInitiationsSent + wb.engine.stats.handshakeInitiationsSent;
    assert.ok((await ping(a.ns, b.inner4, 2)).ok);
    assert.equal(wa.engine.stats.handshakeInitiationsSent + wb.engine.stats.handshakeInitiationsSent, handshakes);
  });
});

test('where loopback is down the loopback pass is skipped, not an error', async () => {
  const ns = net.namespace('warmlo');
  nsExec(ns, 'ip', 'link', 'set', 'lo', 'down');
  assert.equal(await exerciseSockets(10, { netns: ns }), undefined);
  assert.equal(await exerciseInterfaces(10, { netns: ns }), undefined);
});

/** The namespace's links, addresses and routes (both families), as text to compare. */
function netState(ns: string): string {
  return ['link', 'addr', 'route', '-6 route'].map((what) => nsExec(ns, 'ip', ...what.split(' '), 'show')).join('\n');
}

/** The kernel's own chatter on a link (IPv6 router, neighbour and multicast listener messages): not the pass's. */
const KERNEL_CHATTER = /ICMP6, (router|neighbor|multicast listener)/;

test('the interface pass runs the real TUN queue code over packet pairs: nothing on any interface but lo, nothing left, the real tunnel untouched', async () => {
  await withTunnelAndCapture(36, [], async ({ a, b, wa, wb, capture }) => {
    const counters = () => [wa, wb].map((w) => JSON.stringify({ iface: w.counters, engine: w.engine.stats }));
    const before = { counters: counters(), state: netState(a.ns) };
    const rounds = 300;
    const fds = readdirSync('/proc/self/fd').length;
    const r = await exerciseInterfaces(rounds, { netns: a.ns });
    const fdsAfter = readdirSync('/proc/self/fd').length;
    await sleep(300);
    const lines = capture.lines();
    capture.stop();
    assert.ok(r, 'the pass ran (lo is up in a test namespace)');
    assert.equal(r.roundTrips, rounds, `every echo came back through both interfaces: ${JSON.stringify(r)}`);
    // What moved through the TUN queues' own code: reads (with super-packets split) and writes (coalesced).
    assert.ok(r.queuePacketsRead >= 2 * rounds, JSON.stringify(r));
    assert.ok(r.queuePacketsWritten >= rounds, JSON.stringify(r));
    assert.ok(r.superPacketsSplit > 0 && r.packetsCoalesced > 0, `split and coalesced: ${JSON.stringify(r)}`);
    // Only the warm-up interfaces' datagrams on lo, between 127.0.0.1 ports; nothing anywhere else.
    assert.deepEqual(lines.filter((l) => !/^\S+ lo\s/.test(l) && !KERNEL_CHATTER.test(l)), [], 'nothing on the veth or the TUN');
    const onLo = lines.filter((l) => /^\S+ lo\s/.test(l));
    assert.ok(onLo.length >= 2 * rounds && onLo.every((l) => l.includes('127.0.0.1.')), `on lo: ${onLo.length} lines, e.g. ${onLo[0]}`);
    // Nothing left: no device, address or route made, every fd closed, the real tunnel's counters as they were.
    assert.equal(netState(a.ns), before.state);
    assert.equal(fdsAfter, fds, 'every fd the pass opened is closed');
    assert.deepEqual(counters(), before.counters, 'the real interfaces and engines saw nothing of it');
    assert.ok((await ping(a.ns, b.inner4, 2)).ok, 'the real tunnel still passes ping');
  });
});
