// Real kernel traffic (ARP, NDP, ping, TCP, UDP; IPv4 and IPv6) between two namespaces through
// two TAPs joined in user space, captured with our pcap and pcapng writers: tshark opens both
// files, every packet's fields agree with our decoder, tshark finds every checksum good, and our
// checksum computation gives the values the kernel wrote.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestNet, nsRun } from '../helpers/netns.js';
import { openTap } from '../../src/device/index.js';
import {
  openCaptureFile, LinkType, summarize, readPcapFile, EthernetView, Ipv4View, Ipv6View, transportChecksum, internetChecksum, u16,
} from '../../src/packet/index.js';
import { pump, addAddresses, startEchoServers, waitFor, clientTraffic } from './wire.js';

const net = new TestNet();
const dir = mkdtempSync(join(tmpdir(), 'tuntap-pcap-'));
after(() => { net.cleanup(); rmSync(dir, { recursive: true, force: true }); });

const FIELDS = [
  'frame.number', 'eth.src', 'eth.dst', 'arp.opcode', 'arp.src.proto_ipv4', 'arp.dst.proto_ipv4',
  'ip.src', 'ip.dst', 'ip.proto', 'ip.checksum.status', 'ipv6.src', 'ipv6.dst',
  'tcp.srcport', 'tcp.dstport', 'tcp.seq_raw', 'tcp.ack_raw', 'tcp.flags', 'tcp.len', 'tcp.checksum.status', 'tcp.options.mss_val', 'tcp.options.wscale.shift',
  'udp.srcport', 'udp.dstport', 'udp.length', 'udp.checksum.status', 'icmp.type', 'icmp.checksum.status', 'icmpv6.type', 'icmpv6.checksum.status',
] as const;

