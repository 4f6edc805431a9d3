// The switch's forwarding decisions, driven through in-memory ports (bytes in, bytes out):
// learning, flooding, no hairpin, ageing, VLAN access/trunk handling, offload handling.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { LearningSwitch } from '../../src/l2/switch.js';
import { Fdb } from '../../src/l2/fdb.js';
import { frameVlan, pushVlan, completeChecksum } from '../../src/l2/ethernet.js';
import type { Frame, Port } from '../../src/l2/port.js';

class MemoryPort implements Port {
  readonly sent: Frame[][] = [];
  constructor(readonly name: string, readonly acceptsOffload = false) {}
  async *receive(signal: AbortSignal): AsyncGenerator<Frame[]> {
    await new Promise<void>((r) => signal.addEventListener('abort', () => r(), { once: true }));
  }
  async send(frames: readonly Frame[]): Promise<void> {
    this.sent.push(frames.map((f) => ({ data: new Uint8Array(f.data), offload: f.offload })));
  }
  async close(): Promise<void> {}
  frames(): Frame[] { return this.sent.flat(); }
  clear(): void { this.sent.length = 0; }
}

const mac = (n: number) => [0x02, 0, 0, 0, 0, n];
const BCAST = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff];

function frame(dst: number[], src: number[], payload = 46, ethertype = 0x0800): Frame {
  const b = new Uint8Array(14 + payload);
  b.set(dst, 0); b.set(src, 6);
  b[12] = ethertype >> 8; b[13] = ethertype & 0xff;
  for (let i = 14; i < b.length; i++) b[i] = i & 0xff;
  return { data: b };
}

function setup(n: number, age = 300) {
  const sw = new LearningSwitch({ ageSeconds: age });
  const ports = Array.from({ length: n }, (_, i) => new MemoryPort(`p${i}`));
  for (const p of ports) sw.addPort(p, { start: false });
  return { sw, ports };
}

describe('learning switch forwarding', () => {
  it('floods unknown and broadcast frames to every other port, then forwards learned unicast only', async () => {
    const { sw, ports: [a, b, c] } = setup(3);
    await sw.forward(a!, [frame(BCAST, mac(1))]);
    assert.equal(a!.frames().length, 0, 'no hairpin on flood');
    assert.equal(b!.frames().length, 1);
    assert.equal(c!.frames().length, 1);
    b!.clear(); c!.clear();
    await sw.forward(b!, [frame(mac(1), mac(2))]); // reply: destination learned on a
    assert.equal(a!.frames().length, 1);
    assert.equal(c!.frames().length, 0, 'known unicast is not flooded');
    a!.clear();
    await sw.forward(a!, [frame(mac(2), mac(1)), frame(mac(2), mac(1)), frame(mac(9), mac(1))]);
    assert.equal(b!.sent.length, 1, 'one send per output port per batch');
    assert.equal(b!.frames().length, 3, 'two known + one flooded unknown');
    assert.equal(c!.frames().length, 1, 'only the unknown unicast is flooded');
    const st = sw.stats();
    assert.equal(st.p0!.rxFrames, 4);
    assert.equal(st.p0!.floods, 2);
    assert.equal(st.p1!.txFrames, 4);
    assert.equal(st.p1!.floods, 0);
    const table = sw.macTable().map((r) => `${r.mac}@${r.port}`).sort();
    assert.deepEqual(table, ['02:00:00:00:00:01@p0', '02:00:00:00:00:02@p1']);
    await sw.close();
  });

  it('filters a frame whose destination is behind the port it came from', async () => {
    const { sw, ports: [a, b] } = setup(2);
    await sw.forward(a!, [frame(BCAST, mac(1)), frame(BCAST, mac(3))]);
    b!.clear();
    await sw.forward(a!, [frame(mac(3), mac(1))]);
    assert.equal(b!.frames().length, 0);
    assert.equal(a!.frames().length, 0);
    assert.equal(sw.stats().p0!.filtered, 1);
    await sw.close();
  });

  it('moves a MAC that shows up behind another port', async () => {
    const { sw, ports: [a, b, c] } = setup(3);
    await sw.forward(a!, [frame(BCAST, mac(1))]);
    await sw.forward(c!, [frame(BCAST, mac(1))]);
    b!.clear(); a!.clear(); c!.clear();
    await sw.forward(b!, [frame(mac(1), mac(2))]);
    assert.equal(c!.frames().length, 1);
    assert.equal(a!.frames().length, 0);
    await sw.close();
  });

  it('drops malformed frames and group source addresses, counting them', async () => {
    const { sw, ports: [a, b] } = setup(2);
    await sw.forward(a!, [{ data: new Uint8Array(5) }, frame(BCAST, BCAST), frame(BCAST, mac(1))]);
    assert.equal(b!.frames().length, 1);
    assert.equal(sw.stats().p0!.drops, 2);
    await sw.close();
  });

  it('stops learning at maxMacs and floods to MACs it could not learn', async () => {
    const sw = new LearningSwitch({ maxMacs: 2 });
    const [a, b, c] = [new MemoryPort('a'), new MemoryPort('b'), new MemoryPort('c')];
    for (const p of [a, b, c]) sw.addPort(p, { start: false });
    await sw.forward(a, [frame(BCAST, mac(1)), frame(BCAST, mac(2)), frame(BCAST, mac(3))]);
    assert.equal(sw.macTable().length, 2);
    assert.equal(sw.macsRefused, 1);
    b.clear(); c.clear();
    await sw.forward(b, [frame(mac(3), mac(4))]);
    assert.equal(c.frames().length, 1, 'the unlearned MAC is flooded');
    assert.equal(a.frames().length, 1);
    await sw.close();
  });

  it('a full MAC table is swept for aged entries at most every quarter age, not per new MAC', () => {
    const fdb = new Fdb<string>(100, 2); // 100 ms age: a full-table sweep at most every 25 ms
    assert.ok(fdb.learn(0, 1, 'a', 0) && fdb.learn(0, 2, 'a', 0));
    assert.equal(fdb.learn(0, 3, 'a', 90), false, 'full, nothing aged yet');
    // At 105 both entries are stale, but the table was swept 15 ms ago: refused without a sweep.
    assert.equal(fdb.learn(0, 3, 'a', 105), false);
    assert.equal(fdb.refused, 2);
    assert.equal(fdb.size, 2);
    // 30 ms after the last sweep the stale entries go and the new MAC is learned.
    assert.equal(fdb.learn(0, 3, 'a', 120), true);
    assert.equal(fdb.size, 1);
    assert.equal(fdb.lookup(0, 3, 120), 'a');
  });

  it('ages learned MACs out', async () => {
    const { sw, ports: [a, b, c] } = setup(3, 0.15);
    await sw.forward(a!, [frame(BCAST, mac(1))]);
    assert.equal(sw.macTable().length, 1);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(sw.macTable().length, 0, 'entry gone after the age');
    b!.clear(); c!.clear();
    await sw.forward(b!, [frame(mac(1), mac(2))]);
    assert.equal(c!.frames().length, 1, 'an aged-out destination is flooded again');
    await sw.close();
  });
});

