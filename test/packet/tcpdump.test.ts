// describe() prints what tcpdump prints. Real kernel traffic between two namespaces, through two
// TAPs joined in user space, is written to a pcap as it passes: record-route pings (IPv4
// options), big pings and UDP datagrams (IPv4 fragments, IPv6 fragment headers), MLD reports
// and router solicitations from interfaces coming up (hop-by-hop header), UDP with destination
// options and hop-by-hop headers set by socat, a TCP transfer that loses a segment on the wire
// (SACK), and the ICMP/ICMPv6 errors that quote them. `tcpdump -r FILE -n -S -t` reads the file
// and every one of its lines must equal ours for the same frame (our line starts with the MACs,
// which tcpdump prints only with -e). Crafted packets cover the TCP options and ICMP messages a
// Linux peer does not send.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestNet, nsRun } from '../helpers/netns.js';
import { openTap, type PacketBatch, type TunDevice } from '../../src/device/index.js';
import {
  openCaptureFile, LinkType, describe, summarize, PcapWriter, buildIpv4, buildIpv6, buildTcp, buildUdp, buildIcmp, buildIcmpv6,
  buildArp, buildEthernet, echoBody, optionsExtension, fragmentExtension, TcpFlags,
} from '../../src/packet/index.js';
import { pump, addAddresses, startEchoServers, waitFor, clientTraffic } from './wire.js';

const net = new TestNet();
const dir = mkdtempSync(join(tmpdir(), 'tuntap-tcpdump-'));
after(() => { net.cleanup(); rmSync(dir, { recursive: true, force: true }); });

