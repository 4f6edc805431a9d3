// Compiles the data path before the first real packet. V8 optimizes a function only after many
// calls, so on a quiet tunnel (a ping every second) the seal, open and route code stayed in the
// baseline tier for minutes, touching several times more memory per packet than optimized code;
// on a busy host, where that memory is cold again a few milliseconds after the last packet, this
// was most of the added ping RTT. Two private engines exchange a handshake and a few thousand
// small batches in memory (no I/O), with the argument types and batch shapes the interface
// passes: what the TUN queue hands over in split mode comes out of the queue's own Splitter
// (super-packets split, partial checksums completed), and what the engine delivers goes into the
// queue's own Coalescer, so that code is compiled too.
//
// There is no second pass once real traffic flows. One used to run just after the first exchange
// (to recompile for the shapes real packets bring), but it blocked the event loop in one piece:
// measured on this 2-core machine under load, it held the first pings of a new tunnel 50–475 ms
// per process, while the steady-state RTT with and without it was the same (0.76–1.00 ms vs
// 0.67–0.84 ms, medians of 20 pings, 4 rounds each).
import { WireGuardEngine } from './engine.js';
import type { Packed } from './batch.js';
import { batchViews } from '../base/batch.js';
import { generatePrivateKey } from './crypto.js';
import { DatagramBatch, openUdp, type SendOptions, type UdpSocket } from '../net/udp.js';
import { encodeEndpoint, ENDPOINT_SIZE, type Endpoint, type ResolvedEndpoint } from '../net/endpoint.js';
import { IpProtocol, TcpFlags, buildIpv4, buildIpv6, buildTcp, partialPseudoChecksum } from '../packet/index.js';
import { Coalescer, Splitter } from '../device/offload.js';
import type { NetnsRef } from '../netns.js';
import { encodeVnetHdr, GsoType, VIRTIO_NET_HDR_F } from '../base/vnet.js';
import { openQueuePair, type QueuePair } from '../device/packet-pair.js';
import type { PacketBatch, QueueCounters } from '../device/index.js';
import { WireGuardInterface } from './interface.js';

const ROUNDS = 3000;
const SOCKET_ROUNDS = 400;
/**
 * Round trips of the interface pass: each runs every function of the data path twice (once per
 * interface), and V8's usual thresholds (the tunnel's lower ones apply only after the warm-up)
 * need a few thousand calls to optimize the queue's write and read code.
 */
const INTERFACE_ROUNDS = 1000;
const SHORT_INTERFACE_ROUNDS = 24;
/** Handshakes before the long pass: each a fresh pair (a pair repeating its own would be refused as a replay). */
const HANDSHAKES = 12;
let warmed = false;

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

/**
 * Runs once per process, with its loopback sockets in `netns` (the first interface's namespace);
 * cheap (a few tens of milliseconds) next to opening a TUN device. The
 * in-memory pass compiles the protocol; a shorter pass over two loopback sockets then compiles the
 * UDP socket's send and receive code and the readiness loop with the shapes real datagrams give
 * them (measured: without it, those functions were compiled all at once on the first real
 * packets, and the compiler's threads competing for the CPU held the first pings 5-30 ms).
 */
export async function warmDataPath(netns?: NetnsRef): Promise<WarmupSummary | undefined> {
  if (warmed) return undefined;
  warmed = true;
  const memory = exercise(ROUNDS);
  const sockets = await exerciseSockets(SOCKET_ROUNDS, { netns });
  // A short pass closed at once first, for the reason exercise() gives: closing an interface
  // and its queue empties fields the data path reads, and once those are widened, closing the
  // long pass's interfaces throws none of its optimized code away.
  await exerciseInterfaces(SHORT_INTERFACE_ROUNDS, { netns });
  const interfaces = await exerciseInterfaces(INTERFACE_ROUNDS, { netns });
  return { memory, sockets, interfaces };
}

/** What each pass of the warm-up moved (undefined: that pass could not run). */
export interface WarmupSummary {
  memory: WarmupResult;
  sockets: WarmupResult | undefined;
  interfaces: InterfacePassResult | undefined;
}

