// Build → parse → build gives identical bytes for every protocol, IPv4 and IPv6.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  buildEthernet, EthernetView, parseEthernet, buildArp, ArpView, parseArp, buildIpv4, Ipv4View, parseIpv4,
  buildIpv6, Ipv6View, parseIpv6, fragmentExtension, optionsExtension, buildTcp, TcpView, parseTcp, buildUdp, UdpView, parseUdp,
  buildIcmp, IcmpView, parseIcmp, buildIcmpv6, Icmpv6View, parseIcmpv6, ndToIcmpv6, parseNd, linkLayerOption, prefixOption, mtuOption,
  echoBody, encodeTcpOptions, TcpFlags, verifyTransportChecksum, internetChecksum, parseMac, PacketParseError,
  encodeVnetHdr, decodeVnetHdr, encodePacketInfo, decodePacketInfo, formatIPv6, parseIPv6,
} from '../../src/packet/index.js';

const bytes = (n: number, seed = 1) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);
const v4 = { src: '198.18.0.1', dst: '198.19.255.254' };
const v6 = { src: 'fd00::1', dst: 'fd00:1:2:3:4:5:6:7' };

test('IPv6 text form matches RFC 5952', () => {
  for (const a of ['fd00::1', '::', '::1', 'fd00:0:0:1::', 'fd00:1:2:3:4:5:6:7', '1:0:0:2::3', '::ffff:198.18.0.1', 'fe80::1:0:0:0']) {
    assert.equal(formatIPv6(parseIPv6(a)), a);
  }
});

test('Ethernet with and without VLAN tags', () => {
  for (const vlans of [undefined, [{ vid: 100, pcp: 5, dei: true }], [{ tpid: 0x88a8, vid: 7 }, { vid: 4000 }]]) {
    const frame = buildEthernet({ dst: 'ff:ff:ff:ff:ff:ff', src: '02:00:00:00:00:01', vlans, etherType: 0x0800, payload: bytes(46) });
    const v = new EthernetView(frame);
    assert.equal(v.vlanCount, vlans?.length ?? 0);
    assert.equal(v.etherType, 0x0800);
    if (vlans) assert.equal(v.vlanId(vlans.length - 1), vlans.at(-1)!.vid);
    assert.deepEqual(buildEthernet(parseEthernet(v)), frame);
  }
});

test('ARP', () => {
  const pkt = buildArp({ operation: 1, senderMac: '02:00:00:00:00:01', senderIp: '198.18.0.1', targetMac: '00:00:00:00:00:00', targetIp: '198.18.0.2' });
  const v = new ArpView(pkt);
  assert.equal(v.targetIp, '198.18.0.2');
  assert.deepEqual(buildArp(parseArp(v)), pkt);
});

test('IPv4 with options and fragment fields', () => {
  const pkt = buildIpv4({ ...v4, protocol: 17, identification: 0x1234, moreFragments: true, fragmentOffset: 1480, ttl: 3, dscp: 46, ecn: 1,
    options: Uint8Array.from([0x94, 4, 0, 0, 1]), payload: bytes(30) });
  const v = new Ipv4View(pkt);
  assert.equal(v.headerLength, 28);
  assert.equal(v.fragmentOffset, 1480);
  assert.ok(v.moreFragments && v.isFragment);
  assert.ok(v.verifyChecksum());
  assert.deepEqual(v.options().map((o) => o.type), [0x94, 1]);
  assert.deepEqual(buildIpv4(parseIpv4(v)), pkt);
});

test('IPv6 extension headers are walked', () => {
  const hop = optionsExtension(0, Uint8Array.from([5, 2, 0, 0])); // router alert
  const routing = { type: 43, data: Uint8Array.from([0, 0, 0, 0, 0, 0]) };
  const frag = fragmentExtension(0, true, 0xdeadbeef);
  const dest = optionsExtension(60);
  const pkt = buildIpv6({ ...v6, protocol: 17, flowLabel: 0x12345, trafficClass: 0xb8, extensions: [hop, routing, frag, dest], payload: buildUdp({ srcPort: 1, dstPort: 2, payload: bytes(9) }) });
  const v = new Ipv6View(pkt);
  assert.equal(v.upperProtocol, 17);
  assert.equal(v.extensionCount, 4);
  assert.equal(v.upperOffset, 40 + 8 + 8 + 8 + 8);
  assert.ok(v.isFragment && v.moreFragments);
  assert.equal(v.fragmentId, 0xdeadbeef);
  assert.deepEqual(buildIpv6(parseIpv6(v)), pkt);
  // A later fragment stops the walk at the fragment header.
  const later = buildIpv6({ ...v6, protocol: 6, extensions: [fragmentExtension(1448, false, 1)], payload: bytes(20) });
  const lv = new Ipv6View(later);
  assert.equal(lv.fragmentOffset, 1448);
  assert.equal(lv.upperOffset, 48);
  assert.throws(() => new Ipv6View(buildIpv6({ ...v6, protocol: 6, extensions: [optionsExtension(60), optionsExtension(0)], payload: bytes(4) })), PacketParseError);
});