function tshark(file: string): Record<string, string>[] {
  const out = execFileSync('tshark', ['-r', file, '-n', '-T', 'fields', '-E', 'separator=|', '-E', 'occurrence=f',
    '-o', 'tcp.check_checksum:TRUE', '-o', 'udp.check_checksum:TRUE', '-o', 'ip.check_checksum:TRUE',
    ...FIELDS.flatMap((f) => ['-e', f])], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  return out.trim().split('\n').map((line) => Object.fromEntries(line.split('|').map((v, i) => [FIELDS[i], v])));
}

const GOOD = '1'; // tshark's checksum status field: 0 bad, 1 good, 2 unverified

test('kernel traffic captured through TAPs decodes like tshark, checksums equal the kernel\'s', async () => {
  const a = net.namespace('pa'); const b = net.namespace('pb');
  const tapA = openTap({ netns: a }); const tapB = openTap({ netns: b });
  addAddresses(a, tapA.name, '198.18.60.1/24', 'fd00:60::1/64');
  addAddresses(b, tapB.name, '198.18.60.2/24', 'fd00:60::2/64');
  const pcap = openCaptureFile(join(dir, 'wire.pcap'), { linkType: LinkType.ETHERNET });
  const pcapng = openCaptureFile(join(dir, 'wire.pcapng'), { linkType: LinkType.ETHERNET, interfaceName: 'wire' });
  const frames: Buffer[] = [];
  const stop = new AbortController();
  const forward = async (batch: import('../../src/device/index.js').PacketBatch, to: typeof tapA) => {
    const pkts: Buffer[] = [];
    for (let i = 0; i < batch.count; i++) {
      const p = batch.packet(i);
      frames.push(Buffer.from(p));
      pcap.write(p); pcapng.write(p);
      pkts.push(p);
    }
    await to.writeBatch(pkts);
  };
  const pumps = [pump(tapA, tapB, stop.signal, forward), pump(tapB, tapA, stop.signal, forward)];
  try {
    const server = startEchoServers(b, '198.18.60.2', 'fd00:60::2', 7001, 7002);
    await waitFor(server, 'ready');
    for (const target of ['198.18.60.2', 'fd00:60::2']) {
      const r = await nsRun(a, 'ping', ['-c', '2', '-i', '0.2', '-W', '2', target]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
    }
    const out = await clientTraffic(a, ['198.18.60.2', 'fd00:60::2'], 7001, 7002);
    assert.match(out, /198\.18\.60\.2 5000 intact \d+/);
    assert.match(out, /fd00:60::2 5000 intact \d+/);
  } finally {
    stop.abort();
    await Promise.all(pumps);
    pcap.close(); pcapng.close();
    await tapA.close(); await tapB.close();
  }

  // Our own reader gives back what we wrote.
  const file = readPcapFile(join(dir, 'wire.pcap'));
  assert.equal(file.linkType, LinkType.ETHERNET);
  assert.equal(file.records.length, frames.length);
  file.records.forEach((r, i) => assert.ok(Buffer.from(r.data).equals(frames[i]!)));

  const rows = tshark(join(dir, 'wire.pcap'));
  assert.equal(rows.length, frames.length);
  assert.equal(tshark(join(dir, 'wire.pcapng')).length, frames.length, 'pcapng opens in tshark too');
  const kinds = new Set<string>();
  rows.forEach((row, i) => {
    const frame = frames[i]!;
    const s = summarize(frame, 'ethernet');
    const ctx = `frame ${i + 1}: ${JSON.stringify(row)}`;
    assert.equal(s.error, undefined, ctx);
    assert.equal(s.ethernet!.src, row['eth.src'], ctx);
    assert.equal(s.ethernet!.dst, row['eth.dst'], ctx);
    if (s.arp) {
      kinds.add('arp');
      assert.equal(String(s.arp.operation), row['arp.opcode'], ctx);
      assert.equal(s.arp.senderIp, row['arp.src.proto_ipv4'], ctx);
      assert.equal(s.arp.targetIp, row['arp.dst.proto_ipv4'], ctx);
      return;
    }
    assert.ok(s.ip, ctx);
    if (s.ip.version === 4) {
      assert.equal(s.ip.src, row['ip.src'], ctx); assert.equal(s.ip.dst, row['ip.dst'], ctx);
      assert.equal(String(s.ip.protocol), row['ip.proto'], ctx);
      assert.equal(row['ip.checksum.status'], GOOD, ctx);
      assert.ok(s.ip.headerChecksumOk, ctx);
    } else {
      assert.equal(s.ip.src, row['ipv6.src'], ctx); assert.equal(s.ip.dst, row['ipv6.dst'], ctx);
    }
    if (s.tcp) {
      kinds.add(`tcp${s.ip.version}`);
      assert.equal(String(s.tcp.srcPort), row['tcp.srcport'], ctx); assert.equal(String(s.tcp.dstPort), row['tcp.dstport'], ctx);
      assert.equal(String(s.tcp.seq), row['tcp.seq_raw'], ctx); assert.equal(String(s.tcp.ack), row['tcp.ack_raw'], ctx);
      assert.equal(s.tcp.flags, Number(row['tcp.flags']), ctx);
      assert.equal(String(s.tcp.payloadLength), row['tcp.len'], ctx);
      assert.equal(s.tcp.options.mss === undefined ? '' : String(s.tcp.options.mss), row['tcp.options.mss_val'], ctx);
      assert.equal(s.tcp.options.windowScale === undefined ? '' : String(s.tcp.options.windowScale), row['tcp.options.wscale.shift'], ctx);
      assert.equal(row['tcp.checksum.status'], GOOD, ctx);
      assert.ok(s.tcp.checksumOk, ctx);
    } else if (s.udp) {
      kinds.add(`udp${s.ip.version}`);
      assert.equal(String(s.udp.srcPort), row['udp.srcport'], ctx); assert.equal(String(s.udp.dstPort), row['udp.dstport'], ctx);
      assert.equal(String(s.udp.length), row['udp.length'], ctx);
      assert.equal(row['udp.checksum.status'], GOOD, ctx);
      assert.ok(s.udp.checksumOk, ctx);
    } else if (s.icmp) {
      const field = s.ip.version === 4 ? 'icmp' : 'icmpv6';
      kinds.add(`${field}-${s.icmp.type}`);
      assert.equal(String(s.icmp.type), row[`${field}.type`], ctx);
      assert.equal(row[`${field}.checksum.status`], GOOD, ctx);
      assert.ok(s.icmp.checksumOk, ctx);
    }
    // Our computation reproduces the kernel's checksum values exactly.
    const eth = new EthernetView(frame);
    const l3 = eth.payloadOffset;
    if (s.ip.version === 4) {
      const v = new Ipv4View(frame, l3);
      const hdr = Buffer.from(frame.subarray(l3, l3 + v.headerLength)); hdr[10] = 0; hdr[11] = 0;
      assert.equal(internetChecksum(hdr), v.checksum, ctx);
    }
    const [l4, end, proto] = s.ip.version === 4 ? (() => { const v = new Ipv4View(frame, l3); return [v.payloadOffset, v.payloadEnd, v.protocol]; })()
      : (() => { const v = new Ipv6View(frame, l3); return [v.upperOffset, v.payloadEnd, v.upperProtocol]; })();
    const at = proto === 6 ? 16 : proto === 17 ? 6 : proto === 1 || proto === 58 ? 2 : -1;
    if (at >= 0) {
      const copy = Buffer.from(frame); const kernel = u16(copy, l4 + at);
      copy[l4 + at] = 0; copy[l4 + at + 1] = 0;
      const ours = proto === 1 ? internetChecksum(copy, l4, end) : transportChecksum(copy, l3, l4, end, proto);
      assert.equal(proto === 17 && ours === 0 ? 0xffff : ours, kernel, ctx);
    }
  });
  for (const k of ['arp', 'tcp4', 'tcp6', 'udp4', 'udp6', 'icmp-8', 'icmp-0', 'icmpv6-128', 'icmpv6-129', 'icmpv6-135', 'icmpv6-136']) {
    assert.ok(kinds.has(k), `captured ${k} (have ${[...kinds].join(' ')})`);
  }
});