describe('learning switch VLANs', () => {
  it('tags on trunks, untags on access ports and keeps VLANs apart', async () => {
    const sw = new LearningSwitch();
    const a10 = new MemoryPort('a10'); const a20 = new MemoryPort('a20');
    const trunk = new MemoryPort('trunk'); const t30 = new MemoryPort('t30');
    sw.addPort(a10, { vlan: { mode: 'access', pvid: 10 }, start: false });
    sw.addPort(a20, { vlan: { mode: 'access', pvid: 20 }, start: false });
    sw.addPort(trunk, { vlan: { mode: 'trunk', allowed: [10, 20] }, start: false });
    sw.addPort(t30, { vlan: { mode: 'trunk', allowed: [30], native: 10 }, start: false });
    await sw.forward(a10, [frame(BCAST, mac(1))]);
    assert.equal(a20.frames().length, 0, 'VLAN 20 does not see VLAN 10');
    assert.equal(trunk.frames().length, 1);
    assert.equal(frameVlan(trunk.frames()[0]!.data), 10, 'tagged on the trunk');
    assert.equal(trunk.frames()[0]!.data.length, 64);
    assert.equal(t30.frames().length, 1, 'native VLAN 10 goes untagged');
    assert.equal(frameVlan(t30.frames()[0]!.data), -1);
    trunk.clear();
    // Tagged VLAN 20 from the trunk reaches the VLAN 20 access port untagged, learned there.
    await sw.forward(trunk, [pushVlan(frame(mac(1), mac(5)), 20)]);
    assert.equal(a10.frames().length, 0, 'MAC 1 is known only in VLAN 10');
    assert.equal(a20.frames().length, 1);
    assert.equal(frameVlan(a20.frames()[0]!.data), -1);
    assert.deepEqual([...a20.frames()[0]!.data.subarray(0, 14)], [...frame(mac(1), mac(5)).data.subarray(0, 14)]);
    // VLAN 40 is allowed nowhere: dropped at the trunk; tagged frames on an access port too.
    await sw.forward(trunk, [pushVlan(frame(BCAST, mac(6)), 40)]);
    await sw.forward(a10, [pushVlan(frame(BCAST, mac(7)), 20)]);
    assert.equal(sw.stats().trunk!.drops, 1);
    assert.equal(sw.stats().a10!.drops, 1);
    const vlans = sw.macTable().map((r) => `${r.vlan}/${r.mac}`).sort();
    assert.deepEqual(vlans, ['10/02:00:00:00:00:01', '20/02:00:00:00:00:05']);
    await sw.close();
  });

  it('rejects invalid VLAN ids', () => {
    const sw = new LearningSwitch();
    assert.throws(() => sw.addPort(new MemoryPort('x'), { vlan: { mode: 'access', pvid: 4095 }, start: false }), RangeError);
    void sw.close();
  });
});

