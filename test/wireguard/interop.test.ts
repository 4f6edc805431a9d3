// tuntap's WireGuard against Debian's wireguard-go and `wg`, and against itself, in namespaces:
// handshakes both ways, ping and iperf3 over IPv4 and IPv6 outer addresses, the UAPI with the
// real `wg`, attacks that must be dropped and counted, cookies under a flood, timers, roaming.
import { test, after } from 'node:test';
import { randomBytes } from 'node:crypto';
import assert from 'node:assert/strict';
import { WgTopology, ping, iperf, nsRunOk, sleep, waitFor } from './topology.js';
import { openUdp } from '../../src/net/udp.js';
import { createInitiation } from '../../src/wireguard/noise.js';
import { CookieGenerator } from '../../src/wireguard/cookie.js';
import { StaticKey, generatePrivateKey, keyToBase64 } from '../../src/wireguard/crypto.js';
import type { Packed } from '../../src/wireguard/batch.js';
import { nsSpawn } from '../helpers/netns.js';
import { addAddress, addRoute, deleteAddress } from '../../src/netlink/index.js';

const topologies: WgTopology[] = [];
after(async () => { for (const t of topologies) await t.cleanup(); });
function topology(idx: number): WgTopology {
  const t = new WgTopology(idx);
  topologies.push(t);
  return t;
}

test('tuntap initiates to wireguard-go over IPv4: ping v4/v6 and iperf3 both ways; wg show/set via UAPI', async () => {
  const topo = topology(11);
  const a = topo.side(1);
  const b = topo.side(2);
  topo.link(a, b);
  await topo.tuntap(a, [{ side: b, endpoint: 4 }]);
  await topo.wireguardGo(b, [{ side: a }]);
  const p4 = await ping(a.ns, b.inner4);
  assert.ok(p4.ok, p4.out);
  const p6 = await ping(a.ns, b.inner6);
  assert.ok(p6.ok, p6.out);
  const stats = a.wg!.engine.stats;
  assert.equal(stats.handshakeInitiationsSent, 1);
  assert.equal(stats.handshakeResponsesReceived, 1);
  const up = await iperf(b.ns, a.ns, b.inner4, 2);
  const down = await iperf(b.ns, a.ns, b.inner4, 2, true);
  assert.ok(up > 20e6 && down > 20e6, `iperf3 ${up} / ${down} bit/s`);

  // `wg` sees our interface through the UAPI socket
  const dump = (await nsRunOk(a.ns, 'wg', ['show', a.name, 'dump'])).trim().split('\n').map((l) => l.split('\t'));
  assert.equal(dump[0]![1], keyToBase64(a.publicKey));
  assert.equal(dump[0]![2], String(a.port));
  assert.equal(dump[1]![0], keyToBase64(b.publicKey));
  assert.equal(dump[1]![2], `${b.outer4}:${b.port}`);
  assert.ok(Number(dump[1]![4]) > Date.now() / 1000 - 60, 'latest handshake is recent');
  assert.ok(Number(dump[1]![5]) > 1e6 && Number(dump[1]![6]) > 1e6, 'transfer counters count');
  // and wireguard-go agrees the handshake happened
  const theirs = (await nsRunOk(b.ns, 'wg', ['show', b.name, 'latest-handshakes'])).trim().split('\t');
  assert.ok(Number(theirs[1]) > 0);
  // wg set changes our interface: a new allowed prefix and keepalive
  await nsRunOk(a.ns, 'wg', ['set', a.name, 'peer', keyToBase64(b.publicKey), 'allowed-ips', `${b.inner4}/32,${b.inner6}/128,198.19.99.0/24`, 'persistent-keepalive', '7']);
  const peer = a.wg!.engine.getPeer(b.publicKey)!;
  assert.equal(peer.persistentKeepalive, 7);
  assert.equal(a.wg!.engine.allowedIps.lookupAddress('198.19.99.5'), peer);
  const pretty = await nsRunOk(a.ns, 'wg', ['show', a.name]);
  assert.match(pretty, /persistent keepalive: every 7 seconds/);
  // a new listen port rebinds; the peer follows our packets from the new port
  await nsRunOk(a.ns, 'wg', ['set', a.name, 'listen-port', '40123']);
  assert.equal(a.wg!.listenPort, 40123);
  const again = await ping(a.ns, b.inner4, 2);
  assert.ok(again.ok, again.out);
  const theirView = (await nsRunOk(b.ns, 'wg', ['show', b.name, 'endpoints'])).trim().split('\t')[1];
  assert.equal(theirView, `${a.outer4}:40123`);
});

