// TAP devices against the real kernel: ARP and ICMP answered by our code, MAC address,
// TX filter, classic BPF filter.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { crc32 } from 'node:zlib';
import { TestNet, nsExec, nsRun } from '../helpers/netns.js';
import { TuntapError } from '../../src/errors.js';
import { addRoute } from '../../src/netlink/index.js';
import { openTap, openTun, BPF, bpf, parseMac, type TunDevice } from '../../src/device/index.js';
import { ip4, tapReply } from './packets.js';
import { afterSending, sendUdp } from './util.js';

const net = new TestNet();
after(() => net.cleanup());

const PEER_IP = '198.18.1.2';
const PEER_MAC = '02:00:00:00:00:02';
const OTHER_IP = '198.18.1.9';
const OTHER_MAC = '02:00:00:00:00:99';

function setup(): { ns: string; dev: TunDevice } {
  const ns = net.namespace('dp');
  const dev = openTap({ netns: ns });
  assert.match(dev.name, /^tap\d+$/);
  net.configure(ns, dev.name, { addresses: ['198.18.1.1/24'], up: true });
  return { ns, dev };
}

function staticNeighbours(ns: string, dev: TunDevice): void {
  nsExec(ns, 'ip', 'neigh', 'replace', PEER_IP, 'lladdr', PEER_MAC, 'dev', dev.name, 'nud', 'permanent');
  nsExec(ns, 'ip', 'neigh', 'replace', OTHER_IP, 'lladdr', OTHER_MAC, 'dev', dev.name, 'nud', 'permanent');
}

// The kernel's multicast filter bit: the top 6 bits of the bit-reversed little-endian CRC32.
function hashBit(mac: Uint8Array): number {
  const crcLe = (~crc32(mac)) >>> 0; // crc32_le(~0, mac) without the final inversion
  let reversed = 0;
  for (let i = 0; i < 32; i++) reversed = (reversed << 1) | ((crcLe >>> i) & 1);
  return (reversed >>> 0) >>> 26;
}

function groupWithHashBitOtherThan(bit: number): { ip: string; mac: string; bit: number } {
  for (let last = 100; last < 250; last++) {
    const mac = Uint8Array.from([0x01, 0x00, 0x5e, 0x00, 0x00, last]);
    const b = hashBit(mac);
    if (b !== bit) return { ip: `224.0.0.${last}`, mac: Array.from(mac, (x) => x.toString(16).padStart(2, '0')).join(':'), bit: b };
  }
  throw new Error('no group found');
}

const isUdp = (f: Buffer) => f.readUInt16BE(12) === 0x0800 && f[23] === 17;
const isIcmp = (f: Buffer) => f.readUInt16BE(12) === 0x0800 && f[23] === 1;
const dstMac = (f: Buffer) => Array.from(f.subarray(0, 6), (b) => b.toString(16).padStart(2, '0')).join(':');

test('our code answers ARP and ICMP on a TAP; kernel ping works', async () => {
  const { ns, dev } = setup();
  const mac = parseMac(PEER_MAC);
  const out = Buffer.alloc(65536);
  const offsets = new Uint32Array(64);
  const lengths = new Uint32Array(64);
  const responder = (async () => {
    for await (const batch of dev.batches()) {
      // Replies built into one buffer and written with writeRanges (headers added for us).
      let n = 0;
      let pos = 0;
      for (const frame of batch) {
        const r = tapReply(frame, ip4(PEER_IP), mac);
        if (!r) continue;
        r.copy(out, pos);
        offsets[n] = pos;
        lengths[n++] = r.length;
        pos += r.length;
      }
      if (n) await dev.queues[0]!.writeRanges(out, offsets, lengths, n);
    }
  })();
  try {
    const r = await nsRun(ns, 'ping', ['-c', '3', '-i', '0.2', '-W', '2', PEER_IP]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /3 received/);
    assert.match(nsExec(ns, 'ip', 'neigh', 'show', PEER_IP), new RegExp(PEER_MAC), 'the kernel learned our MAC by ARP');
  } finally {
    await dev.close();
  }
  await responder;
});

test('the MAC address we set is what ip link shows; a TUN has none', async () => {
  const ns = net.namespace('dp');
  await using dev = openTap({ netns: ns, name: 'mac0' });
  dev.setMac('02:11:22:33:44:55');
  assert.equal(dev.mac, '02:11:22:33:44:55');
  const [link] = JSON.parse(nsExec(ns, 'ip', '-j', 'link', 'show', 'mac0')) as { address: string }[];
  assert.equal(link!.address, '02:11:22:33:44:55');
  assert.throws(() => dev.setMac('01:00:5e:00:00:01'), (e: unknown) => e instanceof TuntapError && e.code === 'EADDRNOTAVAIL' && /unicast/.test(e.message));
  await using tun = openTun({ netns: ns });
  assert.throws(() => tun.setMac('02:00:00:00:00:01'), (e: unknown) => e instanceof TuntapError);
});