describe('learning switch offloads', () => {
  it('keeps super-packets for offload ports, segments them for others', async () => {
    const sw = new LearningSwitch();
    const a = new MemoryPort('a', true); const b = new MemoryPort('b', true); const plain = new MemoryPort('plain');
    for (const p of [a, b, plain]) sw.addPort(p, { start: false });
    // An IPv4/TCP super-packet with 3000 bytes of payload and MSS 1448, as a TSO TAP hands it over.
    const payload = 3000;
    const sp = frame(BCAST, mac(1), 20 + 20 + payload);
    const d0 = sp.data;
    d0.set([0x45, 0, (40 + payload) >> 8, (40 + payload) & 0xff, 0, 1, 0x40, 0, 64, 6, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2], 14);
    d0.set([0x30, 0x39, 0x00, 0x50, 0, 0, 0, 100, 0, 0, 0, 0, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0], 34);
    const gso: Frame = { data: d0, offload: { flags: 1, gsoType: 1, hdrLen: 54, gsoSize: 1448, csumStart: 34, csumOffset: 16 } };
    await sw.forward(a, [gso]);
    assert.equal(b.frames().length, 1);
    assert.equal(b.frames()[0]!.offload?.gsoType, 1, 'offload ports get the super-packet as is');
    const segs = plain.frames();
    assert.deepEqual(segs.map((f) => f.data.length), [54 + 1448, 54 + 1448, 54 + 104]);
    let seq = 100;
    for (const f of segs) {
      assert.equal(f.offload, undefined);
      const t = f.data;
      assert.equal((t[38]! << 24 | t[39]! << 16 | t[40]! << 8 | t[41]!) >>> 0, seq, 'sequence numbers advance by MSS');
      seq += t.length - 54;
      // IPv4 header and TCP (with pseudo-header) checksums verify.
      let ip = 0;
      for (let i = 14; i < 34; i += 2) ip += (t[i]! << 8) | t[i + 1]!;
      while (ip > 0xffff) ip = (ip & 0xffff) + (ip >>> 16);
      assert.equal(ip, 0xffff);
      let sum = 0xc612 + 0x0001 + 0xc612 + 0x0002 + 6 + (t.length - 34);
      for (let i = 34; i < t.length; i += 2) sum += (t[i]! << 8) | (t[i + 1] ?? 0);
      while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
      assert.equal(sum, 0xffff);
    }
    // A super-packet whose header disagrees with its bytes is dropped and counted.
    await sw.forward(a, [{ ...frame(BCAST, mac(1), 3000), offload: { flags: 1, gsoType: 1, hdrLen: 54, gsoSize: 1448, csumStart: 34, csumOffset: 16 } }]);
    assert.equal(sw.stats().plain!.txDrops, 1);
    plain.clear(); b.clear();
    // A UDP datagram with a partial checksum: the plain port gets it completed.
    const udp = frame(BCAST, mac(1), 28 + 4);
    const d = udp.data;
    d.set([0x45, 0, 0, 32, 0, 0, 0, 0, 64, 17, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2], 14);
    d.set([0x30, 0x39, 0x00, 0x35, 0, 12, 0, 0, 1, 2, 3, 4], 34);
    // Pseudo-header sum as a sender with NEEDS_CSUM leaves it (not complemented).
    const pseudo = 0xc612 + 0x0001 + 0xc612 + 0x0002 + 17 + 12;
    const folded = (pseudo & 0xffff) + (pseudo >>> 16);
    d[40] = folded >> 8; d[41] = folded & 0xff;
    await sw.forward(a, [{ data: d, offload: { flags: 1, gsoType: 0, hdrLen: 0, gsoSize: 0, csumStart: 34, csumOffset: 6 } }]);
    const got = plain.frames()[0]!;
    assert.equal(got.offload, undefined);
    // Verify: the one's-complement sum over pseudo-header + UDP is 0xffff.
    let sum = 0xc612 + 0x0001 + 0xc612 + 0x0002 + 17 + 12;
    for (let i = 34; i < 46; i += 2) sum += (got.data[i]! << 8) | got.data[i + 1]!;
    while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
    assert.equal(sum, 0xffff);
    assert.equal(b.frames()[0]!.data[40], d[40], 'offload ports get the original bytes');
    assert.equal(completeChecksum({ data: new Uint8Array(20), offload: { flags: 1, gsoType: 0, hdrLen: 0, gsoSize: 0, csumStart: 40, csumOffset: 6 } }), undefined);
    await sw.close();
  });
});