test('wireguard-go initiates to tuntap over IPv6 outer addresses, with a preshared key: ping and iperf3 both ways', async () => {
  const topo = topology(12);
  const a = topo.side(1);
  const b = topo.side(2);
  topo.link(a, b);
  const psk = randomBytes(32);
  await topo.tuntap(a, [{ side: b, psk }]); // no endpoint: we learn it from the initiation
  await topo.wireguardGo(b, [{ side: a, endpoint: 6, psk }]);
  const p = await ping(b.ns, a.inner4);
  assert.ok(p.ok, p.out);
  assert.equal(a.wg!.engine.stats.handshakeInitiationsReceived, 1);
  assert.equal(a.wg!.engine.getPeer(b.publicKey)!.endpoint?.address, b.outer6);
  const p6 = await ping(b.ns, a.inner6);
  assert.ok(p6.ok, p6.out);
  const up = await iperf(a.ns, b.ns, a.inner6, 2);
  const down = await iperf(a.ns, b.ns, a.inner6, 2, true);
  assert.ok(up > 20e6 && down > 20e6, `iperf3 ${up} / ${down} bit/s`);
});

test('the other pairings: tuntap initiates over IPv6, wireguard-go initiates over IPv4', async () => {
  const topo = topology(19);
  const a = topo.side(1);
  const b = topo.side(2);
  topo.link(a, b);
  await topo.tuntap(a, [{ side: b, endpoint: 6 }]);
  await topo.wireguardGo(b, [{ side: a }]);
  const p = await ping(a.ns, b.inner6, 2);
  assert.ok(p.ok, p.out);
  assert.equal(a.wg!.engine.stats.handshakeInitiationsSent, 1);
  const seen = (await nsRunOk(b.ns, 'wg', ['show', b.name, 'endpoints'])).trim().split('\t')[1];
  assert.equal(seen, `[${a.outer6}]:${a.port}`);

  const c = topo.side(3);
  const d = topo.side(4);
  topo.link(c, d);
  await topo.tuntap(c, [{ side: d }]);
  await topo.wireguardGo(d, [{ side: c, endpoint: 4 }]);
  const q = await ping(d.ns, c.inner4, 2);
  assert.ok(q.ok, q.out);
  assert.equal(c.wg!.engine.stats.handshakeInitiationsReceived, 1);
  assert.equal(c.wg!.engine.getPeer(d.publicKey)!.endpoint?.address, d.outer4);
});

test('persistent keepalive: with no traffic at all, our keepalives start a session and reach wireguard-go every second', async () => {
  const topo = topology(22);
  const a = topo.side(1);
  const b = topo.side(2);
  topo.link(a, b);
  await topo.wireguardGo(b, [{ side: a }]); // no endpoint: it learns ours from the handshake
  const wa = await topo.tuntap(a, [{ side: b, endpoint: 4, keepalive: 1 }]);
  const rx = async () => Number((await nsRunOk(b.ns, 'wg', ['show', b.name, 'transfer'])).trim().split('\t')[1]);
  await waitFor('handshake started by the keepalive', async () => await rx() > 0, 5000);
  const before = await rx();
  await sleep(3500);
  const gained = await rx() - before;
  // a keepalive is a 32-byte data message; at least two fit in 3.5 s at one per second (with room for a slow tick)
  assert.ok(gained >= 64, `wireguard-go received ${gained} bytes in 3.5 s`);
  assert.equal(wa.engine.stats.dataPacketsSent, 0, 'nothing but keepalives went out');
});

