// Our VXLAN port against the kernel's own `vxlan` devices. Topology:
//   hostA ──tap── [switch ns: our switch + VxlanPort on 198.18.40.1, underlay bridge ul0]
//                        ├── veth ── k1: vx0 (VNI 4242, 198.18.40.2), 198.18.41.2 on vx0
//                        └── veth ── k2: vx0 (VNI 4242, 198.18.40.3), 198.18.41.3 on vx0
// Our port floods to both kernel VTEPs (head-end replication) and learns MAC → VTEP; the kernel
// VTEPs flood to us and each other with all-zero fdb entries and learn us back.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { TestNet, nsExec, nsRun, nsSpawn } from '../helpers/netns.js';
import { sleep, waitForOutput } from '../helpers/wait.js';
import { LearningSwitch } from '../../src/l2/switch.js';
import type { TapPort } from '../../src/l2/tap-port.js';
import { VxlanPort } from '../../src/l2/vxlan.js';
import { encapsulate } from '../../src/packet/vxlan.js';
import { internetChecksum, transportChecksum } from '../../src/base/checksum.js';
import { put16, put32 } from '../../src/base/bytes.js';
import { UdpSocket } from '../../src/net/index.js';
import { GsoType, VIRTIO_NET_HDR_F } from '../../src/device/index.js';
import { setLink } from '../../src/netlink/index.js';
import { iperf, macOf, tapIntoHost } from './helpers.js';

const VNI = 4242;
const OURS = '198.18.40.1';
const K1 = '198.18.40.2'; const K2 = '198.18.40.3';
const HOST_A = '198.18.41.1'; const HOST_K1 = '198.18.41.2'; const HOST_K2 = '198.18.41.3';

