// GSO split and GRO coalesce on built packets: segments are valid packets with the right
// sequence numbers, IDs, flags and checksums; coalescing them gives back the super-packet.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  gsoSplit, GroCoalescer, GsoType, buildIpv4, buildIpv6, buildTcp, buildUdp, TcpFlags, Ipv4View, Ipv6View, TcpView, UdpView,
  verifyTransportChecksum, decodeVnetHdr, completePartialChecksum, partialPseudoChecksum, VIRTIO_NET_HDR_LEN,
  ipOffsetOfFrame,
} from '../../src/packet/index.js';

const same = (a: Uint8Array, b: Uint8Array, msg?: string) => {
  const x = Buffer.from(a.buffer, a.byteOffset, a.length);
  const at = x.findIndex((v, i) => v !== b[i]);
  assert.ok(x.equals(b), `${msg}: lengths ${a.length}/${b.length}, first difference at ${at}`);
};
const payloadOf = (n: number) => Uint8Array.from({ length: n }, (_, i) => (i * 7 + (i >> 8)) & 0xff);

function superPacket(version: 4 | 6, proto: 6 | 17, n: number, flags: number = TcpFlags.ACK | TcpFlags.PSH | TcpFlags.FIN | TcpFlags.CWR): Uint8Array {
  const ip = version === 4 ? { src: '198.18.0.1', dst: '198.18.0.2' } : { src: 'fd00::1', dst: 'fd00::2' };
  const l4 = proto === 6
    ? buildTcp({ srcPort: 4321, dstPort: 80, seq: 0xffff0000, ack: 99, flags, window: 500, options: { timestamp: [1, 2] }, payload: payloadOf(n) }, ip)
    : buildUdp({ srcPort: 4321, dstPort: 53, payload: payloadOf(n) }, ip);
  if (version === 4) return buildIpv4({ ...ip, protocol: proto, identification: 0xfffe, dontFragment: true, payload: l4 });
  return buildIpv6({ ...ip, protocol: proto, payload: l4 });
}

for (const version of [4, 6] as const) {
  for (const proto of [6, 17] as const) {
    test(`GSO split and GRO coalesce, IPv${version} ${proto === 6 ? 'TCP' : 'UDP'}`, () => {
      const n = 60000;
      const pkt = superPacket(version, proto, n);
      const l3 = version === 4 ? 20 : 40;
      const hdrLen = l3 + (proto === 6 ? 32 : 8);
      const mss = 1400;
      const gsoType = proto === 17 ? GsoType.UDP_L4 : version === 4 ? GsoType.TCPV4 : GsoType.TCPV6;
      // As the kernel hands it over: NEEDS_CSUM with the pseudo-header sum in the field.
      const csumOffset = proto === 6 ? 16 : 6;
      const partial = partialPseudoChecksum(pkt, 0, proto, pkt.length - l3);
      pkt[l3 + csumOffset] = partial >> 8; pkt[l3 + csumOffset + 1] = partial & 0xff;
      const hdr = { flags: 1, gsoType, hdrLen, gsoSize: mss, csumStart: l3, csumOffset };
      const outs = Array.from({ length: 64 }, () => new Uint8Array(2000));
      const sizes = new Uint32Array(64);
      const count = gsoSplit(pkt, hdr, outs, sizes);
      assert.equal(count, Math.ceil(n / mss));
      let got = 0;
      const segs: Uint8Array[] = [];
      for (let i = 0; i < count; i++) {
        const seg = outs[i]!.subarray(0, sizes[i]);
        segs.push(seg);
        const ipv = version === 4 ? new Ipv4View(seg) : new Ipv6View(seg);
        if (ipv instanceof Ipv4View) {
          assert.ok(ipv.verifyChecksum());
          assert.equal(ipv.identification, (0xfffe + i) & 0xffff);
          assert.equal(ipv.totalLength, seg.length);
        } else assert.equal(ipv.payloadLength, seg.length - 40);
        assert.ok(verifyTransportChecksum(seg, 0, l3, seg.length, proto), `segment ${i} checksum`);
        const plen = seg.length - hdrLen;
        assert.equal(plen, i < count - 1 ? mss : n - mss * (count - 1));
        same(seg.subarray(hdrLen), pkt.subarray(hdrLen + i * mss, hdrLen + i * mss + plen), `segment ${i} payload`);
        if (proto === 6) {
          const t = new TcpView(seg, l3);
          assert.equal(t.seq, (0xffff0000 + i * mss) >>> 0);
          assert.equal(t.hasFlag(TcpFlags.FIN), i === count - 1);
          assert.equal(t.hasFlag(TcpFlags.PSH), i === count - 1);
          assert.equal(t.hasFlag(TcpFlags.CWR), i === 0);
        } else assert.equal(new UdpView(seg, l3).length, seg.length - l3);
        got += plen;
      }
      assert.equal(got, n);

      if (proto === 6) {
        // GRO merges only ACK/PSH segments: rebuild without FIN/CWR.
        const plain = superPacket(version, proto, n, TcpFlags.ACK | TcpFlags.PSH);
        const p2 = partialPseudoChecksum(plain, 0, 6, plain.length - l3);
        const orig = Buffer.from(plain);
        plain[l3 + 16] = p2 >> 8; plain[l3 + 17] = p2 & 0xff;
        const c2 = gsoSplit(plain, hdr, outs, sizes);
        segs.length = 0;
        for (let i = 0; i < c2; i++) segs.push(outs[i]!.slice(0, sizes[i]));
        const gro = new GroCoalescer();
        const out = new Uint8Array(GroCoalescer.outputBound(segs));
        const r = gro.coalesce(segs, out);
        // 60000 bytes in 1400-byte segments exceed one 64 KiB packet only if > 65535 with headers: one item.
        assert.equal(r.count, 1);
        const merged = out.subarray(r.offsets[0]! + VIRTIO_NET_HDR_LEN, r.offsets[0]! + r.lengths[0]!);
        const vh = decodeVnetHdr(out, r.offsets[0]!);
        assert.deepEqual(vh, { flags: 1, gsoType: version === 4 ? GsoType.TCPV4 : GsoType.TCPV6, hdrLen, gsoSize: mss, csumStart: l3, csumOffset: 16 });
        completePartialChecksum(merged, vh.csumStart, vh.csumOffset);
        if (version === 4) { merged[4] = orig[4]!; merged[5] = orig[5]!; merged[10] = orig[10]!; merged[11] = orig[11]!; }
        same(merged, orig, 'merged packet equals the original');
      } else {
        const gro = new GroCoalescer({ udp: true });
        const out = new Uint8Array(GroCoalescer.outputBound(segs));
        const r = gro.coalesce(segs, out);
        assert.equal(r.count, 1);
        assert.equal(decodeVnetHdr(out, r.offsets[0]!).gsoType, GsoType.UDP_L4);
      }
    });
  }
}