test('replayed, bit-flipped, bad-MAC1 and garbage datagrams never reach the TUN and are counted; floods get cookies', async () => {
  const topo = topology(13);
  const a = topo.side(1);
  const b = topo.side(2);
  topo.link(a, b);
  const wa = await topo.tuntap(a, [{ side: b, endpoint: 4 }]);
  const wb = await topo.tuntap(b, [{ side: a }], { underLoadPerSecond: 20 });
  // record what A puts on the wire
  const wire: Buffer[] = [];
  const send = wa.engine.io.send;
  wa.engine.io.send = (to, d: Packed) => {
    for (let i = 0; i < d.count; i++) wire.push(Buffer.from(d.buffer.subarray(d.offsets[i], d.offsets[i]! + d.lengths[i]!)));
    send(to, d);
  };
  const p = await ping(a.ns, b.inner4, 2);
  assert.ok(p.ok, p.out);
  await sleep(100);
  const before = { ...wb.engine.stats, dropped: { ...wb.engine.stats.dropped } };
  const tunBefore = wb.tun.stats().rxPackets;
  const data = wire.filter((m) => m[0] === 4 && m.length > 32);
  const init = wire.find((m) => m[0] === 1)!;
  assert.ok(data.length >= 2 && init);
  const attacker = openUdp({ netns: a.ns, bind: { address: a.outer4, port: 0 } });
  try {
    const to = { address: b.outer4, port: b.port };
    // bit flips: in the counter (an unseen counter, so it reaches authentication) and in the payload
    const flipped = Buffer.from(data[1]!);
    flipped[13] ^= 0x01;
    const flipped2 = Buffer.from(flipped);
    flipped2[13] ^= 0x02;
    flipped2[40] ^= 0x10;
    const badMac = Buffer.from(init);
    badMac[120] ^= 0x01;
    await attacker.sendBatch([data[0]!, data[1]!, flipped, flipped2, badMac, Buffer.from('garbage!'), Buffer.alloc(200)], to);
    await waitFor('drops counted', () => wb.engine.stats.dropped.replay >= before.dropped.replay + 2 &&
      wb.engine.stats.dropped.authFailed >= before.dropped.authFailed + 2 && wb.engine.stats.dropped.badMac1 > before.dropped.badMac1 &&
      wb.engine.stats.dropped.malformed >= before.dropped.malformed + 2);
    assert.equal(wb.engine.stats.dataPacketsReceived, before.dataPacketsReceived);
    assert.equal(wb.tun.stats().rxPackets, tunBefore);

    // A flood of initiations with valid MAC1 (from a key B does not know) trips the load limit.
    const stranger = new StaticKey(generatePrivateKey());
    const cookies = new CookieGenerator(b.publicKey, 120_000, () => performance.now());
    const flood: Buffer[] = [];
    // 100 so that even a load window ending mid-flood leaves well over 30 answered with cookies
    for (let i = 0; i < 100; i++) {
      const m = createInitiation(stranger, b.publicKey, Buffer.alloc(32), i, Buffer.alloc(12, i))!.message;
      cookies.stamp(m);
      flood.push(m);
    }
    await attacker.sendBatch(flood, to);
    let replies = 0;
    const reader = (async () => {
      for await (const batch of attacker) {
        for (const d of batch) if (d[0] === 3 && d.length === 64) replies++;
        if (replies >= 30) break;
      }
    })();
    await waitFor('cookie replies', () => replies >= 30, 5000);
    void reader;
    assert.ok(wb.engine.stats.cookieRepliesSent >= 30);
    // a stranger's initiation that gets through MACs still fails (unknown key), and nothing reached the TUN
    assert.equal(wb.tun.stats().rxPackets, tunBefore);
  } finally {
    await attacker.close();
  }
  // the tunnel still works after all that
  const again = await ping(a.ns, b.inner4, 2);
  assert.ok(again.ok, again.out);
});

test('three tuntap peers with overlapping AllowedIPs: each destination reaches the right peer', async () => {
  const topo = topology(14);
  const hub = topo.side(1);
  const spokes = [topo.side(2), topo.side(3), topo.side(4)];
  // one veth per spoke; outer addresses on per-spoke subnets
  for (const [k, s] of spokes.entries()) {
    const v = topo.net.veth(hub.ns, s.ns);
    topo.net.configure(hub.ns, v.a, { addresses: [`198.18.${20 + k}.1/24`] });
    topo.net.configure(s.ns, v.b, { addresses: [`198.18.${20 + k}.2/24`] });
    s.outer4 = `198.18.${20 + k}.2`;
  }
  // spoke 2 owns 198.19.0.0/16, spoke 3 198.19.50.0/24, spoke 4 198.19.50.128/25 (all overlapping)
  const owned = ['198.19.0.0/16', '198.19.50.0/24', '198.19.50.128/25'];
  const targets = ['198.19.7.7', '198.19.50.7', '198.19.50.200'];
  await topo.tuntap(hub, spokes.map((s, k) => ({ side: s, endpoint: 4 as const, allowed: [owned[k]!] })));
  for (const prefix of owned) addRoute({ dst: prefix, dev: hub.name }, { netns: hub.ns });
  for (const [k, s] of spokes.entries()) {
    hub.outer4 = `198.18.${20 + k}.1`;
    await topo.tuntap(s, [{ side: hub, endpoint: 4, allowed: ['198.19.14.1/32', 'fd01:14::1/128'] }]);
    addAddress(s.name, `${targets[k]}/32`, { netns: s.ns });
  }
  for (const [k, s] of spokes.entries()) {
    const r = await ping(hub.ns, targets[k]!, 2);
    assert.ok(r.ok, `${targets[k]}: ${r.out}`);
    assert.equal(s.wg!.engine.stats.dataPacketsReceived >= 2, true);
  }
  // each spoke received only its own pings
  assert.deepEqual(spokes.map((s) => s.wg!.engine.stats.dataPacketsReceived), [2, 2, 2]);
});

