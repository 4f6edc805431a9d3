// WireGuard receive path: batches of datagrams into WireGuardEngine.receive, the entry point the
// UDP socket feeds. Two engines with a live session supply real messages — initiations,
// responses, cookie replies, data and keepalives, valid for the state the engines are in — and
// the fuzzer delivers them mutated, reordered, spliced or intact to either engine.
//
// The engine may never throw. Invariants: every datagram is counted exactly once (a drop reason
// or a received counter); a packet reaches the TUN only if it is the plaintext of a genuine data
// message in this batch, delivered once, with an inner source the peer may use; and a keepalive
// is counted only for a genuine keepalive, once.
import { WireGuardEngine, type EngineIo } from '../../../src/wireguard/engine.js';
import type { Packed } from '../../../src/wireguard/batch.js';
import { batchViews } from '../../../src/base/batch.js';
import type { Peer } from '../../../src/wireguard/peer.js';
import { mac } from '../../../src/wireguard/crypto.js';
import { mac1Key } from '../../../src/wireguard/noise.js';
import { ipv4, ipv6, received, sealOnSession } from '../../wireguard/harness.js';
import { ipToBytes } from '../../../src/netlink/ip.js';
import { check, type BytesTarget, type Instance } from '../framework.js';

// Input layout: [flags] then datagrams, each [engine (low bit: 0 a, 1 b)][length, 16-bit BE][bytes].
const RESTAMP = 0x01;     // handshake messages get a correct MAC1 after mutation (to reach the Noise code)
const UNDER_LOAD = 0x02;  // the receiving engine demands MAC2 (cookie path)
const TICK = 0x04;        // run the timers after the batch
const ROAM = 0x08;        // datagrams come from an unknown source address
const MAX_BATCH = 200;  // past the engine's first scratch size (128), so its growth is exercised

const ENDPOINTS = [{ address: '198.18.0.1', port: 51820 }, { address: '198.18.0.2', port: 51821 }] as const;
const ROAMER = { address: '198.18.0.9', port: 4000 };
const ALLOWED = [['10.0.0.1/32', 'fd00::1/128'], ['10.0.0.2/32', 'fd00::2/128']] as const;
const INNER = [{ v4: '10.0.0.1', v6: ipToBytes('fd00::1') }, { v4: '10.0.0.2', v6: ipToBytes('fd00::2') }] as const;
const KEYS = [Buffer.alloc(32, 0x11), Buffer.alloc(32, 0x22)];

/** The counters that account for one received datagram each. */
const RECEIVE_COUNTERS = ['malformed', 'badMac1', 'cookieRequired', 'handshakeFailed', 'rateLimited', 'unknownIndex',
  'replay', 'authFailed', 'expired', 'notAllowed'] as const;
const RECEIVED = ['handshakeInitiationsReceived', 'handshakeResponsesReceived', 'cookieRepliesReceived',
  'keepalivesReceived', 'dataPacketsReceived'] as const;

function counters(e: WireGuardEngine): number[] {
  return [...RECEIVE_COUNTERS.map((k) => e.stats.dropped[k]), ...RECEIVED.map((k) => e.stats[k])];
}
const COUNTER_NAMES = [...RECEIVE_COUNTERS.map((k) => `dropped: ${k}`), ...RECEIVED];

/** A data message we sealed ourselves (empty plaintext: a keepalive), and whether the engine may deliver it. */
interface Genuine { to: number; plaintext: Buffer; deliverable: boolean; consumed: boolean }

function encode(flags: number, datagrams: ReadonlyArray<{ to: number; data: Uint8Array }>): Uint8Array {
  const parts: Uint8Array[] = [Uint8Array.of(flags)];
  for (const d of datagrams) parts.push(Uint8Array.of(d.to, d.data.length >> 8, d.data.length & 0xff), d.data);
  return Buffer.concat(parts);
}

/** Frames an input leniently: a length past the end takes what is left. */
function decode(b: Uint8Array): { flags: number; datagrams: Array<{ to: number; data: Buffer }> } {
  const datagrams: Array<{ to: number; data: Buffer }> = [];
  let off = 1;
  while (off + 3 <= b.length && datagrams.length < MAX_BATCH) {
    const len = Math.min((b[off + 1]! << 8) | b[off + 2]!, b.length - off - 3);
    datagrams.push({ to: b[off]! & 1, data: Buffer.from(b.subarray(off + 3, off + 3 + len)) });
    off += 3 + len;
  }
  return { flags: b[0] ?? 0, datagrams };
}

class EnginePair implements Instance<Uint8Array> {
  private clock = 1_000_000;
  private engines: WireGuardEngine[] = [];
  private peers: Peer[] = [];
  /** Datagrams the engines sent since the last take(). */
  private outbox: Array<{ from: number; data: Buffer }> = [];
  /** Packets each engine delivered to its TUN during the current input. */
  private delivered: Buffer[][] = [[], []];
  private genuine = new Map<string, Genuine>();

