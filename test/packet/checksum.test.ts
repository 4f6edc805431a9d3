// Full and incremental checksums agree; partial checksums complete like the kernel's.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  sum16, fold, internetChecksum, updateChecksum16, updateChecksum32, updateChecksumBytes, completePartialChecksum,
  buildIpv4, buildIpv6, buildTcp, buildUdp, Ipv4View, TcpView, UdpView, verifyTransportChecksum, TcpFlags, partialPseudoChecksum,
} from '../../src/packet/index.js';

function naiveSum(b: Uint8Array, start: number, end: number): number {
  let s = 0;
  for (let i = start; i < end; i += 2) s += (b[i]! << 8) | (i + 1 < end ? b[i + 1]! : 0);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

test('fast sum equals a word-by-word sum for every length and alignment', () => {
  const b = Uint8Array.from({ length: 300 }, () => Math.floor(Math.random() * 256));
  for (let start = 0; start < 8; start++) {
    for (let end = start; end <= 300; end += 7) assert.equal(fold(sum16(b, start, end)), naiveSum(b, start, end), `${start}..${end}`);
  }
  const ff = new Uint8Array(65536).fill(0xff);
  assert.equal(fold(sum16(ff, 0, ff.length)), 0xffff);
});

test('incremental updates (RFC 1624) equal recomputation', () => {
  for (let i = 0; i < 2000; i++) {
    const hdr = Uint8Array.from({ length: 20 }, () => Math.floor(Math.random() * 256));
    hdr[10] = 0; hdr[11] = 0;
    const c = internetChecksum(hdr);
    const at = 2 * Math.floor(Math.random() * 10);
    if (at === 10) continue;
    const old = (hdr[at]! << 8) | hdr[at + 1]!;
    const nw = i % 3 === 0 ? 0 : Math.floor(Math.random() * 65536);
    hdr[at] = nw >> 8; hdr[at + 1] = nw & 0xff;
    const full = internetChecksum(hdr);
    const inc = updateChecksum16(c, old, nw);
    // One's complement has two zeros; both encodings verify.
    assert.ok(inc === full || (inc ^ full) === 0xffff && (inc === 0 || full === 0), `${inc} vs ${full}`);
  }
});

test('NAT rewrite of addresses and ports keeps IPv4/TCP/UDP checksums valid', () => {
  for (const proto of [6, 17]) {
    const ip = { src: '198.18.0.1', dst: '198.18.1.1' };
    const l4 = proto === 6
      ? buildTcp({ srcPort: 1000, dstPort: 80, seq: 1, ack: 2, flags: TcpFlags.ACK, window: 100, payload: new Uint8Array(33).fill(7) }, ip)
      : buildUdp({ srcPort: 1000, dstPort: 53, payload: new Uint8Array(33).fill(9) }, ip);
    const pkt = buildIpv4({ ...ip, protocol: proto, payload: l4 });
    const v = new Ipv4View(pkt);
    const t = proto === 6 ? new TcpView(pkt, 20, pkt.length) : new UdpView(pkt, 20, pkt.length);
    const oldSrc = v.setSrc(0xc6120909);
    const oldDst = v.setDst(0xc612fefe);
    t.adjustForAddress(oldSrc, 0xc6120909);
    t.adjustForAddress(oldDst, 0xc612fefe);
    t.srcPort = 40000; t.dstPort = 8080;
    assert.deepEqual([t.srcPort, t.dstPort], [40000, 8080]);
    assert.ok(v.verifyChecksum());
    assert.equal(v.srcAddress, '198.18.9.9');
    assert.ok(verifyTransportChecksum(pkt, 0, 20, pkt.length, proto));
  }
  // IPv6 address rewrite via byte-run update.
  const ip6 = { src: 'fd00::1', dst: 'fd00::2' };
  const seg = buildTcp({ srcPort: 1, dstPort: 2, seq: 3, ack: 4, flags: TcpFlags.ACK, window: 5, payload: new Uint8Array(11) }, ip6);
  const pkt = buildIpv6({ ...ip6, protocol: 6, payload: seg });
  const tv = new TcpView(pkt, 40, pkt.length);
  const newSrc = buildIpv6({ src: 'fd00:aaaa::99', dst: 'fd00::2', protocol: 6, payload: new Uint8Array(0) }).subarray(8, 24);
  tv.checksum = updateChecksumBytes(tv.checksum, pkt, 8, newSrc, 0, 16);
  pkt.set(newSrc, 8);
  assert.ok(verifyTransportChecksum(pkt, 0, 40, pkt.length, 6));
  assert.equal(updateChecksum32(0x1234, 0xdeadbeef, 0xdeadbeef), 0x1234);
});

test('rewriting a UDP port keeps an absent (zero) IPv4 UDP checksum absent', () => {
  const ip = { src: '198.18.0.1', dst: '198.18.1.1' };
  const pkt = buildIpv4({ ...ip, protocol: 17, payload: buildUdp({ srcPort: 1000, dstPort: 53, payload: new Uint8Array(5), checksum: 0 }) });
  const u = new UdpView(pkt, 20, pkt.length);
  u.srcPort = 40000; u.dstPort = 8080;
  u.adjustForAddress(0xc6120001, 0xc6120909);
  assert.deepEqual([u.srcPort, u.dstPort, u.checksum], [40000, 8080, 0]);
});

test('completing a NEEDS_CSUM partial checksum gives the full checksum', () => {
  for (const [ip, l3] of [[{ src: '198.18.0.1', dst: '198.18.0.2' }, 20], [{ src: 'fd00::1', dst: 'fd00::2' }, 40]] as const) {
    const seg = buildTcp({ srcPort: 5, dstPort: 6, seq: 7, ack: 8, flags: TcpFlags.ACK, window: 9, payload: new Uint8Array(1001).fill(3) }, ip);
    const pkt = l3 === 20 ? buildIpv4({ ...ip, protocol: 6, payload: seg }) : buildIpv6({ ...ip, protocol: 6, payload: seg });
    const good = (pkt[l3 + 16]! << 8) | pkt[l3 + 17]!;
    const partial = partialPseudoChecksum(pkt, 0, 6, pkt.length - l3);
    pkt[l3 + 16] = partial >> 8; pkt[l3 + 17] = partial & 0xff;
    completePartialChecksum(pkt, l3, 16);
    assert.equal((pkt[l3 + 16]! << 8) | pkt[l3 + 17]!, good);
  }
});

test('rewriteIpv4Flow keeps checksums valid for TCP, UDP, UDP without checksum and ICMP', async () => {
  const { rewriteIpv4Flow, buildIcmp } = await import('../../src/packet/index.js');
  const ip = { src: '198.18.0.1', dst: '198.18.1.1' };
  const cases = [
    buildIpv4({ ...ip, protocol: 6, payload: buildTcp({ srcPort: 1, dstPort: 2, seq: 3, ack: 4, flags: TcpFlags.ACK, window: 5, payload: new Uint8Array(77).fill(1) }, ip) }),
    buildIpv4({ ...ip, protocol: 17, payload: buildUdp({ srcPort: 1, dstPort: 2, payload: new Uint8Array(33).fill(2) }, ip) }),
    buildIpv4({ ...ip, protocol: 17, payload: buildUdp({ srcPort: 1, dstPort: 2, payload: new Uint8Array(33).fill(2), checksum: 0 }) }),
    buildIpv4({ ...ip, protocol: 1, payload: buildIcmp({ type: 8, code: 0, payload: new Uint8Array(8) }) }),
  ];
  for (const [i, pkt] of cases.entries()) {
    const v = new Ipv4View(pkt);
    const ports = rewriteIpv4Flow(v, 0xc612ff01, 0xc6120a0a, 50000 + i, 65535);
    assert.equal(ports, i < 3);
    assert.ok(v.verifyChecksum());
    assert.equal(v.dstAddress, '198.18.10.10');
    if (i === 2) assert.equal(pkt[26]! | pkt[27]!, 0);
    else if (i < 3) assert.ok(verifyTransportChecksum(pkt, 0, 20, pkt.length, pkt[9]!));
  }
});
