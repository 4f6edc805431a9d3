// Proxy layer, packet side: what tun2socks reads from the TUN and from its UDP relay. The TCP NAT
// translates packets in place, parseUdpPacket and the DNS parser take datagrams apart, and
// socks5UdpUnwrap reads the relay's answers (the codecs are packet's; these are their inputs here). None may throw; the NAT's output must be a packet
// the kernel accepts, and a host name learned from DNS must be safe to hand to a proxy.
import { TcpNat } from '../../../src/proxy/nat.js';
import { FakeIpPool } from '../../../src/proxy/fake-ip.js';
import { parseQuery, buildAnswer, TYPE_A, TYPE_AAAA } from '../../../src/packet/dns.js';
import { parseUdpPacket, buildUdpPacket } from '../../../src/packet/udp-packet.js';
import { socks5UdpUnwrap, socks5UdpWrap } from '../../../src/packet/socks.js';
import { buildIpv4, buildIpv6, buildTcp, TcpFlags, internetChecksum, verifyTransportChecksum } from '../../../src/packet/index.js';
import { formatIP, parseIP } from '../../../src/addr.js';
import { check, guarded, type BytesTarget, type Instance } from '../framework.js';

const TCP = 6;
const RST = 0x04;
const NAT = { local4: '198.18.0.1', fake4: '198.18.0.2', local6: 'fd00::1', fake6: 'fd00::2' };
const LISTEN4 = [7001, 7002];
const LISTEN6 = 7003;
const PORT_MIN = 20000;
const PORTS = 64;
const MAX_SESSIONS = 48;

// NAT input layout: [flags][IP packet]. The flags stand for what the relay and the clock do.
const PARTIAL = 0x01;      // the TCP checksum is CHECKSUM_PARTIAL (vnet header NEEDS_CSUM)
const CLOSE = 0x02;        // the relay closes this packet's connection afterwards
const OPEN = 0x04;         // the listener accepted it
const SWEEP = 0x08;        // the periodic sweep runs

/** A TCP segment's IP packet with correct checksums. */
function segment(src: string, dst: string, srcPort: number, dstPort: number, flags: number, payload = new Uint8Array(0)): Uint8Array {
  const ip = { src, dst };
  const tcp = buildTcp({ srcPort, dstPort, seq: 1000, ack: flags & TcpFlags.ACK ? 5000 : 0, flags, window: 65535, payload }, ip);
  return src.includes(':') ? buildIpv6({ ...ip, protocol: TCP, payload: tcp }) : buildIpv4({ ...ip, protocol: TCP, payload: tcp });
}

/** An application's connection and the kernel's answers on the port the NAT gives it (ports are handed out in order). */
function natCorpus(): Uint8Array[] {
  const { SYN, ACK, FIN, PSH } = TcpFlags;
  const app4 = ['198.18.5.5', '198.18.200.1'] as const;
  const app6 = ['fd00:5::5', 'fd00:200::1'] as const;
  const packets = [
    segment(app4[0], app4[1], 40000, 80, SYN),
    segment(NAT.local4, NAT.fake4, LISTEN4[0]!, PORT_MIN, SYN | ACK),
    segment(app4[0], app4[1], 40000, 80, ACK | PSH, new Uint8Array(100).fill(0x61)),
    segment(NAT.local4, NAT.fake4, LISTEN4[0]!, PORT_MIN, ACK | FIN),
    segment(app4[0], app4[1], 40000, 80, RST),
    segment(app4[0], app4[1], 40001, 25, SYN),  // refused by the rules: answered with a reset
    segment(app6[0], app6[1], 40000, 443, SYN),
    segment(NAT.local6, NAT.fake6, LISTEN6, PORT_MIN + 1, SYN | ACK),
    segment(app6[0], app6[1], 40000, 443, ACK, new Uint8Array(20)),
    segment(NAT.local4, NAT.fake4, LISTEN4[1]!, PORT_MIN + 9, ACK),  // no such entry: reset
  ];
  const withOptions = buildIpv4({ src: app4[0], dst: app4[1], protocol: TCP, options: Uint8Array.from([1, 1, 1, 0]),
    payload: buildTcp({ srcPort: 40002, dstPort: 80, seq: 1, ack: 0, flags: SYN, window: 9, payload: new Uint8Array(0) }, { src: app4[0], dst: app4[1] }) });
  packets.push(withOptions, buildUdpPacket(parseIP(app4[0]), 5353, parseIP(app4[1]), 53, new Uint8Array(12)));
  return packets.map((p) => Buffer.concat([Uint8Array.of(0), p]));
}

