// Compiles the data path before the first real packet (and again just after it). V8 optimizes a
// function only after many calls, so on a quiet tunnel (a ping every second) the seal, open and
// route code stayed in the baseline tier for minutes, touching several times more memory per
// packet than optimized code; on a busy host, where that memory is cold again a few
// milliseconds after the last packet, this was most of the added ping RTT. Two private engines
// exchange a handshake and a few thousand small batches in memory (no I/O), with the argument
// types the interface passes, so the method code every engine shares is optimized.
import { WireGuardEngine } from './engine.js';
import { packetViews, type Packed } from './batch.js';
import { generatePrivateKey } from './crypto.js';
import { DatagramBatch } from '../net/udp.js';
import { encodeEndpoint, ENDPOINT_SIZE } from '../net/endpoint.js';
import { GroCoalescer, IpProtocol, buildIpv4, buildIpv6 } from '../packet/index.js';

const ROUNDS = 3000;
const REWARM_ROUNDS = 2000;
const REWARM_DELAY_MS = 20;
let warmed = false;
let rewarmed = false;

/** The two engines' outer endpoints and inner addresses. */
const ENDS = [
  { address: '198.18.255.1', port: 1 },
  { address: '198.18.255.2', port: 2 },
];
const INNER = [{ v4: '198.19.255.1', v6: 'fd00::1' }, { v4: '198.19.255.2', v6: 'fd00::2' }];

// One IPv4 ICMP echo, one IPv4 TCP segment and one IPv6 ICMPv6 echo each way between the two
// engines' inner addresses (INNER), as the TUN would hand them over.
function samplePackets(): Buffer[] {
  const tcp = Buffer.alloc(72);
  tcp[12] = 0x50; // a 20-byte TCP header
  const each = (dir: 0 | 1) => {
    const [src, dst] = [INNER[dir]!, INNER[1 - dir]!];
    return [
      buildIpv4({ protocol: IpProtocol.ICMP, src: src.v4, dst: dst.v4, payload: Buffer.alloc(64) }),
      buildIpv4({ protocol: IpProtocol.TCP, src: src.v4, dst: dst.v4, payload: tcp }),
      buildIpv6({ protocol: IpProtocol.ICMPv6, src: src.v6, dst: dst.v6, payload: Buffer.alloc(64) }),
    ];
  };
  // The last one is routed to no peer (as the kernel's own IPv6 multicast listener reports are).
  const stray = buildIpv4({ protocol: IpProtocol.UDP, src: INNER[0]!.v4, dst: '198.19.254.9', payload: Buffer.alloc(40) });
  return [...each(0), ...each(1), stray];
}

/**
 * V8 flags for a process that is a tunnel (`tuntap wg up` sets them once the tunnel is up; a
 * program embedding a WireGuardInterface may do the same with v8.setFlagsFromString). A quiet
 * tunnel calls its I/O glue a few times a second, so V8's usual tiering keeps it in baseline
 * code for minutes, and baseline code's inline-cache lookups touch far more memory than
 * optimized code: memory that is cold again at every wake-up of an idle host. With these a
 * function is optimized after a few calls instead of hundreds.
 */
export const V8_TUNNEL_FLAGS: readonly string[] = [
  '--interrupt-budget=64',
  '--ticks-before-optimization=0',
  '--minimum-invocations-after-ic-update=1',
];

/** Runs once per process; cheap (a few tens of milliseconds) next to opening a TUN device. */
export function warmDataPath(): void {
  if (warmed) return;
  warmed = true;
  exercise(ROUNDS);
}

/**
 * Once real traffic has flowed both ways (once per process): the first real packets bring
 * object shapes and branches the synthetic ones lacked, which throws the optimized code away;
 * a second pass, now with both in the type feedback, compiles code that fits them. It runs in
 * one go, just after the first exchange: spread in millisecond slices between I/O it took
 * seconds and delayed the packets of those seconds (measured: the first 20 pings of a tunnel
 * averaged 1.0–1.5 ms that way, 0.85 ms with one block of a few tens of milliseconds).
 */
export function rewarmDataPath(): void {
  if (rewarmed) return;
  rewarmed = true;
  // A moment later, so the packets of this exchange (a reply on its way) go out first.
  setTimeout(() => exercise(REWARM_ROUNDS), REWARM_DELAY_MS).unref();
}

/**
 * One warm-up pass of `rounds` batches; returns what the two engines delivered and dropped
 * (other than the deliberate no-route packets), so tests can check the pass really ran the path.
 */