for (const [family, ip] of [['v4', v4], ['v6', v6]] as const) {
  test(`TCP with options over ${family}`, () => {
    const options = { mss: 1460, sackPermitted: true, timestamp: [123456789, 987654321] as [number, number], windowScale: 7 };
    const seg = buildTcp({ srcPort: 40000, dstPort: 80, seq: 0xfffffff0, ack: 5, flags: TcpFlags.SYN | TcpFlags.ACK | TcpFlags.ECE, window: 64240, options, payload: bytes(0) }, ip);
    const tv = new TcpView(seg);
    assert.deepEqual(tv.options(), options);
    assert.deepEqual(buildTcp(parseTcp(tv), ip), seg);
    const sack = buildTcp({ srcPort: 1, dstPort: 2, seq: 1, ack: 2, flags: TcpFlags.ACK, window: 3, options: { timestamp: [1, 2], sack: [[10, 20], [30, 40]] }, payload: bytes(100) }, ip);
    assert.deepEqual(new TcpView(sack).options().sack, [[10, 20], [30, 40]]);
    const pkt = family === 'v4' ? buildIpv4({ ...ip, protocol: 6, payload: seg }) : buildIpv6({ ...ip, protocol: 6, payload: seg });
    const l4 = family === 'v4' ? 20 : 40;
    assert.ok(verifyTransportChecksum(pkt, 0, l4, pkt.length, 6));
  });

  test(`UDP over ${family}`, () => {
    const dg = buildUdp({ srcPort: 53, dstPort: 5353, payload: bytes(33) }, ip);
    const uv = new UdpView(dg);
    assert.equal(uv.length, 41);
    assert.deepEqual(buildUdp(parseUdp(uv), ip), dg);
    const pkt = family === 'v4' ? buildIpv4({ ...ip, protocol: 17, payload: dg }) : buildIpv6({ ...ip, protocol: 17, payload: dg });
    assert.ok(verifyTransportChecksum(pkt, 0, family === 'v4' ? 20 : 40, pkt.length, 17));
  });
}

test('ICMPv4 echo', () => {
  const m = buildIcmp({ type: 8, code: 0, identifier: 77, sequence: 3, payload: bytes(56) });
  const v = new IcmpView(m);
  assert.ok(v.verifyChecksum());
  assert.equal(v.identifier, 77);
  assert.deepEqual(buildIcmp(parseIcmp(v)), m);
});

test('ICMPv6 echo and neighbour discovery', () => {
  const echo = buildIcmpv6({ type: 128, code: 0, body: echoBody(1, 2, bytes(10)) }, v6);
  assert.deepEqual(buildIcmpv6(parseIcmpv6(new Icmpv6View(echo)), v6), echo);
  const mac = parseMac('02:00:00:00:00:01');
  const msgs = [
    { kind: 'ns' as const, target: 'fd00::2', options: [linkLayerOption(1, mac)] },
    { kind: 'na' as const, router: true, solicited: true, override: false, target: 'fd00::2', options: [linkLayerOption(2, mac)] },
    { kind: 'rs' as const, options: [linkLayerOption(1, mac)] },
    { kind: 'ra' as const, hopLimit: 64, flags: 0xc0, routerLifetime: 1800, reachableTime: 30000, retransTimer: 1000, options: [linkLayerOption(1, mac), mtuOption(1400), prefixOption('fd00:1::', 64)] },
  ];
  for (const nd of msgs) {
    const wire = buildIcmpv6(ndToIcmpv6(nd), v6);
    const view = new Icmpv6View(wire);
    assert.ok(view.isNeighborDiscovery);
    const back = parseNd(view);
    assert.deepEqual(buildIcmpv6(ndToIcmpv6(back), v6), wire);
    const pkt = buildIpv6({ ...v6, protocol: 58, hopLimit: 255, payload: wire });
    assert.ok(verifyTransportChecksum(pkt, 0, 40, pkt.length, 58));
  }
  assert.equal(new Icmpv6View(buildIcmpv6(ndToIcmpv6(msgs[0]!), v6)).linkLayerAddress(1), '02:00:00:00:00:01');
});

test('TUN packet information and virtio_net_hdr', () => {
  const b = new Uint8Array(12);
  const h = { flags: 1, gsoType: 4, hdrLen: 74, gsoSize: 1428, csumStart: 40, csumOffset: 16, numBuffers: 1 };
  encodeVnetHdr(h, b, 0, 12);
  assert.deepEqual(decodeVnetHdr(b, 0, 12), h);
  encodePacketInfo(b, 0, 0x86dd);
  assert.deepEqual(decodePacketInfo(b), { flags: 0, protocol: 0x86dd, stripped: false });
});

test('IPv4 header checksum equals the reference computation', () => {
  // RFC 1071 style example header.
  const hdr = Uint8Array.from([0x45, 0, 0, 0x73, 0, 0, 0x40, 0, 0x40, 0x11, 0, 0, 0xc0, 0xa8, 0, 1, 0xc0, 0xa8, 0, 0xc7]);
  assert.equal(internetChecksum(hdr), 0xb861);
  assert.equal(encodeTcpOptions({}).length, 0);
});