test('GRO keeps flows apart and stops at gaps, PSH and short segments', () => {
  const ip = { src: '198.18.0.1', dst: '198.18.0.2' };
  const seg = (sport: number, seq: number, len: number, flags: number = TcpFlags.ACK) =>
    buildIpv4({ ...ip, protocol: 6, payload: buildTcp({ srcPort: sport, dstPort: 80, seq, ack: 1, flags, window: 10, payload: payloadOf(len) }, ip) });
  const batch = [
    seg(1, 0, 100), seg(2, 0, 100), seg(1, 100, 100), seg(2, 100, 100), seg(1, 200, 50), seg(1, 250, 100), // flow 1 closes after short
    seg(2, 300, 100), // gap in flow 2
    seg(3, 0, 100, TcpFlags.ACK | TcpFlags.PSH), seg(3, 100, 100), // PSH closes flow 3's first item
    seg(4, 0, 0, TcpFlags.SYN), // not mergeable
  ];
  const bad = seg(5, 0, 100); bad[bad.length - 1]! ^= 1; // corrupt payload → passed through
  batch.push(bad, seg(5, 100, 100));
  const gro = new GroCoalescer();
  const out = new Uint8Array(GroCoalescer.outputBound(batch));
  const r = gro.coalesce(batch, out);
  const summary: string[] = [];
  for (let i = 0; i < r.count; i++) {
    const pkt = out.subarray(r.offsets[i]! + 10, r.offsets[i]! + r.lengths[i]!);
    const t = new TcpView(pkt, 20);
    summary.push(`${t.srcPort}:${t.seq}+${t.payloadLength}`);
  }
  assert.deepEqual(summary, ['1:0+250', '2:0+200', '1:250+100', '2:300+100', '3:0+100', '3:100+100', '4:0+0', '5:0+100', '5:100+100']);
  assert.equal(r.merged, 3);
});