export interface WarmupResult {
  sent: number;
  delivered: number;
  /** Drops other than the deliberate no-route packets. */
  dropped: number;
  /** Super-packets the TUN queue's Splitter split, and packets its Coalescer merged. */
  superPacketsSplit: number;
  packetsCoalesced: number;
}

/**
 * One warm-up pass of `rounds` batches; returns what the two engines delivered and dropped
 * (other than the deliberate no-route packets), so tests can check the pass really ran the path.
 */
export function exercise(rounds: number): WarmupResult {
  // A short pass closed at once first: closing drops sessions and zeroes keys, which widens the
  // types of fields the data path reads (a keypair slot becomes empty, ...). Widened before the
  // long pass optimizes, the optimized code allows for it, and closing the long pass's engines
  // afterwards throws none of it away.
  // The first real packet starts a handshake, so its code (BLAKE2s, the Noise steps) is compiled
  // here too: one handshake per pair, several pairs.
  for (let i = 0; i < HANDSHAKES; i++) {
    const short = new WarmupPair(memoryWire());
    short.run(i === 0 ? 32 : 2);
    short.close();
  }
  const pair = new WarmupPair(memoryWire());
  pair.run(rounds);
  return pair.close();
}

/**
 * A pass of `rounds` batches whose datagrams cross two UDP sockets bound to 127.0.0.1 in `netns`
 * (default: this thread's namespace), opened like the interface's (GRO) and sent to with its
 * options (GSO): the loopback device carries them from one socket to the other and no further,
 * and the engines are the pass's own, so no real peer or session sees any of it. Given up when
 * that namespace's loopback does not carry them (`lo` down). Returns what the pass delivered, or
 * undefined when it could not run or was given up.
 */
export async function exerciseSockets(rounds: number, opts: { netns?: NetnsRef } = {}): Promise<WarmupResult | undefined> {
  const wire = LoopbackWire.open(opts.netns);
  if (!wire) return undefined;
  try {
    const pair = new WarmupPair(wire);
    let carried = true;
    for (let k = 0; k < rounds && carried; k++) {
      pair.run(1);
      carried = await wire.settled();
    }
    const result = pair.close();
    return carried ? result : undefined;
  } finally {
    await wire.close();
  }
}

const SLOT = 2048;
const VNET_HDR = 10;
const MSS = 1368;

/** A TCP super-packet of three segments from `src` to `dst`, as the kernel hands it over with TSO (NEEDS_CSUM: the pseudo-header sum in the field). */
function superPacket(src: string, dst: string): Buffer {
  const ip = { src, dst };
  const pkt = buildIpv4({ ...ip, protocol: IpProtocol.TCP, dontFragment: true,
    payload: buildTcp({ srcPort: 40000, dstPort: 5201, seq: 1, ack: 1, flags: TcpFlags.ACK, window: 500, payload: Buffer.alloc(3 * MSS) }, ip) });
  const partial = partialPseudoChecksum(pkt, 0, IpProtocol.TCP, pkt.length - 20);
  pkt[36] = partial >> 8;
  pkt[37] = partial & 0xff;
  return pkt;
}
const TSO_HEADER = { flags: VIRTIO_NET_HDR_F.NEEDS_CSUM, gsoType: GsoType.TCPV4, hdrLen: 40, gsoSize: MSS, csumStart: 20, csumOffset: 16 };

/**
 * One side's TUN reads, as a queue in split mode serves them: packets laid out behind their
 * virtio_net_hdr as a drain leaves them, then handed to the engine in the batches the queue's
 * own Splitter makes of them.
 */
class TunDrain {
  readonly counters = { superPacketsRead: 0, offloadDrops: 0 };
  private readonly arena = Buffer.alloc(8 * SLOT + 8 * SLOT);
  private readonly raw = { offsets: new Uint32Array(8), lengths: new Uint32Array(8) };
  private readonly splitter = new Splitter(this.arena, 8 * SLOT, 64, this.raw,
    { vnetHdrSize: VNET_HDR, vnetLittleEndian: true, mode: 'tun' }, this.counters);
  private count = 0;
  private at = 0;