  constructor() {
    this.reset();
  }

  /** Two new engines (fixed keys), each the other's peer, no session yet. */
  private reset(): void {
    this.close();
    this.outbox = [];
    this.genuine = new Map();
    this.engines = [0, 1].map((i) => new WireGuardEngine(this.io(i), { privateKey: KEYS[i], now: () => this.clock }));
    this.peers = [0, 1].map((i) => this.engines[i]!.setPeer({
      publicKey: this.engines[1 - i]!.publicKey!, endpoint: ENDPOINTS[1 - i], allowedIps: [...ALLOWED[1 - i]],
    }));
  }

  private io(i: number): EngineIo {
    return {
      send: (_to, d: Packed) => { for (const v of batchViews(d)) this.outbox.push({ from: i, data: Buffer.from(v) }); return true; },
      deliver: (d: Packed) => { for (const v of batchViews(d)) this.delivered[i]!.push(Buffer.from(v)); return true; },
    };
  }

  private take(from?: number): Buffer[] {
    const out = this.outbox.filter((d) => from === undefined || d.from === from).map((d) => d.data);
    this.outbox = [];
    return out;
  }

  private deliverTo(i: number, data: Buffer[]): void {
    this.engines[i]!.receive(received(data, ENDPOINTS[1 - i]));
  }

  /**
   * Seals `packets` from engine `from` and records each datagram as genuine. Its sender sends only
   * whole IP packets; the others (`unrouted`) are sealed on its session as a peer with a faulty or
   * hostile stack would send them.
   */
  private seal(from: number, packets: Array<{ p: Buffer; deliverable: boolean; unrouted?: true }>): Buffer[] {
    const routed = packets.filter((x) => !x.unrouted);
    const buf = Buffer.concat(routed.map((x) => x.p));
    const offsets = new Uint32Array(routed.length);
    const lengths = new Uint32Array(routed.length);
    let at = 0;
    routed.forEach((x, k) => { offsets[k] = at; lengths[k] = x.p.length; at += x.p.length; });
    this.engines[from]!.sendPackets(buf, offsets, lengths, routed.length);
    const wire = this.take(from);
    check(wire.length === routed.length, `engine ${from} sealed ${wire.length} of ${routed.length} packets`);
    wire.forEach((d, k) => this.remember(d, 1 - from, routed[k]!.p, routed[k]!.deliverable));
    for (const x of packets.filter((y) => y.unrouted)) {
      const d = sealOnSession(this.engines[from]!, this.peers[from]!, x.p);
      this.remember(d, 1 - from, x.p, x.deliverable);
      wire.push(d);
    }
    return wire;
  }

  private remember(datagram: Buffer, to: number, plaintext: Buffer, deliverable: boolean): void {
    this.genuine.set(datagram.toString('latin1'), { to, plaintext, deliverable, consumed: false });
  }

  private dataFrom(from: number): Buffer[] {
    const me = INNER[from]!;
    const other = INNER[1 - from]!;
    // Packets that claim more bytes than they carry, padding included, must be dropped.
    const longer4 = ipv4(me.v4, other.v4, Buffer.alloc(10));
    longer4.writeUInt16BE(longer4.length + 40, 2);
    const longer6 = ipv6(me.v6, other.v6, Buffer.alloc(10));
    longer6.writeUInt16BE(50, 4);
    return this.seal(from, [
      { p: ipv4(me.v4, other.v4, Buffer.from('hello')), deliverable: true },
      { p: ipv6(me.v6, other.v6, Buffer.alloc(100, from)), deliverable: true },
      { p: ipv4('10.9.9.9', other.v4), deliverable: false },  // a source the peer may not use
      { p: longer4, deliverable: false, unrouted: true },
      { p: longer6, deliverable: false, unrouted: true },
    ]);
  }

  /**
   * Messages valid in the state the pair is in now: a session is up (a initiated), a holds a
   * cookie reply and a response for its second handshake, b has just sent an initiation, and
   * each side has fresh data and a keepalive in flight.
   */
  corpus(): Uint8Array[] {
    this.reset();
    const [a, b] = this.engines as [WireGuardEngine, WireGuardEngine];
    const [toB, toA] = this.peers as [Peer, Peer];
    a.initiateHandshake(toB, false);
    const init1 = this.take(0);
    this.deliverTo(1, init1);
    const resp1 = this.take(1);
    this.deliverTo(0, resp1);
    this.deliverTo(1, this.take(0));  // a's keepalive confirms the session to b
    this.take();
    this.clock += 6000;
    b.forceUnderLoad = true;
    a.initiateHandshake(toB, false);
    const init2 = this.take(0);
    this.deliverTo(1, init2);
    const cookie = this.take(1);
    b.forceUnderLoad = false;
    this.deliverTo(1, init2);
    const resp2 = this.take(1);
    this.clock += 50;
    b.initiateHandshake(toA, false);
    const init3 = this.take(1);
    const ab = this.dataFrom(0);
    const ba = this.dataFrom(1);
    a.sendKeepalive(toB);
    const keepalive = this.take(0);
    for (const k of keepalive) this.remember(k, 1, Buffer.alloc(0), false);
    const toEngine = (to: number, list: Buffer[]) => list.map((data) => ({ to, data }));
    const singles = [...toEngine(1, [...init1, ...init2, ...ab, ...keepalive]), ...toEngine(0, [...resp1, ...cookie, ...resp2, ...init3, ...ba])];
    const out = singles.map((d) => encode(0, [d]));
    out.push(encode(0, singles));
    out.push(encode(RESTAMP | TICK, [...toEngine(0, [...init3, ...resp2]), ...toEngine(1, ab)]));
    out.push(encode(UNDER_LOAD | RESTAMP, toEngine(1, [...init2, ...ab])));
    out.push(encode(ROAM, toEngine(1, [...ab, ...ab])));
    return out;
  }

