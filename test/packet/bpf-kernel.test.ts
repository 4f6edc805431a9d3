// Filters compiled to classic BPF and attached to a TAP (TUNATTACHFILTER) pass exactly the
// frames the JS predicate passes, on a mixed sample of real kernel traffic: UDP/TCP/ICMP over
// IPv4 and IPv6 and ARP from a bridge the TAP is a port of, plus 802.1Q-tagged frames injected
// through a second port (the kernel carries their tag out of line, so the program reads it
// through the ancillary VLAN fields while user space sees it inline).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { TestNet, nsExec, nsRun } from '../helpers/netns.js';
import { openTap, type TunDevice } from '../../src/device/index.js';
import { compileFilter, summarize, buildEthernet, buildIpv4, buildUdp, buildTcp, TcpFlags } from '../../src/packet/index.js';

const net = new TestNet();
after(() => net.cleanup());

const TRAFFIC = `
const dgram = require('node:dgram'); const net = require('node:net');
const udp = [['198.18.70.2', 53], ['198.18.70.2', 5353], ['198.18.70.3', 80], ['fd00:70::2', 53], ['fd00:70::2', 8080], ['198.18.70.9', 53]];
const tcp = [['198.18.70.2', 80], ['198.18.70.3', 443], ['fd00:70::2', 22]];
for (const [h, p] of udp) { const s = dgram.createSocket(h.includes(':') ? 'udp6' : 'udp4'); s.send('marker ' + h + ' ' + p, p, h, () => s.close()); }
for (const [h, p] of tcp) { const s = net.connect(p, h); s.on('error', () => {}); setTimeout(() => s.destroy(), 400); }
setTimeout(() => process.exit(0), 500);`;

/** Tagged frames as another bridge port would deliver them. */
function tagged(): Buffer[] {
  const ip = { src: '198.18.71.1', dst: '198.18.71.2' };
  const frame = (vid: number, proto: number, payload: Uint8Array) => buildEthernet({
    dst: '02:00:00:00:00:05', src: '02:00:00:00:00:77', vlans: [{ vid }], etherType: 0x0800, payload: buildIpv4({ ...ip, protocol: proto, payload }) });
  return [
    frame(5, 17, buildUdp({ srcPort: 4000, dstPort: 53, payload: Buffer.from('tagged') }, ip)),
    frame(5, 6, buildTcp({ srcPort: 4001, dstPort: 8080, seq: 1, ack: 0, flags: TcpFlags.SYN, window: 1000, payload: new Uint8Array(0) }, ip)),
    frame(7, 17, buildUdp({ srcPort: 4002, dstPort: 9999, payload: Buffer.from('tagged') }, ip)),
  ];
}

async function traffic(ns: string, injector: TunDevice): Promise<void> {
  // Forget the unanswered neighbour so this run sends a fresh ARP request for it.
  try { nsExec(ns, 'ip', 'neigh', 'del', '198.18.70.9', 'dev', 'br0'); } catch { /* not cached */ }
  await injector.writeBatch(tagged());
  const runs = await Promise.all([
    nsRun(ns, process.execPath, ['-e', TRAFFIC]),
    nsRun(ns, 'ping', ['-c', '1', '-W', '0.3', '198.18.70.2']),
    nsRun(ns, 'ping', ['-c', '1', '-W', '0.3', 'fd00:70::2']),
  ]);
  assert.equal(runs[0]!.code, 0, runs[0]!.stderr);
}

async function collect(dev: TunDevice, ms: number, stop?: AbortSignal): Promise<Buffer[]> {
  const out: Buffer[] = [];
  const signal = stop ?? AbortSignal.timeout(ms);
  try {
    for (;;) {
      const batch = await dev.readBatch({ signal });
      if (!batch) break;
      for (let i = 0; i < batch.count; i++) out.push(Buffer.from(batch.packet(i)));
    }
  } catch (e) {
    if ((e as Error).name !== 'TimeoutError' && (e as Error).name !== 'AbortError') throw e;
  }
  return out;
}

/** Collects while `body` runs and for 300 ms after it (time for the last frames to arrive). */
async function during(dev: TunDevice, body: () => Promise<void>): Promise<Buffer[]> {
  const stop = new AbortController();
  const collecting = collect(dev, 0, stop.signal);
  try {
    await body();
    await new Promise((r) => setTimeout(r, 300));
  } finally {
    stop.abort();
  }
  return collecting;
}

