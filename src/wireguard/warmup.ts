// Compiles the data path before the first real packet (and again just after it). V8 optimizes a
// function only after many calls, so on a quiet tunnel (a ping every second) the seal, open and
// route code stayed in the baseline tier for minutes, touching several times more memory per
// packet than optimized code; on a busy host, where that memory is cold again a few
// milliseconds after the last packet, this was most of the added ping RTT. Two private engines
// exchange a handshake and a few thousand small batches in memory (no I/O), with the argument
// types the interface passes, so the method code every engine shares is optimized.
import { WireGuardEngine, type Packed } from './engine.js';
import { generatePrivateKey } from './crypto.js';
import { DatagramBatch } from '../net/udp.js';
import { encodeEndpoint, ENDPOINT_SIZE } from '../net/endpoint.js';
import { GroCoalescer } from '../packet/index.js';

const ROUNDS = 3000;
const REWARM_SLICES = 10;
const REWARM_ROUNDS = 200;
let warmed = false;
let rewarmed = false;

// One IPv4 ICMP echo, one IPv4 TCP segment and one IPv6 ICMPv6 echo between the two engines.
function samplePackets(): Buffer[] {
  const v4 = (proto: number, len: number, dir: 0 | 1) => {
    const p = Buffer.alloc(len);
    p[0] = 0x45; p.writeUInt16BE(len, 2); p[8] = 64; p[9] = proto;
    p.set([198, 19, 255, dir ? 2 : 1], 12); p.set([198, 19, 255, dir ? 1 : 2], 16);
    if (proto === 6) p[32] = 0x50;
    return p;
  };
  const v6 = (len: number, dir: 0 | 1) => {
    const p = Buffer.alloc(len);
    p[0] = 0x60; p.writeUInt16BE(len - 40, 4); p[6] = 58; p[7] = 64;
    p[8] = 0xfd; p[23] = dir ? 2 : 1; p[24] = 0xfd; p[39] = dir ? 1 : 2;
    return p;
  };
  // The last one is routed to no peer (as the kernel's own IPv6 multicast listener reports are).
  const stray = v4(17, 60, 0);
  stray.set([198, 19, 254, 9], 16);
  return [v4(1, 84, 0), v4(6, 92, 0), v6(104, 0), v4(1, 84, 1), v4(6, 92, 1), v6(104, 1), stray];
}

/** Runs once per process; cheap (a few tens of milliseconds) next to opening a TUN device. */
export function warmDataPath(): void {
  if (warmed) return;
  warmed = true;
  exercise(ROUNDS);
}

/**
 * Once real traffic has flowed both ways (once per process): the first real packets bring
 * object shapes and branches the synthetic ones lacked, which throws the optimized code away;
 * a second round, now with both in the type feedback, compiles code that fits them. It runs in
 * slices between I/O so that no packet waits behind more than one slice (a few milliseconds).
 */
export function rewarmDataPath(): void {
  if (rewarmed) return;
  rewarmed = true;
  let slices = REWARM_SLICES;
  const step = () => {
    exercise(REWARM_ROUNDS);
    if (--slices > 0) setImmediate(step);
  };
  setImmediate(step);
}

/**
 * One warm-up pass of `rounds` batches; returns what the two engines delivered and dropped
 * (other than the deliberate no-route packets), so tests can check the pass really ran the path.
 */
export function exercise(rounds: number): { sent: number; delivered: number; dropped: number } {
  let delivered = 0;
  let sent = 0;
  const ends = [
    { address: '198.18.255.1', port: 1 },
    { address: '198.18.255.2', port: 2 },
  ];
  const inbox: Array<Array<{ buffer: Buffer; from: number }>> = [[], []];
  const gro = new GroCoalescer({ verifyChecksums: false });
  const engines = ends.map((_, me) => new WireGuardEngine({
    send: (to, d: Packed) => {
      const dest = to.port === 1 ? 0 : 1;
      for (let i = 0; i < d.count; i++) {
        inbox[dest]!.push({ buffer: Buffer.from(d.buffer.subarray(d.offsets[i]!, d.offsets[i]! + d.lengths[i]!)), from: me });
      }
    },
    deliver: (packets) => {
      delivered += packets.length;
      const out = Buffer.allocUnsafe(GroCoalescer.outputBound(packets));
      gro.coalesce(packets, out);
    },
  }, { privateKey: generatePrivateKey() }));
  engines.forEach((e, me) => {
    const other = 1 - me;
    e.setPeer({
      publicKey: engines[other]!.publicKey!, endpoint: ends[other],
      allowedIps: [`198.19.255.${other + 1}/32`, `fd00::${other + 1}/128`],
    });
  });
  // Received datagrams as the UDP socket hands them over: a DatagramBatch over one buffer.
  const slot = 2048;
  const area = Buffer.alloc(slot * 4);
  const endpoints = new Uint8Array(4 * ENDPOINT_SIZE);
  const batch = new DatagramBatch(area, new Uint32Array(4), new Uint32Array(4), new Uint16Array(4), endpoints);
  const pump = () => {
    for (let guard = 0; guard < 8; guard++) {
      let moved = false;
      for (const dest of [0, 1]) {
        const items = inbox[dest]!.splice(0, 4);
        if (items.length === 0) continue;
        moved = true;
        items.forEach((it, i) => {
          it.buffer.copy(area, i * slot);
          batch.offsets[i] = i * slot;
          batch.lengths[i] = it.buffer.length;
          batch.sources[i] = i;
          encodeEndpoint(ends[it.from]!.address, ends[it.from]!.port, endpoints, i * ENDPOINT_SIZE);
        });
        batch.count = items.length;
        batch.messages = items.length;
        engines[dest]!.receive(batch);
      }
      if (!moved) return;
    }
  };
  // As the TUN hands packets over: one buffer, Uint32Array offsets and lengths.
  const packets = samplePackets();
  const staging = Buffer.alloc(slot * 2);
  const offsets = Uint32Array.of(0, slot);
  const lengths = new Uint32Array(2);
  for (let r = 0; r < rounds; r++) {
    const dir = r & 1;
    const n = (r >> 1) % 3 === 0 ? 2 : 1;
    for (let k = 0; k < n; k++) {
      const p = packets[dir * 3 + ((r + k) % 3)]!;
      p.copy(staging, k * slot);
      lengths[k] = p.length;
    }
    if (r % 16 === 15) {
      // Now and then a packet to nowhere, a keepalive and a timer tick: branches real traffic takes.
      packets[6]!.copy(staging, 0);
      lengths[0] = packets[6]!.length;
      engines[dir]!.sendPackets(staging, offsets, lengths, 1);
      const e = engines[dir]!;
      for (const peer of e.peers.values()) e.sendKeepalive(peer);
      e.tick();
    } else {
      engines[dir]!.sendPackets(staging, offsets, lengths, n);
      sent += n;
    }
    pump();
  }
  let dropped = 0;
  for (const e of engines) {
    for (const [why, n] of Object.entries(e.stats.dropped)) if (why !== 'noRoute') dropped += n;
    e.close();
  }
  return { sent, delivered, dropped };
}
