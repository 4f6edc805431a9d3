// The proxy on the device's offload modes, end to end through dante: with 'raw' (the default)
// the TUN hands over TCP super-packets even at a 1500-byte MTU and each is translated once and
// written back behind its own virtio_net_hdr; with 'split' the device splits and coalesces them.
// Either way every byte an echo server sends back must be the byte the app sent, both ways,
// over IPv4 and IPv6. The UDP relay's drops show in the stats and the metrics.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { nsExec, nsRun } from '../helpers/netns.js';
import { ProxyTopology, SERVER4, SERVER6, PROXY4 } from './topology.js';

let t: ProxyTopology;

before(async () => {
  t = new ProxyTopology();
  await t.startServers();
  await t.startDante(1081);
});
after(() => t?.cleanup());

const ECHO_BYTES = 6 * 2 ** 20;

// Sends ECHO_BYTES of a counter pattern to the echo server and checks what comes back, byte for byte.
const echoScript = `
const net = require('node:net');
const [host, total] = [process.argv[1], Number(process.argv[2])];
const data = Buffer.alloc(total);
for (let i = 0; i < total; i += 4) data.writeUInt32BE((i * 2654435761) >>> 0, i);
const s = net.connect({ host, port: 7000 });
const got = [];
let n = 0;
s.on('data', (c) => { got.push(c); n += c.length; if (n >= total) s.end(); });
s.on('end', () => {
  const all = Buffer.concat(got);
  console.log(JSON.stringify({ length: all.length, same: all.equals(data) }));
});
s.on('error', (e) => { console.error(e.message); process.exit(1); });
s.write(data);
`;

async function echo(host: string): Promise<void> {
  const r = await nsRun(t.app, process.execPath, ['-e', echoScript, host, String(ECHO_BYTES)], 60_000);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), { length: ECHO_BYTES, same: true }, `echo through ${host}`);
}

for (const mode of ['raw', 'split'] as const) {
  test(`offload ${mode} at TUN MTU 1500: ${ECHO_BYTES >> 20} MiB echoed intact both ways over IPv4 and IPv6` +
    (mode === 'raw' ? ', carried in super-packets larger than the MTU' : ''), async () => {
    const args = ['--proxy', `socks5://${PROXY4}:1081`, '--route', '--mtu', '1500', ...(mode === 'raw' ? [] : ['--offload', mode])];
    await t.withTuntap('socks', args, async (p) => {
      await echo(SERVER4);
      await echo(SERVER6);
      const s = await p.waitStats((x) => x.bytesDown >= 2 * ECHO_BYTES && x.sessions === 0);
      const tun = nsExec(t.app, 'ip', '-j', 'link', 'show', 'type', 'tun');
      assert.match(tun, /"mtu":1500/);
      // Four transfers of ECHO_BYTES crossed the TUN, each in both its data and its ACKs.
      const perPacket = (4 * ECHO_BYTES) / s.packetsIn!;
      console.log(`# offload ${mode}: ${s.packetsIn} packets in, ${perPacket.toFixed(0)} bytes of payload per packet`);
      if (mode === 'raw') assert.ok(perPacket > 1500, `super-packets: ${perPacket.toFixed(0)} bytes per packet`);
      else assert.ok(perPacket < 1500, `ordinary packets: ${perPacket.toFixed(0)} bytes per packet`);
    });
  });
}

// Sends 300 datagrams from one socket at once: the relay queues 64 while its session opens.
const burstScript = `
const s = require('node:dgram').createSocket('udp4');
s.connect(9, process.argv[1], () => {
  for (let i = 0; i < 300; i++) s.send(Buffer.alloc(100, i & 255));
  setTimeout(() => s.close(), 500);
});
`;

test('the UDP relay\'s drops (a burst past its queue while a session opens) show in the stats and the metrics', async () => {
  await t.withTuntap('socks', ['--proxy', `socks5://${PROXY4}:1081`, '--route', '--udp', '--metrics', '9464'], async (p) => {
    const r = await nsRun(t.app, process.execPath, ['-e', burstScript, SERVER4], 20_000);
    assert.equal(r.code, 0, r.stderr);
    const s = await p.waitStats((x) => x.udpSent >= 1 && x.udpDropped! >= 1);
    assert.ok(s.udpSent! + s.udpDropped! <= 300, JSON.stringify(s));
    const metrics = nsExec(t.app, 'curl', '-sS', '--fail', '--max-time', '5', 'http://127.0.0.1:9464/metrics');
    const line = metrics.split('\n').find((l) => l.startsWith('tuntap_proxy_dropped_packets_total') && l.includes('reason="udp_relay"'));
    assert.ok(line, metrics);
    assert.ok(Number(line.split(' ').pop()) >= 1, line);
  });
});