/** tcpdump's line per packet (continuation lines, which start with a tab, dropped). */
function tcpdump(file: string): string[] {
  const out = execFileSync('tcpdump', ['-r', file, '-n', '-S', '-t'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  return out.split('\n').filter((line) => line !== '' && !line.startsWith('\t'));
}

const withoutMacs = (line: string) => line.replace(/^[0-9a-f:]{17} > [0-9a-f:]{17}, /, '');

const SEND_UDP = `
const dgram = require('node:dgram');
const [host, port, size] = process.argv.slice(1);
const s = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
s.send(Buffer.alloc(Number(size), 0x55), Number(port), host, (e) => { s.close(); if (e) throw e; });`;

test('describe() agrees with tcpdump on real traffic: IP options, IPv6 extension headers, fragments, TCP options', async () => {
  const a = net.namespace('ta'); const b = net.namespace('tb');
  const tapA = openTap({ netns: a }); const tapB = openTap({ netns: b });
  const file = join(dir, 'real.pcap');
  const pcap = openCaptureFile(file, { linkType: LinkType.ETHERNET });
  const frames: Buffer[] = [];
  let dataSegments = 0;
  let dropped = false;
  const stop = new AbortController();
  const forward = async (batch: PacketBatch, to: TunDevice) => {
    const pkts: Buffer[] = [];
    for (let i = 0; i < batch.count; i++) {
      const p = batch.packet(i);
      const s = summarize(p, 'ethernet');
      // Lose the fifth data segment of the transfer once, so the receiver answers with SACK.
      if (!dropped && s.tcp && s.tcp.dstPort === 40001 && s.tcp.payloadLength > 0 && ++dataSegments === 5) { dropped = true; continue; }
      frames.push(Buffer.from(p));
      pcap.write(p);
      pkts.push(p);
    }
    if (pkts.length) await to.writeBatch(pkts);
  };
  const pumps = [pump(tapA, tapB, stop.signal, forward), pump(tapB, tapA, stop.signal, forward)];
  try {
    // Coming up with IPv6 sends MLD reports (hop-by-hop) and router solicitations.
    addAddresses(a, tapA.name, '198.18.61.1/24', 'fd00:61::1/64');
    addAddresses(b, tapB.name, '198.18.61.2/24', 'fd00:61::2/64');
    const server = startEchoServers(b, '198.18.61.2', 'fd00:61::2', 40001, 40002);
    await waitFor(server, 'ready');
    const pings = [
      ['-c', '1', '-R', '198.18.61.2'], // record route: a 40-byte IPv4 option in request and reply
      ['-c', '1', '-s', '3000', '198.18.61.2'],
      ['-6', '-c', '1', '-s', '3000', 'fd00:61::2'],
    ];
    for (const args of pings) {
      const r = await nsRun(a, 'ping', ['-W', '2', ...args]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
    }
    const out = await clientTraffic(a, ['198.18.61.2', 'fd00:61::2'], 40001, 40002, 200_000);
    assert.match(out, /198\.18\.61\.2 200000 intact/);
    // To a closed port: ICMP errors quoting the datagram (fragmented when large).
    for (const [host, size] of [['198.18.61.2', 20], ['fd00:61::2', 20], ['198.18.61.2', 3000], ['fd00:61::2', 3000]] as const) {
      const r = await nsRun(a, process.execPath, ['-e', SEND_UDP, host, '40003', String(size)]);
      assert.equal(r.code, 0, r.stderr);
    }
    // IPV6_DSTOPTS (59) and IPV6_HOPOPTS (54): an 8-byte header holding one PadN option.
    for (const opt of [59, 54]) {
      const r = await nsRun(a, 'sh', ['-c', `echo dump | socat - 'UDP6-SENDTO:[fd00:61::2]:40003,setsockopt-bin=41:${opt}:x0000010400000000'`]);
      assert.equal(r.code, 0, r.stderr);
    }
    await new Promise((r) => setTimeout(r, 300)); // the last replies
  } finally {
    stop.abort();
    await Promise.all(pumps);
    pcap.close();
    await tapA.close(); await tapB.close();
  }

  const theirs = tcpdump(file);
  assert.equal(theirs.length, frames.length, theirs.join('\n'));
  const ours = frames.map((f) => withoutMacs(describe(f, 'ethernet')));
  const differ = ours.flatMap((line, i) => line === theirs[i] ? [] : [`frame ${i + 1}\n  ours:    ${line}\n  tcpdump: ${theirs[i]}`]);
  assert.equal(differ.length, 0, `${differ.length} lines differ:\n${differ.slice(0, 12).join('\n')}`);

  // The traffic held every case the comparison is for.
  const seen = (re: RegExp, what: string) => assert.ok(ours.some((l) => re.test(l)), `captured ${what}`);
  const summaries = frames.map((f) => summarize(f, 'ethernet'));
  assert.ok(summaries.some((s) => s.ip?.version === 4 && s.ip.headerLength === 60 && s.icmp?.type === 8), 'an echo request with record route');
  seen(/ICMP echo request, id \d+, seq 1, length 64$/, 'the record-route echo as 64 bytes');
  seen(/ICMP echo request, id \d+, seq 1, length 1480$/, 'a first IPv4 fragment');
  seen(/: ip-proto-1$/, 'a later IPv4 fragment');
  seen(/: frag \(0\|1448\) ICMP6, echo request/, 'a first IPv6 fragment');
  seen(/: frag \(1448\|1448\)$/, 'a later IPv6 fragment');
  seen(/: frag \(0\|1448\) \d+ > 40003: UDP, length 3000$/, 'a fragmented UDP datagram');
  seen(/: HBH ICMP6, multicast listener report v2, \d+ group record\(s\), length \d+$/, 'an MLD report');
  seen(/: DSTOPT \d+ > 40003: UDP, length 5$/, 'UDP after destination options');
  seen(/: HBH \d+ > 40003: UDP, length 5$/, 'UDP after hop-by-hop options');
  seen(/Flags \[S\], seq \d+, win \d+, options \[mss 1460,sackOK,TS val \d+ ecr 0,nop,wscale \d+\], length 0$/, 'a SYN with options');
  seen(/options \[nop,nop,TS val \d+ ecr \d+,nop,nop,sack 1 \{\d+:\d+\}\]/, 'a SACK');
  seen(/ICMP 198\.18\.61\.2 udp port 40003 unreachable/, 'an ICMP port unreachable');
  seen(/ICMP6, destination unreachable, unreachable port, fd00:61::2 udp port 40003/, 'an ICMPv6 port unreachable');
  seen(/^ARP, Request who-has 198\.18\.61\.2 tell 198\.18\.61\.1, length 28$/, 'an ARP request');
  seen(/ICMP6, neighbor advertisement, tgt is fd00:61::2, length 32$/, 'a neighbour advertisement');
});

/** Crafted IP packets (raw) for what a Linux peer does not send, each checked against tcpdump. */
function crafted(): Uint8Array[] {
  const ip4 = { src: '198.18.0.1', dst: '198.18.0.2' }; const ip6 = { src: 'fd00::1', dst: 'fd00::2' };
  const tcp4 = (options: number[], flags = TcpFlags.SYN | TcpFlags.ACK, payload = 0) => buildIpv4({ ...ip4, protocol: 6,
    payload: buildTcp({ srcPort: 5001, dstPort: 5002, seq: 100, ack: 200, flags, window: 300, urgent: 7, options: Uint8Array.from(options), payload: new Uint8Array(payload) }, ip4) });
  const udp4 = buildUdp({ srcPort: 5001, dstPort: 5002, payload: new Uint8Array(4) }, ip4);
  const quoted4 = buildIpv4({ ...ip4, protocol: 17, payload: udp4 }).subarray(0, 28);
  const quoted6 = buildIpv6({ ...ip6, protocol: 6, payload: buildTcp({ srcPort: 5001, dstPort: 5002, seq: 1, ack: 0, flags: TcpFlags.SYN, window: 1, payload: new Uint8Array(0) }, ip6) });
  const icmp4 = (type: number, code: number, rest = 0, payload: Uint8Array = quoted4) => buildIpv4({ ...ip4, protocol: 1, payload: buildIcmp({ type, code, rest, payload }) });
  const icmp6 = (type: number, code: number, body: Uint8Array, extensions: ReturnType<typeof optionsExtension>[] = []) =>
    buildIpv6({ ...ip6, protocol: 58, extensions, payload: buildIcmpv6({ type, code, body }, ip6) });
  const pkts: Uint8Array[] = [
    // TCP options: every kind in order with nop and eol, a wrong length, an unknown kind, a walk that fails.
    tcp4([2, 4, 5, 180, 1, 1, 0, 0]),
    tcp4([1, 1, 5, 18, 0, 0, 0, 1, 0, 0, 0, 9, 0, 0, 0, 20, 0, 0, 0, 30, 0, 0]),
    tcp4([3, 3, 7, 8, 10, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0]),
    tcp4([3, 4, 7, 0]), tcp4([4, 3, 0, 0]), tcp4([8, 8, 0, 0, 0, 1, 0, 0, 0, 0]), tcp4([5, 2, 0, 0]), tcp4([5, 6, 0, 0, 0, 1]),
    tcp4([99, 4, 1, 2]), tcp4([99, 2, 0, 0]), tcp4([253, 4, 0x12, 0x34]), tcp4([6, 6, 0, 0, 0, 1]), tcp4([7, 6, 0, 0, 0, 1]), tcp4([11, 6, 0, 0, 0, 1]),
    tcp4([2, 5, 1, 2, 3, 0, 0, 0]), tcp4([0, 2, 4, 5, 180]),
    // Flags in tcpdump's order, the urgent pointer, sequence ranges.
    ...[0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0xff, 0x38, 0].map((f) => tcp4([], f, 3)),
    // ICMP: every unreachable code, redirects, time exceeded, parameter problem, queries.
    ...Array.from({ length: 17 }, (_, code) => icmp4(3, code)),
    icmp4(3, 4, 1400), icmp4(3, 3, 0, buildIpv4({ ...ip4, protocol: 132, payload: new Uint8Array(12) }).subarray(0, 28)),
    ...[0, 1, 2, 3, 4].map((code) => icmp4(5, code, 0xc6120003)),
    icmp4(11, 0), icmp4(11, 1), icmp4(11, 2), icmp4(12, 0, 0x14000000),
    ...[4, 10, 13, 15, 16, 17, 30, 42].map((type) => icmp4(type, 0, 0, new Uint8Array(12))),
    // ICMPv6: errors quoting a packet, ND, MLD, an unknown type; behind a hop-by-hop header too.
    ...[0, 1, 2, 3, 4].map((code) => icmp6(1, code, Buffer.concat([Buffer.alloc(4), quoted6]))),
    ...[0, 1, 2, 3].map((code) => icmp6(4, code, Buffer.concat([Buffer.from([0, 0, 0, 6]), quoted6]))),
    icmp6(2, 0, Buffer.concat([Buffer.from([0, 0, 5, 0]), quoted6])), icmp6(3, 0, Buffer.concat([Buffer.alloc(4), quoted6])), icmp6(3, 1, Buffer.alloc(4)),
    icmp6(128, 0, echoBody(1, 2, new Uint8Array(10)), [optionsExtension(0)]), icmp6(129, 0, echoBody(3, 4)),
    icmp6(133, 0, new Uint8Array(4)), icmp6(134, 0, new Uint8Array(12)), icmp6(137, 0, new Uint8Array(36)),
    icmp6(130, 0, new Uint8Array(24)), icmp6(131, 0, new Uint8Array(20)), icmp6(132, 0, new Uint8Array(20)), icmp6(143, 0, Buffer.from([0, 0, 0, 3])),
    // IPv6 extension headers before TCP/UDP: ports print without addresses.
    buildIpv6({ ...ip6, protocol: 6, extensions: [optionsExtension(0)], payload: buildTcp({ srcPort: 5001, dstPort: 5002, seq: 1, ack: 0, flags: TcpFlags.SYN, window: 1, options: { mss: 1440 }, payload: new Uint8Array(0) }, ip6) }),
    buildIpv6({ ...ip6, protocol: 17, extensions: [optionsExtension(0), optionsExtension(60)], payload: buildUdp({ srcPort: 5001, dstPort: 5002, payload: new Uint8Array(7) }, ip6) }),
    buildIpv6({ ...ip6, protocol: 17, extensions: [{ type: 43, data: Uint8Array.from([0, 1, 0, 0, 0, 0, 0xfd, ...new Array(14).fill(0), 3]) }], payload: buildUdp({ srcPort: 5001, dstPort: 5002, payload: new Uint8Array(4) }, ip6) }),
    buildIpv6({ ...ip6, protocol: 17, extensions: [{ type: 51, data: Uint8Array.from([0, 0, 0, 0, 0, 0, 0, 1, 0, 0]) }], payload: buildUdp({ srcPort: 5001, dstPort: 5002, payload: new Uint8Array(4) }, ip6) }),
    buildIpv6({ ...ip6, protocol: 17, extensions: [fragmentExtension(0, false, 9)], payload: buildUdp({ srcPort: 5001, dstPort: 5002, payload: new Uint8Array(7) }, ip6) }),
    buildIpv6({ ...ip6, protocol: 6, extensions: [fragmentExtension(16, false, 9)], payload: new Uint8Array(16) }),
    buildIpv6({ ...ip6, protocol: 50, payload: new Uint8Array(24) }),
    // IPv4: options, fragments, an unknown protocol, UDP lengths that lie.
    buildIpv4({ ...ip4, protocol: 17, options: Uint8Array.from([7, 11, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0]), payload: buildUdp({ srcPort: 5001, dstPort: 5002, payload: new Uint8Array(7) }, ip4) }),
    buildIpv4({ ...ip4, protocol: 6, moreFragments: true, identification: 77, payload: buildTcp({ srcPort: 5001, dstPort: 5002, seq: 1, ack: 0, flags: TcpFlags.SYN, window: 1, payload: new Uint8Array(0) }, ip4) }),
    buildIpv4({ ...ip4, protocol: 6, fragmentOffset: 8, identification: 77, payload: new Uint8Array(16) }),
    buildIpv4({ ...ip4, protocol: 200, payload: new Uint8Array(12) }),
    buildIpv4({ ...ip4, protocol: 17, payload: Uint8Array.from([0, 1, 0, 2, 0, 4, 0, 0]) }),
    buildIpv4({ ...ip4, protocol: 17, payload: Uint8Array.from([0, 1, 0, 2, 0, 40, 0, 0]) }),
  ];
  return pkts;
}

test('describe() agrees with tcpdump on crafted TCP options, ICMP/ICMPv6 messages and IPv6 extension headers', () => {
  const write = (name: string, linkType: number, frames: Uint8Array[]): string => {
    const chunks: Uint8Array[] = [];
    const w = new PcapWriter((c) => chunks.push(c), { linkType });
    for (const f of frames) w.write(f, 0n);
    w.flush();
    const file = join(dir, name);
    writeFileSync(file, Buffer.concat(chunks));
    return file;
  };
  const raw = crafted();
  const theirs = tcpdump(write('crafted.pcap', LinkType.RAW, raw));
  assert.equal(theirs.length, raw.length);
  const differ = raw.flatMap((p, i) => describe(p, 'raw') === theirs[i] ? [] : [`packet ${i}\n  ours:    ${describe(p, 'raw')}\n  tcpdump: ${theirs[i]}`]);
  assert.equal(differ.length, 0, `${differ.length} lines differ:\n${differ.join('\n')}`);

  // ARP (its length is the Ethernet payload's, padding included) behind Ethernet.
  const eth = (payload: Uint8Array) => buildEthernet({ src: '02:00:00:00:00:01', dst: '02:00:00:00:00:02', etherType: 0x0806, payload });
  const arp = (operation: number, targetMac: string) => buildArp({ operation, senderMac: '02:00:00:00:00:01', senderIp: '198.18.0.1', targetMac, targetIp: '198.18.0.2' });
  const frames = [eth(arp(1, '02:00:00:00:00:02')), eth(arp(2, '02:00:00:00:00:02')), eth(Buffer.concat([arp(1, '00:00:00:00:00:00'), Buffer.alloc(18)]))];
  const arpLines = tcpdump(write('arp.pcap', LinkType.ETHERNET, frames));
  frames.forEach((f, i) => assert.equal(withoutMacs(describe(f, 'ethernet')), arpLines[i]));
});
