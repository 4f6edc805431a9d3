// Both compilers' programs in the kernel: attached in turn to a real TAP (TUNATTACHFILTER), the
// subset's program and libpcap's pass the same frames of the same kernel traffic (UDP, TCP and
// ICMP over IPv4 and IPv6, ARP, IPv4 fragments), exactly those the user-space matcher passes;
// programs only libpcap compiles pass in the kernel what the BPF interpreter passes in user space.
// And why dump keeps libpcap's VLAN programs out of the kernel: there they miss the tag.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { TestNet, nsExec, nsRun } from '../helpers/netns.js';
import { sleep } from '../helpers/wait.js';
import { openTap, type TunDevice } from '../../src/device/index.js';
import { compileFilter, summarize, buildEthernet, buildIpv4, buildUdp, type CompiledFilter } from '../../src/packet/index.js';

const net = new TestNet();
after(() => net.cleanup());

const TRAFFIC = `
const dgram = require('node:dgram'); const net = require('node:net');
const udp = [['198.18.72.2', 53, 8], ['198.18.72.2', 5353, 8], ['198.18.72.3', 80, 8], ['fd00:72::2', 53, 8], ['fd00:72::2', 8080, 8], ['198.18.72.2', 9000, 3000]];
const tcp = [['198.18.72.2', 80], ['198.18.72.3', 443], ['fd00:72::2', 22]];
for (const [h, p, n] of udp) { const s = dgram.createSocket(h.includes(':') ? 'udp6' : 'udp4'); s.send(Buffer.alloc(n), p, h, () => s.close()); }
for (const [h, p] of tcp) { const s = net.connect(p, h); s.on('error', () => {}); setTimeout(() => s.destroy(), 300); }
setTimeout(() => process.exit(0), 400);`;

async function traffic(ns: string, dev: string): Promise<void> {
  // Forget the unanswered neighbour so each run sends a fresh ARP request for it.
  try { nsExec(ns, 'ip', 'neigh', 'del', '198.18.72.9', 'dev', dev); } catch { /* not cached */ }
  const runs = await Promise.all([
    nsRun(ns, process.execPath, ['-e', TRAFFIC]),
    nsRun(ns, 'ping', ['-c', '1', '-W', '0.3', '198.18.72.2']),
    nsRun(ns, 'ping', ['-6', '-c', '1', '-W', '0.3', 'fd00:72::2']),
    nsRun(ns, 'ping', ['-c', '1', '-W', '0.3', '198.18.72.9']), // unanswered: an ARP request
  ]);
  assert.equal(runs[0]!.code, 0, runs[0]!.stderr);
}

/** The frames read from `dev` while `body` runs and for 300 ms after. */
async function during(dev: TunDevice, body: () => Promise<void>): Promise<Buffer[]> {
  const frames: Buffer[] = [];
  const stop = new AbortController();
  const reading = (async () => {
    try {
      for await (const batch of dev.batches({ signal: stop.signal })) {
        for (let i = 0; i < batch.count; i++) frames.push(Buffer.from(batch.packet(i)));
      }
    } catch (e) {
      if (!stop.signal.aborted) throw e;
    }
  })();
  try {
    await body();
    await sleep(300);
  } finally {
    stop.abort();
    await reading;
  }
  return frames;
}

/** What a frame is, independent of timing and ports the kernel picks. */
function key(frame: Uint8Array): string {
  const s = summarize(frame, 'ethernet');
  if (s.arp) return `arp ${s.arp.operation} ${s.arp.targetIp}`;
  if (!s.ip) return `ethertype ${s.ethernet?.etherType}`;
  const frag = s.ip.fragmentOffset || s.ip.moreFragments ? ` frag ${s.ip.fragmentOffset}` : '';
  const l4 = s.tcp ? `tcp ${s.tcp.dstPort} ${s.tcp.flags}` : s.udp ? `udp ${s.udp.dstPort}` : s.icmp ? `icmp ${s.icmp.type}` : `proto ${s.ip.protocol}`;
  return `ip${s.ip.version} ${s.ip.dst} ${l4}${frag}`;
}

/** The frames that come from our traffic (not router solicitations and other start-up chatter). */
const ours = (k: string) => /198\.18\.72\.[239]|fd00:72::2/.test(k);

async function through(ns: string, dev: TunDevice, filter: CompiledFilter): Promise<Set<string>> {
  dev.attachFilter(filter.bpf);
  try {
    await during(dev, async () => { await sleep(100); }); // what was queued before the filter
    return new Set((await during(dev, () => traffic(ns, dev.name))).map(key).filter(ours));
  } finally {
    dev.detachFilter();
  }
}