  run(input: Uint8Array): string {
    const { flags, datagrams } = decode(input);
    this.clock += (flags >> 4) * 20;  // up to 300 ms: timers and expiry come into play over a corpus' life
    const before = this.engines.map(counters);
    this.delivered = [[], []];
    for (const to of [0, 1]) {
      const batch = datagrams.filter((d) => d.to === to).map((d) => d.data);
      if (batch.length === 0) continue;
      const engine = this.engines[to]!;
      if (flags & RESTAMP) for (const d of batch) this.restamp(d, engine.publicKey!);
      engine.forceUnderLoad = (flags & UNDER_LOAD) !== 0;
      engine.receive(received(batch, flags & ROAM ? ROAMER : ENDPOINTS[1 - to]));
      engine.forceUnderLoad = false;
      const changed = counters(engine).map((v, k) => v - before[to]![k]!);
      const accounted = changed.reduce((s, v) => s + v, 0);
      check(accounted === batch.length, `engine ${to} accounted for ${accounted} of ${batch.length} datagrams (${describeChange(changed)})`);
      this.checkDelivered(to, batch, changed[COUNTER_NAMES.indexOf('keepalivesReceived')]!);
    }
    if (flags & TICK) for (const e of this.engines) e.tick();
    this.take();
    return this.outcome(before);
  }

  /** A correct MAC1 for the receiver on a handshake-sized message, so mutations reach the Noise code. */
  private restamp(d: Buffer, receiverPublic: Buffer): void {
    if ((d[0] !== 1 || d.length !== 148) && (d[0] !== 2 || d.length !== 92)) return;
    mac(mac1Key(receiverPublic), d.subarray(0, d.length - 32)).copy(d, d.length - 32);
  }

  private checkDelivered(to: number, batch: Buffer[], keepalivesCounted: number): void {
    const fresh = new Set(batch.map((d) => this.genuine.get(d.toString('latin1'))));
    const candidates = [...fresh].filter((g): g is Genuine => g !== undefined && g.to === to && !g.consumed);
    for (const p of this.delivered[to]!) {
      const g = candidates.find((x) => !x.consumed && x.plaintext.length > 0 && x.plaintext.equals(p));
      check(g, `engine ${to} delivered a packet no genuine, unreplayed datagram of the batch carried: ${p.toString('hex')}`);
      check(g.deliverable, `engine ${to} delivered a packet it must drop (bad inner source or length): ${p.toString('hex')}`);
      g.consumed = true;
    }
    const keepalives = candidates.filter((g) => g.plaintext.length === 0);
    check(keepalivesCounted <= keepalives.length, `engine ${to} counted ${keepalivesCounted} keepalives for ${keepalives.length} genuine ones in the batch`);
    for (const g of keepalives.slice(0, keepalivesCounted)) g.consumed = true;
  }

  private outcome(before: number[][]): string {
    if (this.delivered.some((d) => d.length > 0)) return 'delivered';
    for (const to of [0, 1]) {
      const now = counters(this.engines[to]!);
      const k = now.findIndex((v, j) => v !== before[to]![j]);
      if (k >= 0) return COUNTER_NAMES[k]!;
    }
    return 'empty batch';
  }

  close(): void {
    for (const e of this.engines) e.close();
  }
}

function describeChange(changed: number[]): string {
  return changed.map((v, k) => (v ? `${COUNTER_NAMES[k]} +${v}` : '')).filter(Boolean).join(', ') || 'nothing counted';
}

export const wireguardReceiveTarget: BytesTarget = {
  kind: 'bytes',
  name: 'wg-receive',
  layer: 'wireguard',
  about: 'datagram batches (real initiations, responses, cookie replies, data, keepalives; mutated) into WireGuardEngine.receive of two engines with a live session',
  isTyped: () => false,
  weight: 5,
  maxLength: 4096,
  firstBytes: [0, RESTAMP, UNDER_LOAD | RESTAMP, TICK],
  corpus: () => [],
  refreshEvery: 512,
  create: () => new EnginePair(),
};
