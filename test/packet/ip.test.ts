// IP of either version as one view (IpView), and the packets built on it for the applications:
// UDP in IP (the proxy's UDP path), TCP resets and bare segments (the NAT), echo replies.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  IpView, PacketParseError, IpProtocol, TcpFlags, buildIpv4, buildIpv6, buildTcp, buildUdp, buildIcmp, buildIcmpv6,
  optionsExtension, fragmentExtension, parseIP, internetChecksum, verifyTransportChecksum, TcpView,
  parseUdpPacket, buildUdpPacket, buildTcpReset, buildBareTcpSegment, echoReplyInPlace, echoBody, writeIpHeader, summarize,
} from '../../src/packet/index.js';

const v4 = { src: '198.18.0.1', dst: '198.19.0.2' };
const v6 = { src: 'fd00::1', dst: 'fd00:2::2' };
const addressBytes = (text: string): Buffer => Buffer.from(parseIP(text));

function udpPacket(ip: { src: string; dst: string }, payload: Uint8Array, opts: { options?: Uint8Array } = {}): Buffer {
  const udp = buildUdp({ srcPort: 5353, dstPort: 53, payload }, ip);
  return ip.src.includes(':') ? buildIpv6({ ...ip, protocol: IpProtocol.UDP, payload: udp })
    : buildIpv4({ ...ip, protocol: IpProtocol.UDP, payload: udp, ...opts });
}

test('IpView: where the addresses, the upper layer and the end are, for either version', () => {
  const ip = new IpView();
  const p4 = udpPacket(v4, new Uint8Array(5), { options: Uint8Array.of(1, 1, 1, 1) });
  const padded = Buffer.concat([p4, Buffer.alloc(7)]);
  ip.wrap(padded);
  assert.deepEqual([ip.version, ip.upperProtocol, ip.upperOffset, ip.payloadEnd, ip.srcOffset, ip.dstOffset, ip.addressLength, ip.isFragment],
    [4, IpProtocol.UDP, 24, p4.length, 12, 16, 4, false]);
  assert.equal(ip.upperLength, 13);
  assert.ok(ip.srcEquals(addressBytes(v4.src)) && ip.dstEquals(addressBytes(v4.dst)) && !ip.srcEquals(addressBytes(v4.dst)));

  const udp = buildUdp({ srcPort: 1, dstPort: 2, payload: new Uint8Array(3) }, v6);
  const p6 = buildIpv6({ ...v6, protocol: IpProtocol.UDP, extensions: [optionsExtension(0), optionsExtension(60)], payload: udp });
  ip.wrap(p6);
  assert.deepEqual([ip.version, ip.upperProtocol, ip.upperOffset, ip.payloadEnd, ip.srcOffset, ip.dstOffset, ip.addressLength, ip.extensionCount],
    [6, IpProtocol.UDP, 56, p6.length, 8, 24, 16, 2]);
  const frag = buildIpv6({ ...v6, protocol: IpProtocol.UDP, extensions: [fragmentExtension(8, false, 1)], payload: new Uint8Array(16) });
  assert.ok(ip.tryWrap(frag) && ip.isFragment);
});

test('IpView: tryWrap answers false where wrap throws, for every malformed header', () => {
  const good4 = udpPacket(v4, new Uint8Array(5));
  const good6 = udpPacket(v6, new Uint8Array(5));
  const bad: [string, Buffer][] = [
    ['empty', Buffer.alloc(0)],
    ['version 5', Buffer.from([0x55, ...good4.subarray(1)])],
    ['IHL 4: the header would end inside the fixed fields', Buffer.from([0x44, ...good4.subarray(1)])],
    ['IHL 0', Buffer.from([0x40, ...good4.subarray(1)])],
    ['IPv4 total length past the buffer', good4.subarray(0, good4.length - 1)],
    ['IPv4 shorter than its header', good4.subarray(0, 19)],
    ['IPv4 total length below its header length', (() => { const b = Buffer.from(good4); b.writeUInt16BE(19, 2); return b; })()],
    ['IPv6 payload length past the buffer', good6.subarray(0, good6.length - 1)],
    ['IPv6 shorter than its header', good6.subarray(0, 39)],
  ];
  const ip = new IpView();
  for (const [what, b] of bad) {
    assert.equal(ip.tryWrap(b), false, what);
    assert.throws(() => ip.wrap(b), PacketParseError, what);
  }
  assert.ok(ip.tryWrap(good4) && ip.tryWrap(good6));
});

