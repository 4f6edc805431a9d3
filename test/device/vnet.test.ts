// IFF_VNET_HDR + TUNSETOFFLOAD against the real kernel: TCP super-packets (TSO4) read from
// the device, and a GSO super-packet written to it delivered whole to a listening socket.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { TestNet, nsSpawn } from '../helpers/netns.js';
import { openTun, GsoType, VIRTIO_NET_HDR_F, decodeVnetHdr, encodeVnetHdr, type TunDevice, type VirtioNetHdr } from '../../src/device/index.js';
import { parseTcp4, tcp4, TCP, type ParsedTcp } from './packets.js';

const net = new TestNet();
after(() => net.cleanup());

const LOCAL = '198.18.3.1';
const REMOTE = '198.18.3.2';
const MSS_OPTION = Uint8Array.from([2, 4, 0x05, 0xb4]); // MSS 1460

function setup(offload: 'raw' | 'flags' = 'flags'): { ns: string; dev: TunDevice } {
  const ns = net.namespace('dv');
  const dev = offload === 'raw' ? openTun({ netns: ns, offload: 'raw' })
    : openTun({ netns: ns, vnetHdr: true, offload: { csum: true, tso4: true, tso6: true, tsoEcn: true } });
  net.configure(ns, dev.name, { addresses: [`${LOCAL}/24`], up: true });
  return { ns, dev };
}

/** Reads until a TCP segment matching `want` arrives; returns it with its vnet header. */
async function nextTcp(dev: TunDevice, want: (t: ParsedTcp) => boolean, ms = 5000): Promise<{ tcp: ParsedTcp; vnet: VirtioNetHdr; length: number }> {
  const signal = AbortSignal.timeout(ms);
  for (;;) {
    const batch = await dev.readBatch({ signal });
    assert.ok(batch);
    for (let i = 0; i < batch.count; i++) {
      const tcp = parseTcp4(batch.packet(i));
      if (tcp && want(tcp)) return { tcp, vnet: batch.vnet(i)!, length: batch.lengths[i]! };
    }
  }
}

test('virtio_net_hdr encodes and decodes the 10 and 12 byte layouts', () => {
  const hdr = { flags: VIRTIO_NET_HDR_F.NEEDS_CSUM, gsoType: GsoType.TCPV4 | GsoType.ECN, hdrLen: 54, gsoSize: 1448, csumStart: 34, csumOffset: 16 };
  const b10 = Buffer.alloc(10);
  encodeVnetHdr(hdr, b10);
  assert.equal(b10.toString('hex'), '01813600a8052200' + '1000');
  assert.deepEqual(decodeVnetHdr(b10), hdr);
  const b12 = Buffer.alloc(12, 0xff);
  encodeVnetHdr({ ...hdr, numBuffers: 3 }, b12, 0, 12);
  assert.deepEqual(decodeVnetHdr(b12, 0, 12), { ...hdr, numBuffers: 3 });
  const be = Buffer.alloc(10);
  encodeVnetHdr(hdr, be, 0, 10, false);
  assert.equal(be.readUInt16BE(4), 1448);
});

for (const offload of ['flags', 'raw'] as const) test(`a local TCP sender arrives as TSO4 super-packets larger than the MTU, header decoded (offload ${offload})`, async () => {
  const { ns, dev } = setup(offload);
  assert.equal(dev.offload, 'raw');
  const sender = nsSpawn(ns, process.execPath, ['-e', `
    const s = require('node:net').connect(7000, '${REMOTE}', () => s.write(Buffer.alloc(200000, 0x62)));
    s.on('error', () => {}); setTimeout(() => process.exit(0), 8000);`]);
  try {
    const syn = await nextTcp(dev, (t) => t.flags === TCP.SYN && t.dport === 7000);
    const iss = 7777;
    await dev.write(tcp4({ src: REMOTE, dst: LOCAL, sport: 7000, dport: syn.tcp.sport, seq: iss, ack: syn.tcp.seq + 1,
      flags: TCP.SYN | TCP.ACK, window: 65535, options: MSS_OPTION }));
    const mtu = dev.mtu;
    let biggest = { length: 0, vnet: undefined as VirtioNetHdr | undefined };
    const deadline = Date.now() + 5000;
    let acked = syn.tcp.seq + 1;
    while (biggest.length <= mtu && Date.now() < deadline) {
      const seg = await nextTcp(dev, (t) => t.sport === syn.tcp.sport && t.payloadLength > 0);
      if (seg.length > biggest.length) biggest = { length: seg.length, vnet: seg.vnet };
      acked = (seg.tcp.seq + seg.tcp.payloadLength) >>> 0;
      await dev.write(tcp4({ src: REMOTE, dst: LOCAL, sport: 7000, dport: syn.tcp.sport, seq: iss + 1, ack: acked, flags: TCP.ACK, window: 65535 }));
    }
    assert.ok(biggest.length > mtu, `a super-packet larger than the MTU (${biggest.length} > ${mtu})`);
    const v = biggest.vnet!;
    assert.equal(v.gsoType & ~GsoType.ECN, GsoType.TCPV4);
    assert.ok(v.gsoSize >= 500 && v.gsoSize <= 1460, `sane gso_size ${v.gsoSize}`);
    assert.ok(v.flags & VIRTIO_NET_HDR_F.NEEDS_CSUM);
    assert.equal(v.csumStart, 20);
    assert.equal(v.csumOffset, 16);
    assert.ok(v.hdrLen >= 40 && v.hdrLen < biggest.length);
  } finally {
    sender.kill('SIGKILL');
    await dev.close();
  }
});