/** IPv4/IPv6 + TCP with the header and TCP checksums correct (what the kernel accepts). */
function wellFormed(b: Uint8Array): { l4: number; end: number; family: 4 | 6 } | undefined {
  const version = b.length > 0 ? b[0]! >> 4 : 0;
  let l4: number, end: number;
  if (version === 4) {
    if (b.length < 20 || b[9] !== TCP) return undefined;
    l4 = (b[0]! & 15) * 4; end = (b[2]! << 8) | b[3]!;
    if (l4 < 20 || end > b.length || l4 + 20 > end || internetChecksum(b, 0, l4) !== 0) return undefined;
  } else if (version === 6) {
    if (b.length < 60 || b[6] !== TCP) return undefined;
    l4 = 40; end = 40 + ((b[4]! << 8) | b[5]!);
    if (end > b.length || l4 + 20 > end) return undefined;
  } else return undefined;
  const dataOffset = (b[l4 + 12]! >> 4) * 4;
  if (dataOffset < 20 || l4 + dataOffset > end || !verifyTransportChecksum(b, 0, l4, end, TCP)) return undefined;
  return { l4, end, family: version === 4 ? 4 : 6 };
}

class NatSession implements Instance<Uint8Array> {
  private now = 1_000_000;
  private readonly nat = new TcpNat({
    ...NAT, listenPort4: LISTEN4, listenPort6: LISTEN6, portMin: PORT_MIN, portMax: PORT_MIN + PORTS - 1,
    maxSessions: MAX_SESSIONS, lingerMs: 500, acceptTimeoutMs: 2000,
    admit: (_family, _host, port) => port !== 25,
  });

  run(input: Uint8Array): string {
    const flags = input[0] ?? 0;
    const packet = Buffer.from(input.subarray(1));
    const before = Buffer.from(packet);
    const valid = !(flags & PARTIAL) && wellFormed(packet) !== undefined;
    this.now += (flags >> 4) * 100;
    const verdict = this.nat.translate(guarded(packet), this.now, (flags & PARTIAL) !== 0);
    let label: string;
    if (verdict === 'other' || verdict === 'drop') {
      check(packet.equals(before), `a packet the NAT answered "${verdict}" was changed`);
      label = verdict;
    } else if (verdict === 'forward') {
      if (valid) check(wellFormed(packet), 'a well-formed packet left the NAT with a bad checksum or shape');
      label = 'forward';
    } else {
      const reset = wellFormed(verdict);
      check(reset && (verdict[reset.l4 + 13]! & RST) !== 0, `the NAT answered with a reset the kernel would drop: ${verdict.toString('hex')}`);
      label = 'reset';
    }
    const port = packet.length >= 24 ? this.portOf(packet) : undefined;
    if (port !== undefined && flags & OPEN) this.nat.markOpen(port);
    if (port !== undefined && flags & CLOSE) this.nat.close(port, this.now);
    if (flags & SWEEP) this.nat.sweep(this.now);
    check(this.nat.size <= PORTS && this.nat.activeSessions <= MAX_SESSIONS, `NAT table grew to ${this.nat.size} (${this.nat.activeSessions} active)`);
    return label;
  }

  /** The NAT port a translated packet uses (its source or destination port). */
  private portOf(p: Buffer): number | undefined {
    const l4 = p[0]! >> 4 === 4 ? (p[0]! & 15) * 4 : 40;
    if (l4 + 4 > p.length) return undefined;
    const port = [p.readUInt16BE(l4), p.readUInt16BE(l4 + 2)].find((x) => x >= PORT_MIN && x < PORT_MIN + PORTS);
    return port;
  }
}