describe('VXLAN port interoperating with the kernel vxlan device', () => {
  const net = new TestNet();
  let sw: string; let hostA: string; let k1: string; let k2: string;
  let bridge: LearningSwitch; let tap: TapPort; let vxlan: VxlanPort;

  before(async () => {
    sw = net.namespace('l2vsw'); hostA = net.namespace('l2va'); k1 = net.namespace('l2k1'); k2 = net.namespace('l2k2');
    // tuntap has no bridge or vxlan API: ip makes the underlay bridge (and enslaves the veths)
    // and the kernel VTEPs, the independent peers; everything else goes over rtnetlink.
    nsExec(sw, 'ip', 'link', 'add', 'ul0', 'type', 'bridge');
    net.configure(sw, 'ul0', { addresses: [`${OURS}/24`], up: true });
    for (const [k, local, host, other] of [[k1, K1, HOST_K1, K2], [k2, K2, HOST_K2, K1]] as const) {
      const v = net.veth(sw, k);
      nsExec(sw, 'ip', 'link', 'set', v.a, 'master', 'ul0');
      net.configure(k, v.b, { addresses: [`${local}/24`] });
      // A veth hands tunnelled packets over with the inner TCP checksum still partial (nothing
      // left the machine); a real NIC would fill it in. Make the kernel do it before the wire.
      nsExec(k, 'ethtool', '-K', v.b, 'tx', 'off');
      nsExec(k, 'ip', 'link', 'add', 'vx0', 'type', 'vxlan', 'id', String(VNI), 'local', local, 'dstport', '4789', 'dev', v.b);
      for (const dst of [OURS, other]) nsExec(k, 'bridge', 'fdb', 'append', '00:00:00:00:00:00', 'dev', 'vx0', 'dst', dst);
      nsExec(k, 'ip', 'link', 'set', 'vx0', 'up');
      nsExec(k, 'ip', 'addr', 'add', `${host}/24`, 'dev', 'vx0');
      nsExec(k, 'ip', '-6', 'addr', 'add', `fd00:41::${host.split('.')[3]}/64`, 'dev', 'vx0', 'nodad');
    }
    // The inner MTU the kernel gives vx0 (1500 - 50): frames from hostA must fit the same. The
    // TAP takes TSO super-packets; the switch cuts them to wire size for the tunnel.
    tap = tapIntoHost(sw, hostA, HOST_A, 'fd00:41::1', { offload: true, mtu: 1450 });
    vxlan = await VxlanPort.open({ vni: VNI, local: OURS, remotes: [K1, K2], netns: sw });
    bridge = new LearningSwitch();
    bridge.addPort(tap);
    bridge.addPort(vxlan);
  });
  after(async () => {
    await bridge?.close();
    net.cleanup();
  });

  it('pings both kernel VTEPs\' hosts over IPv4 and IPv6', async () => {
    for (const target of [HOST_K1, HOST_K2]) {
      const r = await nsRun(hostA, 'ping', ['-c', '3', '-i', '0.2', '-W', '2', target]);
      assert.equal(r.code, 0, `${target}: ${r.stdout}${r.stderr}`);
    }
    const r6 = await nsRun(hostA, 'ping', ['-6', '-c', '3', '-i', '0.2', '-W', '2', 'fd00:41::2']);
    assert.equal(r6.code, 0, r6.stdout + r6.stderr);
    // The other direction starts from the kernel side.
    const back = await nsRun(k2, 'ping', ['-c', '2', '-i', '0.2', '-W', '2', HOST_A]);
    assert.equal(back.code, 0, back.stdout + back.stderr);
  });

  it('learns which VTEP each MAC sits behind, and the kernel learns us', () => {
    const remotes = new Map(vxlan.remoteTable().map((r) => [r.mac, r.remote]));
    assert.equal(remotes.get(macOf(k1, 'vx0')), K1);
    assert.equal(remotes.get(macOf(k2, 'vx0')), K2);
    const fdb = nsExec(k1, 'bridge', 'fdb', 'show', 'dev', 'vx0');
    assert.match(fdb, new RegExp(`${macOf(hostA, tap.name)} dst ${OURS.replace(/\./g, '\\.')}`));
    const st = vxlan.stats();
    assert.equal(st.malformed, 0);
    assert.equal(st.otherVni, 0);
    assert.ok(st.rxPackets > 0 && st.txPackets > 0);
  });

  it('carries iperf3 TCP both ways across the tunnel', async (t) => {
    const out = await iperf(k1, hostA, HOST_K1);
    const back = await iperf(hostA, k1, HOST_A);
    t.diagnostic(`A→k1 ${(out / 1e6).toFixed(0)} Mbit/s, k1→A ${(back / 1e6).toFixed(0)} Mbit/s`);
    assert.ok(out > 20e6, `A→k1 ${out / 1e6} Mbit/s`);
    assert.ok(back > 20e6, `k1→A ${back / 1e6} Mbit/s`);
    assert.ok(tap.coalesced > 0, 'segments from the tunnel were joined into super-packets for the TAP');
  });

  it('carries 24 MiB byte for byte each way (SHA-256 compared at the far end)', async () => {
    // Bulk TCP takes the gathered paths both ways: hostA's super-frames leave as UDP GSO sends
    // of [VXLAN + segment headers, payload slice of the frame]; k1's datagrams reach hostA's TAP
    // as super-frames written from [rebuilt headers, payload slices of the received run]. A
    // piece off by a byte corrupts the stream (and a wrong checksum stalls it): both show here.
    const data = randomBytes(24 << 20);
    const file = join(mkdtempSync(join(tmpdir(), 'vxlan-sha-')), 'data');
    writeFileSync(file, data);
    const want = createHash('sha256').update(data).digest('hex');
    try {
      for (const [from, to, address] of [[hostA, k1, HOST_K1], [k1, hostA, HOST_A]] as const) {
        const port = from === hostA ? 5301 : 5302;
        const server = nsSpawn(to, 'sh', ['-c', `socat -u TCP-LISTEN:${port},reuseaddr STDOUT | sha256sum`]);
        let got = '';
        server.stdout!.on('data', (d) => { got += d; });
        const done = new Promise<void>((resolve) => server.once('exit', () => resolve()));
        let sent = { code: 1 as number | null, stdout: '', stderr: '' };
        for (let attempt = 0; attempt < 20; attempt++) {
          sent = await nsRun(from, 'socat', ['-u', `OPEN:${file}`, `TCP:${address}:${port}`], 60_000);
          if (sent.code === 0) break;
          await sleep(100); // the listener may not be up yet
        }
        assert.equal(sent.code, 0, sent.stderr);
        await done;
        assert.equal(got.split(' ')[0], want, `${from === hostA ? 'A→k1' : 'k1→A'}: the bytes arrived changed`);
      }
    } finally {
      rmSync(dirname(file), { recursive: true, force: true });
    }
  });

  it('drops a super-frame whose header would cut it into thousands of datagrams, or lies', async () => {
    // A TCP super-frame for k1's MAC as a TAP's queue would hand it over, with a hostile
    // virtio_net_hdr: gso_size 8 would make 4,000 datagrams of 32 KB; csum_start past the
    // headers does not describe the frame at all. Both go through the switch to the real port.
    const payload = 32_000;
    const frame = new Uint8Array(14 + 20 + 20 + payload);
    frame.set(Buffer.from(macOf(k1, 'vx0').replace(/:/g, ''), 'hex'), 0);
    frame.set(Buffer.from(macOf(hostA, tap.name).replace(/:/g, ''), 'hex'), 6);
    frame.set([0x08, 0x00, 0x45, 0, (40 + payload) >> 8, (40 + payload) & 0xff, 0, 0, 0x40, 0, 64, 6], 12);
    frame.set(Buffer.from(HOST_A.split('.').map(Number)), 26);
    frame.set(Buffer.from(HOST_K1.split('.').map(Number)), 30);
    frame[34 + 12] = 5 << 4;
    frame[34 + 13] = 0x10;
    const tso = { flags: VIRTIO_NET_HDR_F.NEEDS_CSUM, gsoType: GsoType.TCPV4, hdrLen: 54, csumStart: 34, csumOffset: 16 };
    const sentBefore = vxlan.socket.stats.sent;
    const dropsBefore = vxlan.stats().offloadDrops;
    await bridge.forward(tap, [{ data: frame, offload: { ...tso, gsoSize: 8 } }]);
    await bridge.forward(tap, [{ data: frame, offload: { ...tso, gsoSize: 1400, csumStart: frame.length - 4 } }]);
    assert.equal(vxlan.socket.stats.sent - sentBefore, 0, 'no datagram left for either');
    assert.equal(vxlan.stats().offloadDrops - dropsBefore, 2);
    // The same frame with an honest header leaves as its 23 wire-size segments.
    await bridge.forward(tap, [{ data: frame, offload: { ...tso, gsoSize: 1400 } }]);
    assert.equal(vxlan.socket.stats.sent - sentBefore, Math.ceil(payload / 1400));
  });

  it('counts and drops malformed datagrams and other VNIs, and keeps working', async () => {
    const junk = UdpSocket.open({ netns: k1, bind: { address: K1, port: 0 } });
    try {
      const before = vxlan.stats();
      const random = Array.from({ length: 20 }, (_, i) => Uint8Array.from({ length: 30 + i * 7 }, () => Math.floor(Math.random() * 256)).map((b, j) => (j === 0 ? b & 0xf7 : b)));
      const datagrams = [
        ...random,                                   // I flag cleared: not VXLAN
        new Uint8Array(0), new Uint8Array(8), new Uint8Array(21), // too short for a header and a frame
        encapsulate(VNI + 1, new Uint8Array(60)),    // someone else's VNI
      ];
      await junk.sendBatch(datagrams, { address: OURS, port: 4789 });
      for (let i = 0; i < 40; i++) {
        const st = vxlan.stats();
        if (st.malformed - before.malformed >= 23 && st.otherVni > before.otherVni) break;
        await new Promise((res) => setTimeout(res, 50));
      }
      const after = vxlan.stats();
      assert.equal(after.malformed - before.malformed, 23);
      assert.equal(after.otherVni - before.otherVni, 1);
    } finally {
      await junk.close();
    }
    const r = await nsRun(hostA, 'ping', ['-c', '1', '-W', '2', HOST_K1]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
  });

  it('a corrupted TCP segment among datagrams without outer checksum is not merged: hostA drops and counts it', async () => {
    // A VTEP that sends no outer UDP checksum (the kernel vxlan's IPv4 default, udpcsum off):
    // nothing but the inner TCP checksum vouches for the bytes, so the port must not let the
    // coalescer hide a bad one inside a super-frame (whose checksum the kernel would recompute).
    // Four consecutive segments of one flow to hostA, the second with a flipped payload byte,
    // sent in one sendmmsg from a real socket with SO_NO_CHECK in k1.
    const sock = UdpSocket.open({ netns: k1, bind: { address: K1, port: 0 } });
    (sock as unknown as { sock: { setIntOption(l: number, n: number, v: number, label: string): void } })
      .sock.setIntOption(1 /* SOL_SOCKET */, 11 /* SO_NO_CHECK */, 1, 'setsockopt(SO_NO_CHECK)');
    const dst = Buffer.from(macOf(hostA, tap.name).replace(/:/g, ''), 'hex');
    const src = Buffer.from('02000000c0de', 'hex');
    const segment = (seq: number, corrupt: boolean) => {
      const payload = 1000;
      const f = new Uint8Array(14 + 20 + 20 + payload);
      f.set(dst, 0); f.set(src, 6);
      f.set([0x08, 0x00, 0x45, 0, (40 + payload) >> 8, (40 + payload) & 0xff, 0, 0, 0x40, 0, 64, 6], 12);
      f.set(HOST_K1.split('.').map(Number), 26); f.set(HOST_A.split('.').map(Number), 30);
      put16(f, 24, internetChecksum(f, 14, 34));
      put16(f, 34, 40000); put16(f, 36, 9); put32(f, 38, seq); put32(f, 42, 1);
      f[46] = 5 << 4; f[47] = 0x10; put16(f, 48, 1024);
      for (let i = 54; i < f.length; i++) f[i] = i & 0xff;
      put16(f, 50, transportChecksum(f, 14, 34, f.length, 6));
      if (corrupt) f[700] ^= 0x40;
      return encapsulate(VNI, f);
    };
    const csumErrors = () => {
      const lines = nsExec(hostA, 'cat', '/proc/net/snmp').split('\n').filter((l) => l.startsWith('Tcp:'));
      return Number(lines[1]!.split(/\s+/)[lines[0]!.split(/\s+/).indexOf('InCsumErrors')]);
    };
    try {
      // Until one trial's four segments arrive in one batch (the valid pair merges), so the
      // coalescer had the chance to swallow the bad one. Each trial is a fresh sequence.
      let trials = 0;
      let merged = false;
      const errorsBefore = csumErrors();
      for (let seq = 1_000_000; trials < 8 && !merged; seq += 100_000) {
        const coalescedBefore = tap.coalesced;
        trials++;
        await sock.sendBatch([segment(seq, false), segment(seq + 1000, true), segment(seq + 2000, false), segment(seq + 3000, false)],
          { address: OURS, port: 4789 });
        for (let i = 0; i < 40 && csumErrors() - errorsBefore < trials; i++) await sleep(25);
        merged = tap.coalesced > coalescedBefore;
      }
      assert.ok(merged, 'valid segments of one batch were joined into a super-frame');
      assert.equal(csumErrors() - errorsBefore, trials, 'every corrupted segment reached hostA alone and failed its checksum there');
    } finally {
      await sock.close();
    }
  });

  it('with learning off, uses only the flood list and static MACs', async () => {
    bridge.removePort(vxlan);
    await vxlan.close();
    const k2mac = macOf(k2, 'vx0');
    vxlan = await VxlanPort.open({ vni: VNI, local: OURS, remotes: [K1], learning: false,
      staticMacs: [{ mac: k2mac, remote: K2 }], netns: sw });
    bridge.addPort(vxlan);
    nsExec(hostA, 'ip', 'neigh', 'flush', 'all');
    // k1 is reached by flooding; k2 only through its static entry (ARP for it goes to k1 only,
    // so give hostA k2's MAC directly).
    nsExec(hostA, 'ip', 'neigh', 'replace', HOST_K2, 'lladdr', k2mac, 'dev', tap.name, 'nud', 'permanent');
    const r1 = await nsRun(hostA, 'ping', ['-c', '2', '-i', '0.2', '-W', '2', HOST_K1]);
    assert.equal(r1.code, 0, r1.stdout + r1.stderr);
    const r2 = await nsRun(hostA, 'ping', ['-c', '2', '-i', '0.2', '-W', '2', HOST_K2]);
    assert.equal(r2.code, 0, r2.stdout + r2.stderr);
    const rows = vxlan.remoteTable();
    assert.deepEqual(rows.map((r) => [r.mac, r.remote, r.static]), [[k2mac, K2, true]], 'nothing learned');
    // A broadcast (ARP for an absent host) is replicated to the flood list only: k1, not k2.
    // (k1 stops flooding its own broadcasts to k2, so whatever k2 receives now came from us.)
    nsExec(k1, 'bridge', 'fdb', 'del', '00:00:00:00:00:00', 'dev', 'vx0', 'dst', K2);
    // Watch for that ARP request itself at both ends: k2 may still get unicast frames through its
    // static entry at any time (IPv6 neighbour probes), so its packet counter proves nothing.
    const watchers: ReturnType<typeof nsSpawn>[] = [];
    const watch = async (k: string) => {
      const p = nsSpawn(k, 'tcpdump', ['-i', 'vx0', '-n', '-l', 'arp']);
      watchers.push(p);
      let out = '';
      p.stdout!.on('data', (d) => { out += d; });
      await waitForOutput(p, 'listening on', `tcpdump in ${k}`, { stream: 'stderr', timeoutMs: 5000 });
      return () => out.includes('198.18.41.99');
    };
    try {
      const seenAt1 = await watch(k1);
      const seenAt2 = await watch(k2);
      await nsRun(hostA, 'ping', ['-c', '1', '-W', '1', '198.18.41.99']);
      await sleep(300);
      assert.ok(seenAt1(), 'k1 got the ARP request');
      assert.ok(!seenAt2(), 'k2 is not on the flood list');
    } finally {
      for (const p of watchers) p.kill('SIGKILL');
    }
  });

  it('fragments datagrams larger than the underlay MTU instead of losing them', async () => {
    // hostA at a full 1500-byte MTU: its largest frames make 1550-byte datagrams on a 1500-byte
    // underlay, which must leave as IP fragments (never as UDP GSO, which would refuse them).
    setLink(tap.name, { mtu: 1500 }, { netns: hostA });
    const before = vxlan.stats().txErrors;
    const r = await nsRun(hostA, 'ping', ['-c', '3', '-i', '0.2', '-W', '2', '-M', 'do', '-s', '1472', HOST_K1]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(vxlan.stats().txErrors, before);
    setLink(tap.name, { mtu: 1450 }, { netns: hostA });
    // A batch of equal full-size frames (the shape UDP GSO would join) all arrive.
    const rx = () => Number(nsExec(k1, 'cat', '/sys/class/net/vx0/statistics/rx_packets'));
    const start = rx();
    const frame = new Uint8Array(1514);
    frame.fill(0xff, 0, 6);
    frame.set([0x02, 0, 0, 0, 0, 0x42, 0x88, 0xb5], 6); // local experimental EtherType
    await vxlan.send(Array.from({ length: 8 }, () => ({ data: frame })));
    for (let i = 0; i < 20 && rx() < start + 8; i++) await new Promise((res) => setTimeout(res, 50));
    assert.equal(rx() - start, 8);
  });
});

describe('VXLAN port over an IPv6 underlay', () => {
  const net = new TestNet();
  let bridge: LearningSwitch;
  let hostA: string; let k: string;

  before(async () => {
    const sw = net.namespace('l2v6s'); hostA = net.namespace('l2v6a'); k = net.namespace('l2v6k');
    const v = net.veth(sw, k);
    net.configure(sw, v.a, { addresses: [{ address: 'fd00:42::1/64', nodad: true }] });
    net.configure(k, v.b, { addresses: [{ address: 'fd00:42::2/64', nodad: true }] });
    nsExec(k, 'ethtool', '-K', v.b, 'tx', 'off');
    nsExec(k, 'ip', 'link', 'add', 'vx0', 'type', 'vxlan', 'id', '99', 'local', 'fd00:42::2', 'remote', 'fd00:42::1', 'dstport', '4789', 'dev', v.b);
    nsExec(k, 'ip', 'link', 'set', 'vx0', 'up');
    nsExec(k, 'ip', 'addr', 'add', '198.18.43.2/24', 'dev', 'vx0');
    // 1500 - 70 bytes of IPv6 VXLAN overhead.
    const tap = tapIntoHost(sw, hostA, '198.18.43.1', 'fd00:43::1', { mtu: 1430 });
    const vx = await VxlanPort.open({ vni: 99, local: 'fd00:42::1', remotes: ['fd00:42::2'], netns: sw });
    bridge = new LearningSwitch();
    bridge.addPort(tap);
    bridge.addPort(vx);
  });
  after(async () => {
    await bridge?.close();
    net.cleanup();
  });

  it('pings and carries TCP through the kernel vxlan over IPv6', async () => {
    const r = await nsRun(hostA, 'ping', ['-c', '2', '-i', '0.2', '-W', '2', '198.18.43.2']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const bps = await iperf(k, hostA, '198.18.43.2', 1);
    assert.ok(bps > 20e6, `${bps / 1e6} Mbit/s`);
  });
});