export function exercise(rounds: number): { sent: number; delivered: number; dropped: number } {
  const pair = new WarmupPair();
  pair.run(rounds);
  return pair.close();
}

const SLOT = 2048;

/** Two engines peered with each other over an in-memory wire. */
class WarmupPair {
  sent = 0;
  delivered = 0;
  private round = 0;
  private readonly inbox: Array<Array<{ buffer: Buffer; from: number }>> = [[], []];
  private readonly gro = new GroCoalescer({ verifyChecksums: false });
  private readonly engines: WireGuardEngine[];
  // Received datagrams as the UDP socket hands them over: a DatagramBatch over one buffer.
  private readonly area = Buffer.alloc(SLOT * 4);
  private readonly endpoints = new Uint8Array(4 * ENDPOINT_SIZE);
  private readonly batch = new DatagramBatch(this.area, new Uint32Array(4), new Uint32Array(4), new Uint16Array(4), this.endpoints);
  // As the TUN hands packets over: one buffer, Uint32Array offsets and lengths.
  private readonly packets = samplePackets();
  private readonly staging = Buffer.alloc(SLOT * 2);
  private readonly offsets = Uint32Array.of(0, SLOT);
  private readonly lengths = new Uint32Array(2);

  constructor() {
    this.engines = ENDS.map((_, me) => new WireGuardEngine({
      send: (to, d: Packed) => {
        const dest = to.port === 1 ? 0 : 1;
        for (const datagram of packetViews(d)) this.inbox[dest]!.push({ buffer: Buffer.from(datagram), from: me });
        return true;
      },
      deliver: (d: Packed) => {
        this.delivered += d.count;
        const packets = packetViews(d);
        const out = Buffer.allocUnsafe(GroCoalescer.outputBound(packets));
        this.gro.coalesce(packets, out);
        return true;
      },
    }, { privateKey: generatePrivateKey() }));
    this.engines.forEach((e, me) => {
      const other = 1 - me;
      e.setPeer({
        publicKey: this.engines[other]!.publicKey!, endpoint: ENDS[other],
        allowedIps: [`${INNER[other]!.v4}/32`, `${INNER[other]!.v6}/128`],
      });
    });
  }

  private pump(): void {
    const { area, batch, endpoints } = this;
    for (let guard = 0; guard < 8; guard++) {
      let moved = false;
      for (const dest of [0, 1]) {
        const items = this.inbox[dest]!.splice(0, 4);
        if (items.length === 0) continue;
        moved = true;
        items.forEach((it, i) => {
          it.buffer.copy(area, i * SLOT);
          batch.offsets[i] = i * SLOT;
          batch.lengths[i] = it.buffer.length;
          batch.sources[i] = i;
          encodeEndpoint(ENDS[it.from]!.address, ENDS[it.from]!.port, endpoints, i * ENDPOINT_SIZE);
        });
        batch.count = items.length;
        batch.messages = items.length;
        this.engines[dest]!.receive(batch);
      }
      if (!moved) return;
    }
  }

  /** Sends `rounds` batches, alternating directions; returns rounds. */
  run(rounds: number): number {
    const { packets, staging, offsets, lengths } = this;
    for (let k = 0; k < rounds; k++) {
      const r = this.round++;
      const dir = r & 1;
      const e = this.engines[dir]!;
      if (r % 16 === 15) {
        // Now and then a packet to nowhere, a keepalive and a timer tick: branches real traffic takes.
        packets[6]!.copy(staging, 0);
        lengths[0] = packets[6]!.length;
        e.sendPackets(staging, offsets, lengths, 1);
        for (const peer of e.peers.values()) e.sendKeepalive(peer);
        e.tick();
      } else {
        const n = (r >> 1) % 3 === 0 ? 2 : 1;
        for (let j = 0; j < n; j++) {
          const p = packets[dir * 3 + ((r + j) % 3)]!;
          p.copy(staging, j * SLOT);
          lengths[j] = p.length;
        }
        e.sendPackets(staging, offsets, lengths, n);
        this.sent += n;
      }
      this.pump();
    }
    return rounds;
  }

  close(): { sent: number; delivered: number; dropped: number } {
    let dropped = 0;
    for (const e of this.engines) {
      for (const [why, n] of Object.entries(e.stats.dropped)) if (why !== 'noRoute') dropped += n;
      e.close();
    }
    return { sent: this.sent, delivered: this.delivered, dropped };
  }
}