/** A DNS query for `name` (the question only), as a resolver sends it. */
function query(name: string, type: number, id = 0x1234): Uint8Array {
  const labels = name.split('.').filter(Boolean).map((l) => Buffer.concat([Uint8Array.of(l.length), Buffer.from(l, 'latin1')]));
  const head = Buffer.from([id >> 8, id & 0xff, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
  return Buffer.concat([head, ...labels, Uint8Array.of(0, type >> 8, type & 0xff, 0, 1)]);
}

/** A name another protocol can carry as it is: LDH labels (and _), dots only between them. */
const HOST_NAME = /^(?=.{1,253}$)[a-z0-9_](?:[a-z0-9_-]{0,62})(?:\.[a-z0-9_](?:[a-z0-9_-]{0,62}))*$/;

class FakeDns implements Instance<Uint8Array> {
  // A small pool with no quarantine, so recycling (the least recently used address goes first)
  // comes into play.
  private readonly pool = new FakeIpPool(['198.19.128.0/24', 'fd00:ff::/120'], { limit: 256, reuseAfterMs: 0 });

  run(msg: Uint8Array): string {
    const q = parseQuery(msg);
    if (!q) return 'not a query';
    check(q.end >= 17 && q.end <= msg.length, `question ends at ${q.end} of ${msg.length}`);
    if ((q.type !== TYPE_A && q.type !== TYPE_AAAA) || q.klass !== 1) return 'not answered';
    // As the engine's fake-IP mode does: an address for the name, later turned back into the name.
    const addresses = this.pool.addressesFor(q.name, q.type === TYPE_A ? 4 : 6);
    if (addresses.length === 0) return 'pool exhausted';
    const answer = buildAnswer(msg, q, addresses);
    check(answer.length === q.end + addresses.reduce((s, a) => s + 12 + a.length, 0), 'answer length');
    check(answer.readUInt16BE(0) === q.id && answer.readUInt16BE(6) === addresses.length, 'answer header');
    check(this.pool.size <= 2 * 254, `fake-IP pool grew to ${this.pool.size}`);
    const name = this.pool.nameOf(formatIP(addresses[0]!));
    check(name === q.name, 'the pool forgot the name it just handed out');
    check(HOST_NAME.test(name), `the fake-IP pool hands the proxy the name ${JSON.stringify(name)}, which is no host name`);
    return 'answered';
  }
}

const udpTarget = (t: Omit<BytesTarget, 'kind' | 'layer' | 'isTyped'>): BytesTarget => ({
  kind: 'bytes', layer: 'proxy', isTyped: () => false, guard: true, ...t,
});

export const proxyPacketTargets: BytesTarget[] = [
  {
    kind: 'bytes', name: 'proxy-nat', layer: 'proxy', isTyped: () => false, weight: 6, maxLength: 2048,
    about: 'TUN packets (app segments, kernel answers, resets; relay opens/closes, sweeps) into TcpNat.translate; output checksums, resets well formed, table bounded',
    firstBytes: [0, OPEN, CLOSE, SWEEP],
    corpus: natCorpus,
    create: () => new NatSession(),
  },
  udpTarget({
    name: 'proxy-dns', weight: 5, maxLength: 1024,
    about: 'DNS queries into parseQuery, then the fake-IP pool and buildAnswer as the engine uses them; names handed on must be host names',
    corpus: () => [query('example.test', TYPE_A), query('www.example.test', TYPE_AAAA, 7), query('a.b.c.d.e.f', TYPE_A),
      query('x'.repeat(63) + '.test', TYPE_A), query('mx.example.test', 15)],
    create: () => new FakeDns(),
  }),
  udpTarget({
    name: 'proxy-udp-packet', weight: 5, maxLength: 2048, firstBytes: [0x45, 0x60],
    about: 'IP packets into parseUdpPacket (the UDP path of tun2socks)',
    corpus: () => [buildUdpPacket(parseIP('198.18.5.5'), 5353, parseIP('198.18.200.1'), 53, query('example.test', TYPE_A)),
      buildUdpPacket(parseIP('fd00:5::5'), 40000, parseIP('fd00:200::1'), 443, new Uint8Array(30).fill(7))],
    create: () => ({
      run(b) {
        const d = parseUdpPacket(b);
        if (!d) return 'not udp';
        check(d.payload.length + 8 <= b.length && d.srcAddr.length === d.dstAddr.length, 'datagram decoded to impossible values');
        return 'datagram';
      },
    }),
  }),
  udpTarget({
    name: 'proxy-socks5-udp', weight: 5, maxLength: 2048, guard: false,  // guarded below, as the Buffer it takes
    about: 'datagrams from a SOCKS5 UDP relay into socks5UdpUnwrap',
    corpus: () => [socks5UdpWrap({ host: '198.18.200.1', port: 53 }, new Uint8Array(20)),
      socks5UdpWrap({ host: 'fd00:200::1', port: 443 }, Buffer.from('answer')),
      socks5UdpWrap({ host: 'dns.example.test', port: 53 }, new Uint8Array(0))],
    create: () => ({
      run(b) {
        const msg = guarded(Buffer.from(b));
        const u = socks5UdpUnwrap(msg);
        if (!u) return 'dropped';
        check(u.from.port >= 0 && u.from.port <= 65535 && u.payload.length <= msg.length, 'unwrapped to impossible values');
        return 'unwrapped';
      },
    }),
  }),
];