test('UDP packets for a TUN are built with valid checksums and parse back; anything else parses to nothing', () => {
  for (const [src, dst] of [['198.18.2.2', '198.19.0.1'], ['fd00:2::2', 'fd00:7475::1']] as const) {
    const pkt = buildUdpPacket(addressBytes(src), 53, addressBytes(dst), 40000, Buffer.from('answer'));
    const isV4 = src.includes('.');
    if (isV4) assert.equal(internetChecksum(pkt, 0, 20), 0);
    assert.ok(verifyTransportChecksum(pkt, 0, isV4 ? 20 : 40, pkt.length, IpProtocol.UDP));
    const d = parseUdpPacket(pkt)!;
    assert.deepEqual({ family: d.family, srcPort: d.srcPort, dstPort: d.dstPort, payload: d.payload.toString() },
      { family: isV4 ? 4 : 6, srcPort: 53, dstPort: 40000, payload: 'answer' });
    assert.deepEqual([d.srcAddr, d.dstAddr], [addressBytes(src), addressBytes(dst)]);
    assert.equal(parseUdpPacket(pkt.subarray(0, pkt.length - 3)), undefined, 'truncated');
  }
  const good = udpPacket(v4, Buffer.from('payload'));
  // IHL 4 would read the UDP header from byte 16 on (the destination address), taking the real
  // source port, 12 here, for the UDP length.
  const ported = buildIpv4({ ...v4, protocol: IpProtocol.UDP, payload: buildUdp({ srcPort: 12, dstPort: 53, payload: Buffer.from('payload') }, v4) });
  for (const ihl of [0, 4]) assert.equal(parseUdpPacket(Buffer.from([0x40 | ihl, ...ported.subarray(1)])), undefined, `IHL ${ihl}`);
  const fragment = Buffer.from(good);
  fragment[6] = 0x20; // more fragments
  assert.equal(parseUdpPacket(fragment), undefined, 'a first fragment holds part of the datagram');
  const tcp = buildIpv4({ ...v4, protocol: IpProtocol.TCP, payload: buildTcp({ srcPort: 1, dstPort: 2, seq: 0, ack: 0, flags: 0, window: 0, payload: new Uint8Array(0) }, v4) });
  assert.equal(parseUdpPacket(tcp), undefined, 'not UDP');
  // The 16-bit length fields set the limit: past it the lengths would wrap.
  const [a4, a6] = [addressBytes(v4.src), addressBytes(v6.src)];
  assert.equal(buildUdpPacket(a4, 1, a4, 2, new Uint8Array(65507)).readUInt16BE(2), 65535);
  assert.throws(() => buildUdpPacket(a4, 1, a4, 2, new Uint8Array(65508)), RangeError);
  assert.equal(buildUdpPacket(a6, 1, a6, 2, new Uint8Array(65527)).readUInt16BE(4), 65535);
  assert.throws(() => buildUdpPacket(a6, 1, a6, 2, new Uint8Array(65528)), RangeError);
  const longUdp = Buffer.from(good);
  longUdp.writeUInt16BE(200, 24);
  assert.equal(parseUdpPacket(longUdp), undefined, 'UDP length past the IP payload');
  // A UDP length below the 8-byte header would make the payload end before it starts.
  for (const length of [0, 7]) {
    const shortUdp = Buffer.from(good);
    shortUdp.writeUInt16BE(length, 24);
    assert.equal(parseUdpPacket(shortUdp), undefined, `UDP length ${length}`);
  }
});

test('TcpView: tryWrap answers false where wrap throws, for a data offset below 5 words or past the segment', () => {
  const seg = buildTcp({ srcPort: 1, dstPort: 2, seq: 0, ack: 0, flags: TcpFlags.SYN, window: 1, payload: new Uint8Array(8) }, v4);
  const tcp = new TcpView();
  assert.ok(tcp.tryWrap(seg));
  for (const [what, offsetWords, end] of [['offset 4', 4, seg.length], ['offset 0', 0, seg.length], ['offset 8 on 28 bytes', 8, seg.length],
    ['offset 15', 15, seg.length], ['offset 6 on 23 bytes', 6, 23]] as const) {
    const b = Buffer.from(seg);
    b[12] = (offsetWords << 4) | (b[12]! & 0x0f);
    assert.equal(tcp.tryWrap(b, 0, end), false, what);
    assert.throws(() => tcp.wrap(b, 0, end), PacketParseError, what);
  }
});