  add(packet: Buffer, header: Parameters<typeof encodeVnetHdr>[0] = {}): void {
    encodeVnetHdr(header, this.arena, this.at, VNET_HDR);
    packet.copy(this.arena, this.at + VNET_HDR);
    this.raw.offsets[this.count] = this.at + VNET_HDR;
    this.raw.lengths[this.count] = packet.length;
    this.count++;
    this.at = (this.at + VNET_HDR + packet.length + 7) & ~7;
  }

  /** Hands what was added to `engine` as the queue would; returns the packets handed over. */
  drainInto(engine: WireGuardEngine): number {
    let handed = 0;
    this.splitter.load(this.count);
    while (this.splitter.pending) {
      const out = this.splitter.next();
      if (out.count > 0) engine.sendPackets(out.buffer, out.offsets, out.lengths, out.count);
      handed += out.count;
    }
    this.count = this.at = 0;
    return handed;
  }
}

/** What carries the two engines' datagrams: where each engine is, and how a batch reaches the other. */
interface Wire {
  readonly ends: readonly Endpoint[];
  /** Sends `d` from engine `me` to `to`; returns true when `d`'s bytes are free again. */
  send(me: number, to: ResolvedEndpoint, d: Packed): boolean;
  /** Hands the engines what was sent to them; `receive(dest, batch)` takes one batch. */
  pump(receive: (dest: number, batch: DatagramBatch) => void): void;
  /** Called once the engines exist: a wire that delivers by itself starts here. */
  attach(receive: (dest: number, batch: DatagramBatch) => void): void;
}

/** The in-memory wire: datagrams copied into a queue per engine, handed over in batches of four. */
function memoryWire(): Wire {
  const inbox: Array<Array<{ buffer: Buffer; from: number }>> = [[], []];
  // Received datagrams as the UDP socket hands them over: a DatagramBatch over one buffer.
  const area = Buffer.alloc(SLOT * 4);
  const endpoints = new Uint8Array(4 * ENDPOINT_SIZE);
  const batch = new DatagramBatch(area, new Uint32Array(4), new Uint32Array(4), new Uint16Array(4), endpoints);
  return {
    ends: ENDS,
    send(me, to, d) {
      const dest = to.port === ENDS[0]!.port ? 0 : 1;
      for (const datagram of batchViews(d)) inbox[dest]!.push({ buffer: Buffer.from(datagram), from: me });
      return true;
    },
    attach() {},
    pump(receive) {
      for (let guard = 0; guard < 8; guard++) {
        let moved = false;
        for (const dest of [0, 1]) {
          const items = inbox[dest]!.splice(0, 4);
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
          receive(dest, batch);
        }
        if (!moved) return;
      }
    },
  };
}

/** The interface's sends: GSO groups (interface.ts, with offloads). */
const LOOPBACK_SEND: SendOptions = { gsoSize: 'auto' };

/** Two UDP sockets on 127.0.0.1, each receiving for one engine (see exerciseSockets). */
class LoopbackWire implements Wire {
  private sent = 0;
  private received = 0;
  private wake: ((ok: boolean) => void) | undefined;
  readonly ends: readonly Endpoint[];

  private constructor(private readonly sockets: UdpSocket[]) {
    this.ends = sockets.map((s) => s.localEndpoint);
  }

  static open(netns: NetnsRef | undefined): LoopbackWire | undefined {
    const sockets: UdpSocket[] = [];
    try {
      // As the interface opens its sockets (interface.ts bind()), on loopback.
      for (let i = 0; i < 2; i++) {
        sockets.push(openUdp({ netns, bind: { address: '127.0.0.1', port: 0 }, recvBufferSize: 1 << 20, sendBufferSize: 1 << 20, gro: true }));
      }
      return new LoopbackWire(sockets);
    } catch {
      for (const s of sockets) void s.close();
      return undefined;
    }
  }

  send(me: number, to: ResolvedEndpoint, d: Packed): boolean {
    this.sent += d.count;
    return this.sockets[me]!.post(d, to, LOOPBACK_SEND);
  }

  pump(): void {}

  attach(receive: (dest: number, batch: DatagramBatch) => void): void {
    this.sockets.forEach((sock, dest) => sock.receiveEach((batch) => {
      this.received += batch.count;
      receive(dest, batch);
      if (this.received >= this.sent) this.wake?.(true);
    }, () => this.wake?.(false)));
  }