test('shortened timers: rekeying keeps a ping stream going; a silent peer expires', async () => {
  const topo = topology(15);
  const a = topo.side(1);
  const b = topo.side(2);
  topo.link(a, b);
  const timers = { rekeyAfterTime: 1500, rejectAfterTime: 3000, rekeyTimeout: 400, keepaliveTimeout: 800, rekeyAttemptTime: 2000 };
  const wa = await topo.tuntap(a, [{ side: b, endpoint: 4 }], timers);
  const wb = await topo.tuntap(b, [{ side: a, endpoint: 4 }], timers);
  const r = await ping(a.ns, b.inner4, 30); // 6 s of pings at 0.2 s
  const loss = Number(/(\d+)% packet loss/.exec(r.out)?.[1]);
  assert.ok(loss <= 10, r.out);
  assert.ok(wa.engine.stats.handshakeInitiationsSent + wb.engine.stats.handshakeInitiationsSent >= 3,
    `handshakes: ${wa.engine.stats.handshakeInitiationsSent}+${wb.engine.stats.handshakeInitiationsSent}`);
  // B goes away: A's session expires after REJECT_AFTER_TIME and A gives up after REKEY_ATTEMPT_TIME
  await wb.close();
  const peer = wa.engine.getPeer(b.publicKey)!;
  await waitFor('session expiry', () => !wa.engine.hasSession(peer), 5000);
  await ping(a.ns, b.inner4, 1);
  await waitFor('handshake attempts given up', () => peer.handshake === undefined && peer.queue.length === 0, 6000);
});

test('shortened timers against wireguard-go: our rekeys every 1.5 s keep a ping stream lossless', async () => {
  const topo = topology(21);
  const a = topo.side(1);
  const b = topo.side(2);
  topo.link(a, b);
  const wa = await topo.tuntap(a, [{ side: b, endpoint: 4 }], { rekeyAfterTime: 1500, rejectAfterTime: 3000, rekeyTimeout: 400, keepaliveTimeout: 800 });
  await topo.wireguardGo(b, [{ side: a }]);
  const r = await ping(a.ns, b.inner4, 30);
  const loss = Number(/(\d+)% packet loss/.exec(r.out)?.[1]);
  assert.ok(loss <= 10, r.out);
  assert.ok(wa.engine.stats.handshakeInitiationsSent >= 3, `handshakes: ${wa.engine.stats.handshakeInitiationsSent}`);
  assert.equal(wa.engine.stats.dropped.authFailed + wa.engine.stats.dropped.unknownIndex, 0);
});

for (const stationary of ['wireguard-go', 'tuntap'] as const) {
  test(`roaming: tuntap moves to a new outer address mid-iperf3; ${stationary} follows and the transfer continues`, async () => {
    const topo = topology(stationary === 'tuntap' ? 17 : 16);
    const a = topo.side(1);
    const b = topo.side(2);
    topo.link(a, b);
    // a (tuntap) roams; b learns a's new endpoint from authenticated packets
    await topo.tuntap(a, [{ side: b, endpoint: 4 }]);
    if (stationary === 'tuntap') await topo.tuntap(b, [{ side: a, endpoint: 4 }]);
    else await topo.wireguardGo(b, [{ side: a, endpoint: 4 }]);
    assert.ok((await ping(a.ns, b.inner4, 1)).ok);
    const server = nsSpawn(b.ns, 'iperf3', ['-s', '-1', '-B', b.inner4]);
    await sleep(300);
    const client = nsRunOk(a.ns, 'iperf3', ['-c', b.inner4, '-t', '5', '-i', '1', '-J']);
    await sleep(1500);
    const moved = `198.18.${topo.idx}.11`;
    // keep the new (secondary) address when the old primary goes
    await nsRunOk(a.ns, 'sh', ['-c', `echo 1 > /proc/sys/net/ipv4/conf/${topo.veth.a}/promote_secondaries`]);
    addAddress(topo.veth.a, `${moved}/24`, { netns: a.ns });
    deleteAddress(topo.veth.a, `${a.outer4}/24`, { netns: a.ns });
    const out = JSON.parse(await client) as { intervals: Array<{ sum: { bits_per_second: number } }> };
    server.kill('SIGKILL');
    const endpoint = stationary === 'tuntap'
      ? b.wg!.engine.getPeer(a.publicKey)!.endpoint?.address
      : (await nsRunOk(b.ns, 'wg', ['show', b.name, 'endpoints'])).trim().split('\t')[1]!.split(':')[0];
    assert.equal(endpoint, moved);
    const last = out.intervals.slice(-2).map((i) => i.sum.bits_per_second);
    assert.ok(last.every((bps) => bps > 5e6), `throughput after the move: ${last.join(', ')}`);
  });
}