test('TCP resets answer a segment the way a closed port does, with valid checksums', () => {
  const ip = new IpView();
  const tcp = new TcpView();
  for (const addrs of [v4, v6]) {
    const family = addrs.src.includes(':') ? 6 : 4;
    const segment = (flags: number, payload: Uint8Array) => {
      const t = buildTcp({ srcPort: 40000, dstPort: 80, seq: 0xfffffff0, ack: 777, flags, window: 100, payload }, addrs);
      return family === 4 ? buildIpv4({ ...addrs, protocol: IpProtocol.TCP, payload: t }) : buildIpv6({ ...addrs, protocol: IpProtocol.TCP, payload: t });
    };
    const answer = (p: Buffer) => {
      ip.wrap(p);
      tcp.wrap(p, ip.upperOffset, ip.payloadEnd);
      const r = buildTcpReset(ip, tcp);
      const s = summarize(r, 'raw');
      assert.equal(s.error, undefined);
      assert.ok(s.tcp!.checksumOk && (family === 6 || s.ip!.headerChecksumOk));
      assert.deepEqual([s.ip!.src, s.ip!.dst, s.tcp!.srcPort, s.tcp!.dstPort], [addrs.dst, addrs.src, 80, 40000]);
      return s.tcp!;
    };
    // No ACK: acknowledge what it occupied (SYN, FIN and data each count; the sequence wraps).
    const syn = answer(segment(TcpFlags.SYN, new Uint8Array(0)));
    assert.deepEqual([syn.flags, syn.seq, syn.ack], [TcpFlags.RST | TcpFlags.ACK, 0, 0xfffffff1]);
    const data = answer(segment(TcpFlags.FIN, new Uint8Array(20)));
    assert.deepEqual([data.flags, data.ack], [TcpFlags.RST | TcpFlags.ACK, 5]);
    // With an ACK: a bare RST at the sequence number it acknowledged.
    const acked = answer(segment(TcpFlags.ACK | TcpFlags.PSH, new Uint8Array(3)));
    assert.deepEqual([acked.flags, acked.seq, acked.ack], [TcpFlags.RST, 777, 0]);
  }
  const bare = summarize(buildBareTcpSegment(addressBytes('fd00::9'), addressBytes('fd00::8'), { srcPort: 1, dstPort: 2, seq: 3, ack: 4, flags: TcpFlags.RST }), 'raw');
  assert.deepEqual([bare.ip!.src, bare.ip!.dst, bare.tcp!.seq, bare.tcp!.flags, bare.tcp!.checksumOk], ['fd00::9', 'fd00::8', 3, TcpFlags.RST, true]);
});

test('writeIpHeader: IPv4 with DF and a valid header checksum, or IPv6; hop limit 64', () => {
  const out = Buffer.alloc(60, 0xaa);
  assert.equal(writeIpHeader(out, addressBytes(v4.src), addressBytes(v4.dst), IpProtocol.UDP, 8), 20);
  const s4 = summarize(out.subarray(0, 28), 'raw');
  assert.deepEqual([s4.ip!.src, s4.ip!.dst, s4.ip!.ttl, s4.ip!.length, s4.ip!.headerChecksumOk], [v4.src, v4.dst, 64, 28, true]);
  assert.equal(out[6], 0x40, 'DF');
  assert.equal(writeIpHeader(out, addressBytes(v6.src), addressBytes(v6.dst), IpProtocol.TCP, 20), 40);
  const s6 = summarize(out.subarray(0, 60), 'raw');
  assert.deepEqual([s6.ip!.version, s6.ip!.protocol, s6.ip!.ttl, s6.ip!.length], [6, IpProtocol.TCP, 64, 60]);
  assert.equal(out.readUInt32BE(0), 0x60000000, 'no traffic class or flow label left from the buffer');
});

test('echo requests become replies in place; anything else is left alone', () => {
  for (const [ip, code] of [[v4, 0], [v6, 0], [v4, 9]] as const) {
    const isV4 = !ip.src.includes(':');
    const data = Buffer.from('ping payload');
    const pkt = isV4
      ? buildIpv4({ ...ip, protocol: IpProtocol.ICMP, payload: buildIcmp({ type: 8, code, identifier: 0x1234, sequence: 7, payload: data }) })
      : buildIpv6({ ...ip, protocol: IpProtocol.ICMPv6, payload: buildIcmpv6({ type: 128, code, body: echoBody(0x1234, 7, data) }, ip) });
    assert.ok(echoReplyInPlace(pkt));
    const s = summarize(pkt, 'raw');
    assert.deepEqual([s.ip!.src, s.ip!.dst, s.icmp!.type, s.icmp!.code, s.icmp!.id, s.icmp!.seq, s.icmp!.checksumOk],
      [ip.dst, ip.src, isV4 ? 0 : 129, code, 0x1234, 7, true]);
    if (isV4) assert.ok(s.ip!.headerChecksumOk);
    const before = Buffer.from(pkt);
    assert.equal(echoReplyInPlace(pkt), false, 'a reply is not answered');
    assert.deepEqual(pkt, before);
  }
  const request = buildIpv4({ ...v4, protocol: IpProtocol.ICMP, payload: buildIcmp({ type: 8, code: 0, payload: new Uint8Array(4) }) });
  const fragment = Buffer.from(request);
  fragment[6] = 0x20;
  const truncated = request.subarray(0, 27);
  const cut = Buffer.from(request.subarray(0, 24));
  cut.writeUInt16BE(24, 2); // a whole packet whose ICMP header stops after 4 bytes
  for (const [what, p] of [['fragment', fragment], ['truncated', truncated], ['short ICMP', cut]] as const) {
    const before = Buffer.from(p);
    assert.equal(echoReplyInPlace(p), false, what);
    assert.deepEqual(p, before, what);
  }
});