  /** Resolves once everything sent has arrived (false: it did not within 100 ms, or a socket failed). */
  settled(): Promise<boolean> {
    if (this.received >= this.sent) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), 100);
      this.wake = (ok) => { clearTimeout(timer); this.wake = undefined; resolve(ok); };
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.sockets.map((s) => s.close()));
  }
}

/** Two engines peered with each other over a wire (in memory, or loopback sockets). */
class WarmupPair {
  sent = 0;
  delivered = 0;
  packetsCoalesced = 0;
  private round = 0;
  // What the TUN queue does with a delivered batch in split mode (WireGuard's settings: no checksum check, no USO).
  private readonly coalescer = new Coalescer({ mode: 'tun', headerSize: VNET_HDR, littleEndian: true, verifyChecksums: false, udp: false });
  private readonly engines: WireGuardEngine[];
  private readonly receive = (dest: number, batch: DatagramBatch) => this.engines[dest]!.receive(batch);
  private readonly packets = samplePackets();
  private readonly superPackets = [0, 1].map((dir) => superPacket(INNER[dir]!.v4, INNER[1 - dir]!.v4));
  private readonly tuns = [new TunDrain(), new TunDrain()];

  constructor(private readonly wire: Wire) {
    const send = (me: number, to: ResolvedEndpoint, d: Packed) => wire.send(me, to, d);
    const deliver = (d: Packed) => {
      this.delivered += d.count;
      this.packetsCoalesced += this.coalescer.coalesce(d)?.merged ?? 0;
      return true;
    };
    // Each engine's I/O functions are closures made at a place of their own, as the interface's
    // are: the engine's calls into its I/O then see more than one closure and are compiled as
    // calls to any function, so the interface's own closures do not throw that code away.
    const options = () => ({ privateKey: generatePrivateKey() });
    this.engines = [
      new WireGuardEngine({ send: (to, d) => send(0, to, d), deliver: (d) => deliver(d) }, options()),
      new WireGuardEngine({ send: (to, d) => send(1, to, d), deliver: (d) => deliver(d) }, options()),
    ];
    this.engines.forEach((e, me) => {
      const other = 1 - me;
      e.setPeer({
        publicKey: this.engines[other]!.publicKey!, endpoint: wire.ends[other],
        allowedIps: [`${INNER[other]!.v4}/32`, `${INNER[other]!.v6}/128`],
      });
    });
    wire.attach(this.receive);
  }

  /** Sends `rounds` batches, alternating directions; returns rounds. */
  run(rounds: number): number {
    const { packets } = this;
    for (let k = 0; k < rounds; k++) {
      const r = this.round++;
      const dir = r & 1;
      const e = this.engines[dir]!;
      const tun = this.tuns[dir]!;
      if (r % 16 === 15) {
        // Now and then a packet to nowhere, a keepalive and a timer tick: branches real traffic takes.
        tun.add(packets[6]!);
        tun.drainInto(e);
        for (const peer of e.peers.values()) e.sendKeepalive(peer);
        e.tick();
      } else {
        // One or two small packets, and now and then a TCP super-packet behind them (bulk traffic).
        const n = (r >> 1) % 3 === 0 ? 2 : 1;
        for (let j = 0; j < n; j++) tun.add(packets[dir * 3 + ((r + j) % 3)]!);
        if ((r >> 1) % 8 === 5) tun.add(this.superPackets[dir]!, TSO_HEADER);
        this.sent += tun.drainInto(e);
      }
      this.wire.pump(this.receive);
    }
    return rounds;
  }

  close(): WarmupResult {
    let dropped = 0;
    for (const e of this.engines) {
      for (const [why, n] of Object.entries(e.stats.dropped)) if (why !== 'noRoute') dropped += n;
      e.close();
    }
    const superPacketsSplit = this.tuns.reduce((n, t) => n + t.counters.superPacketsRead, 0);
    return { sent: this.sent, delivered: this.delivered, dropped, superPacketsSplit, packetsCoalesced: this.packetsCoalesced };
  }
}

