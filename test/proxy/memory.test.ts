// What a busy connection costs the proxy in resident memory: iperf3 through `tuntap socks` →
// dante, both directions, while the proxy's peak RSS (VmHWM, restarted at idle) is watched.
// The relay copies in native code through one shared buffer (no Buffer per read), so the peak
// stays near idle instead of tens of MiB above it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { nsRun } from '../helpers/netns.js';
import { ProxyTopology, SERVER4, PROXY4, memoryOf, resetPeak, sleep } from './topology.js';

let t: ProxyTopology;

before(async () => {
  t = new ProxyTopology({ mtu: 9000 });
  await t.startServers();
  await t.startDante(1081);
});
after(() => t?.cleanup());

const MIB = 2 ** 20;

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