/** Packets laid out back to back in one buffer, as a batch. */
function asBatch(packets: Uint8Array[]): { buffer: Buffer; offsets: Uint32Array; lengths: Uint32Array; count: number } {
  const buffer = Buffer.concat(packets);
  const offsets = new Uint32Array(packets.length);
  const lengths = new Uint32Array(packets.length);
  let at = 0;
  packets.forEach((p, i) => { offsets[i] = at; lengths[i] = p.length; at += p.length; });
  return { buffer, offsets, lengths, count: packets.length };
}

test('GRO on a batch: TAP frames merge only under the same Ethernet header, and the header points past it', () => {
  const ip = { src: '198.18.0.1', dst: '198.18.0.2' };
  const frame = (srcMac: number, seq: number) => Buffer.concat([
    Buffer.from([2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, srcMac, 0x08, 0x00]),
    buildIpv4({ ...ip, protocol: 6, payload: buildTcp({ srcPort: 7, dstPort: 80, seq, ack: 1, flags: TcpFlags.ACK, window: 10, payload: payloadOf(100) }, ip) }),
  ]);
  const arp = Buffer.concat([Buffer.from([255, 255, 255, 255, 255, 255, 2, 0, 0, 0, 0, 2, 0x08, 0x06]), Buffer.alloc(28)]);
  const batch = asBatch([frame(2, 0), frame(2, 100), frame(3, 200), arp, frame(2, 200), frame(2, 300)]);
  const gro = new GroCoalescer({ linkHeader: 14 });
  // The frame from another MAC is another flow: the first flow's segments after it still join
  // the first group.
  assert.equal(gro.plan(batch), 3);
  const r = gro.emit(Buffer.alloc(GroCoalescer.batchOutputBound(batch)));
  assert.equal(r.count, 3);
  const h = decodeVnetHdr(r.buffer, r.offsets[0]!);
  assert.deepEqual(h, { flags: 1, gsoType: GsoType.TCPV4, hdrLen: 14 + 40, gsoSize: 100, csumStart: 14 + 20, csumOffset: 16 });
  assert.equal(r.lengths[0], 10 + 14 + 40 + 400);
  const merged = r.buffer.subarray(r.offsets[0]! + 10, r.offsets[0]! + r.lengths[0]!);
  assert.equal(merged[11], 2, 'the first frame\'s Ethernet header');
  assert.equal((merged[16]! << 8) | merged[17]!, 40 + 400, 'IP total length');
  // The other MAC's frame and the ARP frame pass on as they are.
  assert.equal(decodeVnetHdr(r.buffer, r.offsets[1]!).gsoType, GsoType.NONE);
  assert.equal(r.buffer[r.offsets[1]! + 10 + 11], 3);
  assert.equal(r.lengths[2], 10 + arp.length);
  // A batch where nothing merges is planned without copying anything.
  assert.equal(gro.plan(asBatch([frame(2, 0), arp, frame(3, 100)])), 0);
});

test('GRO looks for a packet\'s flow among the last 64 groups only: the work per batch is bounded', () => {
  const ip = { src: '198.18.0.1', dst: '198.18.0.2' };
  const seg = (sport: number, seq: number) =>
    buildIpv4({ ...ip, protocol: 6, payload: buildTcp({ srcPort: sport, dstPort: 80, seq, ack: 1, flags: TcpFlags.ACK, window: 10, payload: payloadOf(100) }, ip) });
  const between = (n: number) => Array.from({ length: n }, (_, i) => seg(2000 + i, 0));
  const gro = new GroCoalescer();
  assert.equal(gro.plan(asBatch([seg(1, 0), ...between(62), seg(1, 100)])), 1, 'found 63 groups back');
  assert.equal(gro.plan(asBatch([seg(1, 0), ...between(64), seg(1, 100)])), 0, 'not looked for 65 groups back');
});

test('a frame\'s IP header starts after its Ethernet header and up to two VLAN tags (802.1Q, 802.1ad)', () => {
  const frame = (...types: number[]) => {
    const b = Buffer.alloc(12 + 4 * types.length + 40);
    types.forEach((t, k) => b.writeUInt16BE(t, 12 + 4 * k));
    return b;
  };
  assert.equal(ipOffsetOfFrame(frame(0x0800)), 14);
  assert.equal(ipOffsetOfFrame(frame(0x8100, 0x0800)), 18);
  assert.equal(ipOffsetOfFrame(frame(0x88a8, 0x8100, 0x86dd)), 22, 'QinQ: both tags');
  assert.equal(ipOffsetOfFrame(frame(0x8100, 0x8100, 0x8100, 0x0800)), 22, 'no more than two tags');
  assert.equal(ipOffsetOfFrame(Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x81, 0x00, 0])), 14, 'a tag cut short is no tag');
});