export interface InterfacePassResult {
  /** Echo requests answered: written by one side's kernel end, the reply read back there. */
  roundTrips: number;
  /** Packets the two interfaces' TUN queues read and wrote (over their packet pairs). */
  queuePacketsRead: number;
  queuePacketsWritten: number;
  /** Super-packets the queues split on read, and packets they merged on write. */
  superPacketsSplit: number;
  packetsCoalesced: number;
}

/** The kernel's side of one warm-up interface: its requests laid out behind their vnet headers, and what it answers. */
class KernelEnd {
  /** Echo replies read back (answers to this side's requests). */
  replies = 0;
  private readonly requests: { buffer: Buffer; offsets: Uint32Array; lengths: Uint32Array; count: number };
  private readonly answers: { buffer: Buffer; offsets: Uint32Array; lengths: Uint32Array; count: number };
  /** Where the answers to a batch are gathered (ranges of `answers`' buffer). */
  private readonly replyOffsets = new Uint32Array(64);
  private readonly replyLengths = new Uint32Array(64);
  wake: (() => void) | undefined;

  constructor(readonly pair: QueuePair, me: 0 | 1) {
    const [src, dst] = [INNER[me]!, INNER[1 - me]!];
    const icmp = (type: number) => { const p = Buffer.alloc(64); p[0] = type; return p; };
    const tcp = Buffer.alloc(72);
    tcp[12] = 0x50;
    this.requests = laidOut([
      [buildIpv4({ protocol: IpProtocol.ICMP, src: src.v4, dst: dst.v4, payload: icmp(8) }), {}],
      [buildIpv6({ protocol: IpProtocol.ICMPv6, src: src.v6, dst: dst.v6, payload: icmp(128) }), {}],
      [buildIpv4({ protocol: IpProtocol.TCP, src: src.v4, dst: dst.v4, payload: tcp }), {}],
      [superPacket(src.v4, dst.v4), TSO_HEADER],
    ]);
    this.answers = laidOut([
      [buildIpv4({ protocol: IpProtocol.ICMP, src: src.v4, dst: dst.v4, payload: icmp(0) }), {}],
      [buildIpv6({ protocol: IpProtocol.ICMPv6, src: src.v6, dst: dst.v6, payload: icmp(129) }), {}],
    ]);
    pair.wire.readEach((batch) => this.onRead(batch), () => this.wake?.());
  }

  /** Sends request `which` (0 ping, 1 IPv6 ping, 2 TCP segment, 3 TSO super-packet); a ping's reply comes back to `replies`. */
  send(which: readonly number[]): void {
    const r = this.requests;
    const offsets = new Uint32Array(which.length);
    const lengths = new Uint32Array(which.length);
    which.forEach((w, i) => { offsets[i] = r.offsets[w]!; lengths[i] = r.lengths[w]!; });
    this.pair.wire.postRanges(r.buffer, offsets, lengths, which.length);
  }

  // What the other side's requests became after its tunnel and ours: echo requests are answered
  // (the kernel's echo reply), echo replies counted, the rest taken. (No batch object is
  // changed after it is made: the engine's batches are never, and V8 compiles on that.)
  private onRead(batch: PacketBatch): void {
    const { buffer, offsets, lengths } = batch;
    let replies = 0;
    for (let i = 0; i < batch.count; i++) {
      const at = offsets[i]!;
      const v6 = buffer[at]! >> 4 === 6;
      const isIcmp = v6 ? buffer[at + 6] === IpProtocol.ICMPv6 : buffer[at + 9] === IpProtocol.ICMP && lengths[i]! > 20;
      if (!isIcmp) continue;
      const type = buffer[at + (v6 ? 40 : 20)];
      if (type === 0 || type === 129) { this.replies++; continue; }
      const a = v6 ? 1 : 0;
      this.replyOffsets[replies] = this.answers.offsets[a]!;
      this.replyLengths[replies] = this.answers.lengths[a]!;
      replies++;
    }
    if (replies > 0) this.pair.wire.postRanges(this.answers.buffer, this.replyOffsets, this.replyLengths, replies);
    this.wake?.();
  }
}