/** What a frame is, independent of timing: family, VLAN, protocol, destination, port/type. */
function key(frame: Uint8Array): string {
  const s = summarize(frame, 'ethernet');
  const vlan = s.ethernet?.vlans.join('.') ?? '';
  if (s.arp) return `arp|${vlan}|${s.arp.operation}|${s.arp.targetIp}`;
  if (!s.ip) return `other|${vlan}|${s.ethernet?.etherType}`;
  const l4 = s.tcp ? `tcp ${s.tcp.dstPort} ${s.tcp.flags}` : s.udp ? `udp ${s.udp.dstPort}` : s.icmp ? `icmp ${s.icmp.type}` : `proto ${s.ip.protocol}`;
  return `ip${s.ip.version}|${vlan}|${s.ip.dst}|${l4}`;
}

const EXPRESSIONS = [
  'udp port 53', 'tcp', 'icmp or icmp6', 'arp', 'vlan', 'vlan 5 and udp', 'not vlan and host 198.18.70.3', 'ip6 and not udp',
  'dst portrange 5000-9000', 'net 198.18.70.0/24 and not icmp', 'ether dst 02:00:00:00:00:03 or ether dst ff:ff:ff:ff:ff:ff',
];

test('BPF attached to a TAP passes exactly what the JS predicate passes', async () => {
  const ns = net.namespace('pf');
  const dev = openTap({ netns: ns });
  const injector = openTap({ netns: ns });
  try {
    // tuntap has no bridge API: ip makes the bridge and enslaves the TAPs; the rest is rtnetlink.
    nsExec(ns, 'ip', 'link', 'add', 'br0', 'type', 'bridge');
    for (const port of [dev.name, injector.name]) {
      nsExec(ns, 'ip', 'link', 'set', port, 'master', 'br0');
      net.configure(ns, port, { up: true });
    }
    net.configure(ns, 'br0', { addresses: ['198.18.70.1/24', { address: 'fd00:70::1/64', nodad: true }], up: true });
    for (const [addr, mac] of [['198.18.70.2', '02:00:00:00:00:02'], ['198.18.70.3', '02:00:00:00:00:03'], ['fd00:70::2', '02:00:00:00:00:02']] as const) {
      nsExec(ns, 'ip', 'neigh', 'replace', addr, 'lladdr', mac, 'dev', 'br0', 'nud', 'permanent');
    }
    await collect(dev, 300); // let start-up chatter pass
    // Baseline: everything, unfiltered.
    const collecting = during(dev, () => traffic(ns, injector));
    const baseline = new Map<string, Buffer>();
    for (const f of await collecting) if (!baseline.has(key(f))) baseline.set(key(f), f);
    const deliberate = [...baseline.keys()].filter((k) => /\|(198\.18\.7[01]\.[239]|fd00:70::2)\|/.test(k) || k.startsWith('arp|'));
    for (const want of ['ip4||198.18.70.2|udp 53', 'ip4|5|198.18.71.2|udp 53', 'ip4|7|198.18.71.2|udp 9999', 'ip6||fd00:70::2|tcp 22 2', 'ip4||198.18.70.2|icmp 8', 'ip6||fd00:70::2|icmp 128', 'arp||1|198.18.70.9']) {
      assert.ok(baseline.has(want), `baseline has ${want}: ${[...baseline.keys()].join(', ')}`);
    }

    for (const expr of EXPRESSIONS) {
      const filter = compileFilter(expr, 'ethernet');
      dev.attachFilter(filter.bpf);
      await collect(dev, 150); // frames queued before the filter
      const got = await during(dev, () => traffic(ns, injector));
      dev.detachFilter();
      for (const f of got) assert.ok(filter.match(f), `${expr}: the kernel passed ${key(f)} which the JS predicate rejects`);
      const gotKeys = new Set(got.map(key));
      const expected = deliberate.filter((k) => filter.match(baseline.get(k)!));
      for (const k of expected) assert.ok(gotKeys.has(k), `${expr}: the kernel dropped ${k} which the JS predicate passes`);
      const dropped = deliberate.filter((k) => !filter.match(baseline.get(k)!));
      assert.ok(expected.length > 0 && dropped.length > 0, `${expr} splits the sample (${expected.length} pass, ${dropped.length} fail)`);
    }
  } finally {
    await dev.close();
    await injector.close();
  }
});