test('the subset\'s and libpcap\'s programs, attached to a TAP, pass the same frames', async () => {
  const ns = net.namespace('lk');
  const dev = openTap({ netns: ns });
  try {
    net.configure(ns, dev.name, { addresses: ['198.18.72.1/24', { address: 'fd00:72::1/64', nodad: true }], up: true });
    for (const [addr, mac] of [['198.18.72.2', '02:00:00:00:00:02'], ['198.18.72.3', '02:00:00:00:00:03'], ['fd00:72::2', '02:00:00:00:00:02']] as const) {
      nsExec(ns, 'ip', 'neigh', 'replace', addr, 'lladdr', mac, 'dev', dev.name, 'nud', 'permanent');
    }
    await during(dev, () => sleep(300)); // start-up chatter
    const baseline = new Map<string, Buffer>();
    for (const f of await during(dev, () => traffic(ns, dev.name))) if (ours(key(f)) && !baseline.has(key(f))) baseline.set(key(f), f);
    for (const want of ['ip4 198.18.72.2 udp 53', 'ip6 fd00:72::2 tcp 22 2', 'ip4 198.18.72.2 icmp 8', 'ip6 fd00:72::2 icmp 128', 'arp 1 198.18.72.9', 'ip4 198.18.72.2 proto 17 frag 1480']) {
      assert.ok(baseline.has(want), `baseline has ${want}: ${[...baseline.keys()].join(', ')}`);
    }
    const expected = (f: CompiledFilter) => new Set([...baseline].filter(([, frame]) => f.match(frame)).map(([k]) => k));

    for (const expr of ['udp port 53', 'icmp or icmp6', 'ip6 and not udp', 'host 198.18.72.3 or dst portrange 20-80', 'arp or (ip and udp and not port 53)']) {
      const subset = compileFilter(expr, 'ethernet');
      const libpcap = compileFilter(expr, 'ethernet', { compiler: 'libpcap' });
      assert.ok(libpcap.kernelSafe, expr);
      const want = expected(libpcap);
      assert.deepEqual(expected(subset), want, `${expr}: both match() alike`);
      assert.ok(want.size > 0 && want.size < baseline.size, `${expr} splits the traffic (${want.size} of ${baseline.size})`);
      assert.deepEqual(await through(ns, dev, subset), want, `${expr}: the subset's program in the kernel`);
      assert.deepEqual(await through(ns, dev, libpcap), want, `${expr}: libpcap's program in the kernel`);
    }
    // Beyond the subset: TCP SYNs by their flag bits, IPv4 fragments by offset and MF.
    for (const expr of ['tcp[tcpflags] & tcp-syn != 0', 'ip[6:2] & 0x3fff != 0']) {
      const libpcap = compileFilter(expr, 'ethernet', { compiler: 'auto' });
      assert.equal(libpcap.compiler, 'libpcap');
      const want = expected(libpcap);
      assert.ok(want.size > 0 && want.size < baseline.size, `${expr} splits the traffic (${[...want].join(', ')})`);
      assert.deepEqual(await through(ns, dev, libpcap), want, `${expr} in the kernel`);
    }
  } finally {
    await dev.close();
  }
});

test('a libpcap program testing VLAN tags misses, in the kernel, a tag the kernel keeps out of the frame: kernelSafe is false', async () => {
  const ns = net.namespace('lv');
  const dev = openTap({ netns: ns });
  const injector = openTap({ netns: ns });
  try {
    // A tagged frame entering a bridge reaches the TAP with its tag in skb metadata.
    nsExec(ns, 'ip', 'link', 'add', 'br0', 'up', 'type', 'bridge');
    for (const port of [dev.name, injector.name]) nsExec(ns, 'ip', 'link', 'set', port, 'master', 'br0', 'up');
    await during(dev, () => sleep(300));
    const ip = { src: '198.18.73.1', dst: '198.18.73.2' };
    const frame = buildEthernet({ dst: 'ff:ff:ff:ff:ff:ff', src: '02:00:00:00:00:77', vlans: [{ vid: 5 }], etherType: 0x0800,
      payload: buildIpv4({ ...ip, protocol: 17, payload: buildUdp({ srcPort: 4000, dstPort: 4001, payload: Buffer.from('tagged') }, ip) }) });
    const tagged = (frames: Buffer[]) => frames.filter((f) => summarize(f, 'ethernet').udp?.dstPort === 4001);
    const received = async (program?: CompiledFilter) => {
      if (program) dev.attachFilter(program.bpf);
      try {
        return tagged(await during(dev, async () => { await injector.write(frame); }));
      } finally {
        if (program) dev.detachFilter();
      }
    };
    const subset = compileFilter('vlan 5 and udp', 'ethernet');
    const libpcap = compileFilter('vlan 5 and udp', 'ethernet', { compiler: 'libpcap' });
    const unfiltered = await received();
    assert.equal(unfiltered.length, 1, 'the tagged frame reaches the TAP');
    assert.ok(libpcap.match(unfiltered[0]!) && subset.match(unfiltered[0]!), 'user space reads the tag in the frame');
    assert.equal((await received(subset)).length, 1, 'the subset reads the tag through the ancillary fields');
    assert.equal((await received(libpcap)).length, 0, 'libpcap\'s program looks for the tag in the frame, where the kernel does not keep it');
    assert.equal(libpcap.kernelSafe, false);
  } finally {
    await dev.close();
    await injector.close();
  }
});