/** Packets behind their virtio_net_hdr in one buffer, as a TUN fd takes and gives them. */
function laidOut(packets: Array<[Buffer, Parameters<typeof encodeVnetHdr>[0]]>) {
  const buffer = Buffer.alloc(packets.reduce((n, [p]) => n + VNET_HDR + p.length, 0));
  const offsets = new Uint32Array(packets.length);
  const lengths = new Uint32Array(packets.length);
  let at = 0;
  packets.forEach(([p, header], i) => {
    encodeVnetHdr(header, buffer, at, VNET_HDR);
    p.copy(buffer, at + VNET_HDR);
    offsets[i] = at;
    lengths[i] = VNET_HDR + p.length;
    at += VNET_HDR + p.length;
  });
  return { buffer, offsets, lengths, count: packets.length };
}

/**
 * A pass of `rounds` echo round trips between two private interfaces of this class's own code
 * (WireGuardInterface.openForWarmup), each over a TUN queue made like a real interface's (split
 * offloads, a 10-byte vnet header, batches of 64) but running over a packet pair
 * (device/packet-pair.ts) instead of a TUN, with its one UDP socket on 127.0.0.1 in `netns`.
 * The pair's other end plays the kernel: it writes requests (pings, TCP segments, TSO
 * super-packets) and answers echo requests. So the TUN queue's batched read, split, coalesce
 * and write, the interface's per-batch closures, its timer tick and the readiness loop run with
 * real packets, while no device, route or address is made and nothing but the loopback device
 * carries a datagram. Returns what moved, or undefined when the pass could not run or a round
 * trip did not come back within 500 ms (`lo` down, say).
 */
export async function exerciseInterfaces(rounds: number, opts: { netns?: NetnsRef } = {}): Promise<InterfacePassResult | undefined> {
  const pairs: QueuePair[] = [];
  const ifaces: WireGuardInterface[] = [];
  try {
    for (let i = 0; i < 2; i++) {
      pairs.push(openQueuePair({
        name: `wgwarm${i}`, mode: 'tun', vnetHdrSize: VNET_HDR, vnetLittleEndian: true, batchSize: 64,
        offload: 'split', verifyChecksums: false,
      }));
      ifaces.push(WireGuardInterface.openForWarmup(pairs[i]!.device, { netns: opts.netns, privateKey: generatePrivateKey() }));
    }
    ifaces.forEach((wg, me) => {
      const other = ifaces[1 - me]!;
      wg.engine.setPeer({
        publicKey: other.engine.publicKey!, endpoint: { address: '127.0.0.1', port: other.listenPort },
        allowedIps: [`${INNER[1 - me]!.v4}/32`, `${INNER[1 - me]!.v6}/128`],
      });
    });
    const kernels = [new KernelEnd(pairs[0]!, 0), new KernelEnd(pairs[1]!, 1)];
    for (let k = 0; k < rounds; k++) {
      const side = kernels[k & 1]!;
      const expected = side.replies + 1;
      // Mostly a ping (every fourth over IPv6); now and then bulk TCP ahead of it.
      const r = k >> 1;
      side.send(r % 8 === 5 ? [2, 3, 0] : r % 4 === 3 ? [1] : [0]);
      if (!(await answered(side, expected))) return undefined;
    }
    const total = (of: (c: QueueCounters) => number) => pairs.reduce((n, p) => n + of(p.device.counters), 0);
    return {
      roundTrips: kernels[0]!.replies + kernels[1]!.replies,
      queuePacketsRead: total((c) => c.packetsRead), queuePacketsWritten: total((c) => c.packetsWritten),
      superPacketsSplit: total((c) => c.superPacketsRead), packetsCoalesced: total((c) => c.packetsCoalesced),
    };
  } catch {
    return undefined; // the pass is an optimization: the interface opens without it
  } finally {
    await Promise.all(ifaces.map((wg) => wg.close()));
    await Promise.all(pairs.map((p) => p.close()));
  }
}

/** Resolves true once `side` has `expected` replies (checked at each of its wake-ups), false after 500 ms. */
function answered(side: KernelEnd, expected: number): Promise<boolean> {
  if (side.replies >= expected) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => { side.wake = undefined; resolve(false); }, 500);
    side.wake = () => {
      if (side.replies < expected) return;
      clearTimeout(timer);
      side.wake = undefined;
      resolve(true);
    };
  });
}