test('the TX filter drops frames for other MACs and passes ours', async () => {
  const { ns, dev } = setup();
  try {
    staticNeighbours(ns, dev);
    // Without a filter both destinations arrive (so the check below can fail).
    let got = await afterSending(dev, isUdp, () => sendUdp(ns, PEER_IP, 9000, { rounds: 3 }), () => sendUdp(ns, OTHER_IP, 9000, { rounds: 3 }));
    assert.ok(got.some((f) => dstMac(f) === OTHER_MAC), 'unfiltered: frames to the other MAC arrive');

    dev.setTxFilter({ addresses: [PEER_MAC] });
    const before = dev.stats().txDropped;
    got = await afterSending(dev, isUdp, () => sendUdp(ns, PEER_IP, 9000, { rounds: 5 }), () => sendUdp(ns, OTHER_IP, 9000, { rounds: 5 }));
    assert.equal(got.filter((f) => dstMac(f) === PEER_MAC).length, 5, 'frames to our MAC pass');
    assert.equal(got.filter((f) => dstMac(f) === OTHER_MAC).length, 0, 'frames to other MACs are dropped');
    assert.ok(dev.stats().txDropped - before >= 5, 'the kernel counted the dropped frames');

    // Beyond 8 exact addresses the kernel keeps multicast ones in a 64-bit hash: a group in
    // the list passes, a group whose hash bit is not set is dropped, ALLMULTI passes all.
    addRoute({ dst: '224.0.0.0/4', dev: dev.name }, { netns: ns });
    const listed = groupWithHashBitOtherThan(-1);
    const other = groupWithHashBitOtherThan(listed.bit);
    const fillers = Array.from({ length: 8 }, (_, i) => `02:00:00:00:01:${(i + 16).toString(16)}`);
    dev.setTxFilter({ addresses: [...fillers, listed.mac] });
    got = await afterSending(dev, isUdp, () => sendUdp(ns, listed.ip, 9000, { rounds: 3 }), () => sendUdp(ns, other.ip, 9000, { rounds: 3 }));
    assert.equal(got.filter((f) => dstMac(f) === listed.mac).length, 3, 'the hashed multicast group passes');
    assert.equal(got.filter((f) => dstMac(f) === other.mac).length, 0, 'another multicast group is dropped');
    dev.setTxFilter({ addresses: [PEER_MAC], allMulticast: true });
    got = await afterSending(dev, isUdp, () => sendUdp(ns, other.ip, 9000, { rounds: 2 }));
    assert.equal(got.filter((f) => dstMac(f) === other.mac).length, 2, 'ALLMULTI passes every group');
    dev.clearTxFilter();
  } finally {
    await dev.close();
  }
});

test('a BPF program accepting only ICMP drops UDP, counted by the kernel', async () => {
  const { ns, dev } = setup();
  try {
    staticNeighbours(ns, dev);
    const onlyIcmp = [
      bpf(BPF.LD_H_ABS, 12),
      bpf(BPF.JEQ_K, 0x0800, 0, 3),
      bpf(BPF.LD_B_ABS, 23),
      bpf(BPF.JEQ_K, 1, 0, 1),
      bpf(BPF.RET_K, 0xffff),
      bpf(BPF.RET_K, 0),
    ];
    dev.attachFilter(onlyIcmp);
    assert.deepEqual(dev.getFilter(), { length: 6, program: onlyIcmp });
    const before = dev.stats().txDropped;
    let got = await afterSending(dev, (f) => isUdp(f) || isIcmp(f), () => sendUdp(ns, PEER_IP, 9000, { rounds: 10 }),
      () => nsRun(ns, 'ping', ['-c', '3', '-i', '0.2', '-W', '1', PEER_IP]));
    assert.equal(got.filter(isUdp).length, 0, 'no UDP passes the filter');
    assert.equal(got.filter(isIcmp).length, 3, 'ICMP passes');
    assert.ok(dev.stats().txDropped - before >= 10, `kernel tx_dropped counts the UDP datagrams (${dev.stats().txDropped - before})`);

    dev.detachFilter();
    got = await afterSending(dev, isUdp, () => sendUdp(ns, PEER_IP, 9000, { rounds: 2 }));
    assert.equal(got.length, 2, 'without the filter UDP arrives again');
    assert.throws(() => dev.getFilter().program ?? assert.fail('no program'), /no program/);
  } finally {
    await dev.close();
  }
});

test('TX and BPF filters exist only on TAP devices', async () => {
  const ns = net.namespace('dp');
  await using tun = openTun({ netns: ns });
  assert.throws(() => tun.attachFilter([bpf(BPF.RET_K, 0)]), (e: unknown) => e instanceof TuntapError && e.code === 'EINVAL');
  assert.throws(() => tun.setTxFilter({ addresses: [PEER_MAC] }), (e: unknown) => e instanceof TuntapError && /only TAP/.test(e.message));
});
