// What a busy connection costs the proxy in resident memory: iperf3 through `tuntap socks` →
// dante, both directions, while the proxy's peak RSS (VmHWM, restarted at idle) is watched.
// The relay copies in native code through one shared buffer (no Buffer per read), so the peak
// stays near idle instead of tens of MiB above it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { nsRun } from '../helpers/netns.js';
import { RECLAIM_EVERY } from '../../src/proxy/reclaim.js';
import { ProxyTopology, SERVER4, PROXY4, memoryOf, resetPeak, sleep, threadArenasResident } from './topology.js';

let t: ProxyTopology;

before(async () => {
  t = new ProxyTopology({ mtu: 9000 });
  await t.startServers();
  await t.startDante(1081);
});
after(() => t?.cleanup());

const MIB = 2 ** 20;
// What the thread arenas may keep resident after 4,000 connections: what V8's worker threads
// still use and the free tops no block freed since has trimmed. Measured under tsx: 2.6 MiB
// with the threshold fixed, 7.5 MiB with glibc's own (under the compiled CLI: ~0 and 5.5).
const ARENAS_AT_MOST = 4 * MIB;

test('one busy connection, both directions, raises the proxy\'s peak RSS by less than 16 MiB', async () => {
  await t.withTuntap('socks', ['--proxy', `socks5://${PROXY4}:1081`, '--route'], async (p) => {
    const pid = p.child.pid!;
    // Idle as a service at rest is: started, nothing relayed yet (bytes relayed before would
    // already lie dead in the RSS measured).
    await sleep(1500);
    const idle = memoryOf(pid).rss;
    resetPeak(pid);
    let bytes = 0;
    for (const reverse of [false, true]) {
      const r = await nsRun(t.app, 'iperf3', ['-c', SERVER4, '-t', '3', '-J', ...(reverse ? ['-R'] : [])], 30_000);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      bytes += (JSON.parse(r.stdout) as { end: { sum_received: { bytes: number } } }).end.sum_received.bytes;
    }
    const growth = memoryOf(pid).peak - idle;
    console.log(`# ${(bytes / 2 ** 30).toFixed(1)} GiB relayed; idle RSS ${(idle / MIB).toFixed(1)} MiB, peak +${(growth / MIB).toFixed(1)} MiB`);
    assert.ok(bytes > 256 * MIB, `enough was relayed to matter (${bytes} bytes)`);
    assert.ok(growth < 16 * MIB, `peak RSS +${(growth / MIB).toFixed(1)} MiB over idle`);
  });
});

// The garbage thousands of connections leave in V8's old generation (their handshakes' sockets
// and promises) is collected once they close: the heap the proxy reports comes back near where
// it was idle. Nothing else collects it in a proxy that has gone quiet.
// And what the C library's heaps freed goes back to the system: the arenas of V8's worker
// threads, which malloc_trim() does not shrink, hold no more than their trim threshold each.
test('4,000 connections opened and closed leave the heap within 3 MiB of idle and the thread arenas trimmed', async () => {
  await t.withTuntap('socks', ['--proxy', `socks5://${PROXY4}:1081`, '--route'], async (p) => {
    await sleep(1500);
    const idle = (await p.waitStats(() => true)).heapUsed!;
    const held = await t.holdConnections(4000);
    try {
      await p.waitStats((s) => s.sessions! >= 3960, 60_000);
      held.close();
      // Closed and the NAT entries' lingering over (5 s): the sweep that frees the last one
      // collects, before the next stats line.
      const empty = await p.waitStats((s) => s.sessions === 0 && s.natEntries === 0, 60_000);
      const after = await p.waitStats((s) => s.time !== empty.time);
      const used = after.heapUsed!;
      const arenas = threadArenasResident(p.child.pid!);
      console.log(`# heap used: idle ${(idle / MIB).toFixed(1)} MiB, after close ${(used / MIB).toFixed(1)} MiB (${after.reclaims} collections); thread arenas ${(arenas / MIB).toFixed(2)} MiB resident`);
      assert.ok(used < idle + 3 * MIB, `heap used ${(used / MIB).toFixed(1)} MiB after close, ${(idle / MIB).toFixed(1)} MiB idle`);
      assert.ok(arenas < ARENAS_AT_MOST, `thread arenas hold ${(arenas / MIB).toFixed(2)} MiB`);
    } finally {
      held.kill();
    }
  });
});

// Fewer connections than one collection's worth (RECLAIM_EVERY counts opens, closes and NAT
// releases) are collected too, once they stop coming: the last of a burst is not left behind.
test('the last connections of a burst are collected once they stop, fewer than RECLAIM_EVERY', async () => {
  await t.withTuntap('socks', ['--proxy', `socks5://${PROXY4}:1081`, '--route'], async (p) => {
    const held = await t.holdConnections(200);
    try {
      const open = await p.waitStats((s) => s.sessions === 200, 30_000);
      held.close();
      await p.waitStats((s) => s.sessions === 0 && s.natEntries === 0, 30_000);
      // 600 noted (200 opens, closes, releases): under RECLAIM_EVERY, collected all the same.
      assert.ok(RECLAIM_EVERY > 600);
      await p.waitStats((s) => s.reclaims! > open.reclaims!, 5_000);
    } finally {
      held.kill();
    }
  });
});