test('a GSO super-packet written to the device is accepted and segmented: the socket gets every byte', async () => {
  const { ns, dev } = setup();
  const receiver = nsSpawn(ns, process.execPath, ['-e', `
    let n = 0;
    const srv = require('node:net').createServer((c) => { c.on('data', (d) => { n += d.length; }); c.on('end', () => { console.log(n); process.exit(0); }); });
    srv.listen(7001, '${LOCAL}', () => console.log('listening'));`]);
  let out = '';
  receiver.stdout!.on('data', (d) => { out += d; });
  try {
    for (let i = 0; i < 100 && !out.includes('listening'); i++) await new Promise((r) => setTimeout(r, 50));
    const sport = 5555;
    const isn = 1000;
    await dev.write(tcp4({ src: REMOTE, dst: LOCAL, sport, dport: 7001, seq: isn, ack: 0, flags: TCP.SYN, options: MSS_OPTION }));
    const synAck = await nextTcp(dev, (t) => t.sport === 7001 && (t.flags & (TCP.SYN | TCP.ACK)) === (TCP.SYN | TCP.ACK));
    const ack = (synAck.tcp.seq + 1) >>> 0;
    await dev.write(tcp4({ src: REMOTE, dst: LOCAL, sport, dport: 7001, seq: isn + 1, ack, flags: TCP.ACK }));

    const payload = Buffer.alloc(30000);
    for (let i = 0; i < payload.length; i++) payload[i] = i & 0xff;
    const superPacket = tcp4({ src: REMOTE, dst: LOCAL, sport, dport: 7001, seq: isn + 1, ack, flags: TCP.ACK | TCP.PSH, payload }, true);
    assert.ok(superPacket.length > 1500);
    await dev.write(superPacket, { vnet: { flags: VIRTIO_NET_HDR_F.NEEDS_CSUM, gsoType: GsoType.TCPV4, gsoSize: 1400, hdrLen: 40, csumStart: 20, csumOffset: 16 } });
    await dev.write(tcp4({ src: REMOTE, dst: LOCAL, sport, dport: 7001, seq: isn + 1 + payload.length, ack, flags: TCP.ACK | TCP.FIN }));
    for (let i = 0; i < 100 && !/^\d+$/m.test(out); i++) await new Promise((r) => setTimeout(r, 50));
    assert.equal(out.trim().split('\n').pop(), String(payload.length), 'the receiving socket got every byte');
    // The receiver acknowledged the whole super-packet.
    const finAck = await nextTcp(dev, (t) => t.sport === 7001 && t.ack === ((isn + 1 + payload.length + 1) >>> 0));
    assert.ok(finAck);
  } finally {
    receiver.kill('SIGKILL');
    await dev.close();
  }
});

test('a GSO header with gso_size 0 is refused with EINVAL', async () => {
  const { dev } = setup();
  try {
    const p = tcp4({ src: REMOTE, dst: LOCAL, sport: 1, dport: 2, seq: 1, ack: 0, flags: TCP.ACK, payload: Buffer.alloc(3000) }, true);
    await assert.rejects(dev.write(p, { vnet: { flags: VIRTIO_NET_HDR_F.NEEDS_CSUM, gsoType: GsoType.TCPV4, gsoSize: 0, hdrLen: 40, csumStart: 20, csumOffset: 16 } }),
      (e: unknown) => (e as { code?: string }).code === 'EINVAL' && /virtio_net_hdr/.test((e as Error).message));
  } finally {
    await dev.close();
  }
});
