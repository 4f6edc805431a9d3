// The WireGuard state machine of one interface, without I/O: peers, handshakes, sessions,
// timers, cryptokey routing and the batched data path. The interface (interface.ts) feeds it
// TUN batches and UDP batches and carries out its sends; tests drive it with in-memory I/O.
import { randomInt } from 'node:crypto';
import { StaticKey, equalBytes, keyToBase64 } from './crypto.js';
import {
  createInitiation, consumeInitiation, createResponse, consumeResponse, tai64n, nextTai64n, wipeInitiator,
  wipeConsumed, type InitiatorState, type SessionKeys,
} from './noise.js';
import { CookieChecker, CookieGenerator } from './cookie.js';
import { ReplayWindow } from './replay.js';
import { HandshakeRateLimiter } from './ratelimiter.js';
import { AllowedIps } from './allowed-ips.js';
import { sealBatch, openBatch, paddedLength, type AeadBatch } from './aead.js';
import {
  DEFAULT_TIMERS, type Timers, MESSAGE_INITIATION, MESSAGE_RESPONSE, MESSAGE_COOKIE_REPLY, MESSAGE_DATA,
  INITIATION_SIZE, RESPONSE_SIZE, COOKIE_REPLY_SIZE, DATA_HEADER_SIZE, TAG_SIZE, MAX_QUEUED_PACKETS,
} from './constants.js';
import { decodeEndpoint, encodeEndpoint, endpointKey, type Endpoint, type ResolvedEndpoint } from '../net/endpoint.js';

/** Datagrams laid out in one buffer (what a UDP socket sends in one batched call). */
export interface Packed {
  buffer: Uint8Array;
  offsets: Uint32Array;
  lengths: Uint32Array;
  count: number;
}

/** One view per packet of a Packed batch (for APIs that take packets one by one). */
export function packetViews(d: Packed): Uint8Array[] {
  const views: Uint8Array[] = [];
  for (let i = 0; i < d.count; i++) views.push(d.buffer.subarray(d.offsets[i]!, d.offsets[i]! + d.lengths[i]!));
  return views;
}

/** Received datagrams with their sources as 24-byte endpoint records (src/net's DatagramBatch fits). */
export interface ReceivedDatagrams {
  readonly count: number;
  readonly buffer: Uint8Array;
  readonly offsets: Uint32Array;
  readonly lengths: Uint32Array;
  readonly endpoints: Uint8Array;
  endpointOffset(i: number): number;
}

export interface EngineIo {
  /**
   * Sends datagrams to one endpoint (fire and forget; UDP may drop). The offsets and lengths
   * arrays are the engine's, reused by its next batch: copy them if the send outlives the call.
   * Returns true when the bytes are no longer needed (the kernel took them during the call): the
   * engine then reuses the buffer for its next batch. Otherwise the buffer is the sender's.
   */
  send(to: ResolvedEndpoint, datagrams: Packed): boolean | void;
  /**
   * Writes decrypted, authenticated IP packets to the TUN device. Each packet has
   * DELIVER_HEADROOM bytes of room (not zeroed) in front of it in its buffer, for a virtio_net_hdr.
   * The arrays are the engine's, as for send; so is the buffer again when this returns true.
   */
  deliver(packets: Packed): boolean | void;
}

/** Why packets were dropped; every silent drop is counted here. */
export interface DropCounters {
  malformed: number;        // wrong size/type/reserved bytes, or not an IP packet inside
  badMac1: number;          // handshake message with a wrong MAC1
  cookieRequired: number;   // under load without a valid MAC2: answered with a cookie reply
  handshakeFailed: number;  // did not decrypt, unknown peer, stale timestamp, unknown index
  rateLimited: number;      // initiation too soon after the previous one from that peer
  sourceRateLimited: number; // under load: handshake over its source address's rate (ratelimiter.ts)
  unknownIndex: number;     // data for no session we know
  replay: number;           // counter already seen or older than the window
  authFailed: number;       // data that did not authenticate (bit flips, wrong key)
  expired: number;          // data on a session past REJECT_AFTER_TIME/MESSAGES
  notAllowed: number;       // inner source address not in the sending peer's AllowedIPs
  noRoute: number;          // outgoing packet matching no peer's AllowedIPs
  noEndpoint: number;       // outgoing packet for a peer without endpoint
  queueFull: number;        // outgoing packet dropped: handshake pending and queue full
}

export interface EngineStats {
  dropped: DropCounters;
  handshakeInitiationsSent: number;
  handshakeInitiationsReceived: number;
  handshakeResponsesSent: number;
  handshakeResponsesReceived: number;
  cookieRepliesSent: number;
  cookieRepliesReceived: number;
  keepalivesSent: number;
  keepalivesReceived: number;
  dataPacketsSent: number;
  dataPacketsReceived: number;
}

export interface PeerConfig {
  publicKey: Uint8Array;
  presharedKey?: Uint8Array;
  endpoint?: Endpoint;
  allowedIps?: string[];
  /** Seconds; 0/undefined: off. */
  persistentKeepalive?: number;
}

interface Keypair {
  peer: Peer;
  localIndex: number;
  remoteIndex: number;
  initiator: boolean;
  created: number;
  sendCounter: number;
  replay: ReplayWindow;
  /** Where the engine's key table holds the session's send and receive keys (-1 once dropped). */
  sendSlot: number;
  receiveSlot: number;
}

/**
 * The session keys as the native AEAD reads them: 32-byte slots in one buffer, written once when
 * a keypair is installed and zeroed when it is dropped, so a batch passes slot numbers instead
 * of copying its keys.
 */
class KeyTable {
  bytes = Buffer.alloc(32 * 16);
  private readonly free: number[] = [];
  private used = 0;

  add(key: Buffer): number {
    let slot = this.free.pop();
    if (slot === undefined) {
      if (this.used * 32 >= this.bytes.length) {
        const grown = Buffer.alloc(this.bytes.length * 2);
        this.bytes.copy(grown);
        this.bytes.fill(0);
        this.bytes = grown;
      }
      slot = this.used++;
    }
    key.copy(this.bytes, slot * 32);
    return slot;
  }

  /** True when no session key is held (every slot zero). */
  empty(): boolean {
    return this.bytes.every((b) => b === 0);
  }

  remove(slot: number): void {
    if (slot < 0) return;
    this.bytes.fill(0, slot * 32, slot * 32 + 32);
    this.free.push(slot);
  }
}

/** Packets of one batch bound for one peer: order[start .. start+count) are their indices. */
interface TxGroup { peer: Peer; kp: Keypair | undefined; start: number; count: number }

/**
 * Descriptor arrays for the native AEAD calls and the per-batch bookkeeping around them, kept
 * from one batch to the next. Allocating them per batch cost more than the crypto of a small
 * packet: fresh small typed arrays must be moved off the V8 heap before native code may read
 * them, and fresh memory is cold memory.
 */
class BatchScratch {
  inUse = false;
  readonly capacity: number;
  readonly keyIndex: Uint32Array;
  readonly srcOffsets: Uint32Array;
  readonly srcLengths: Uint32Array;
  readonly counters: Uint32Array;
  readonly dstOffsets: Uint32Array;
  readonly dstLengths: Uint32Array;
  /** Sealing: where each datagram starts in the output, and its length with the header. */
  readonly outOffsets: Uint32Array;
  readonly outLengths: Uint32Array;
  /** Opening: authenticated or not, the datagram index and counter of each data message. */
  readonly ok: Uint8Array;
  readonly index: Uint32Array;
  readonly counter: Float64Array;
  readonly keypairs: Array<Keypair | undefined>;
  readonly peers: Peer[] = [];
  /** Grouping a TUN batch by peer: each packet's group (NO_GROUP: no route), then the send order. */
  readonly groupOf: Uint32Array;
  readonly order: Uint32Array;
  readonly groups: TxGroup[] = [];
  readonly batch: AeadBatch;

  constructor(capacity: number) {
    this.capacity = capacity;
    const u32 = () => new Uint32Array(capacity);
    this.keyIndex = u32(); this.srcOffsets = u32(); this.srcLengths = u32(); this.dstOffsets = u32(); this.dstLengths = u32();
    this.outOffsets = u32(); this.outLengths = u32(); this.index = u32(); this.groupOf = u32(); this.order = u32();
    this.counters = new Uint32Array(2 * capacity);
    this.ok = new Uint8Array(capacity);
    this.counter = new Float64Array(capacity);
    this.keypairs = new Array<Keypair | undefined>(capacity).fill(undefined);
    this.batch = {
      keys: EMPTY, keyIndex: this.keyIndex, src: EMPTY, srcOffsets: this.srcOffsets, srcLengths: this.srcLengths,
      counters: this.counters, dst: EMPTY, dstOffsets: this.dstOffsets, dstLengths: this.dstLengths, count: 0,
    };
  }
}

const MIN_SCRATCH = 128;

// The output of sealing or opening, reused from batch to batch for as long as the I/O side hands
// it back at once (the kernel took the data during the call); a buffer the I/O side keeps (a send
// or write waiting for room) is left to it and a new one is made. On an idle tunnel, allocating
// and wrapping a fresh Buffer per wake-up was one of its costliest cold steps (~10 us).
class Arena {
  buffer: Buffer = EMPTY;
  view: DataView = EMPTY_VIEW;
  inUse = false;

  /** Makes `buffer` at least `size` bytes. */
  fit(size: number): void {
    if (size <= this.buffer.length) return;
    this.buffer = Buffer.allocUnsafeSlow(Math.max(size, ARENA_MIN));
    this.view = new DataView(this.buffer.buffer, this.buffer.byteOffset, this.buffer.length);
  }

  /** The I/O side kept the buffer: the next batch gets a new one. */
  handOver(): void {
    this.buffer = EMPTY;
    this.view = EMPTY_VIEW;
  }
}

const ARENA_MIN = 16 << 10;
/** How long the interface stays under load after the handshake rate falls back (wireguard-go's UnderLoadAfterTime). */
const UNDER_LOAD_HOLD_MS = 1000;
const NO_GROUP = 0xffffffff;

/** Bytes of room the engine leaves in front of each delivered packet (contents unspecified). */
export const DELIVER_HEADROOM = 12;

type IndexEntry = { peer: Peer; keypair?: Keypair; handshake?: InitiatorState };

const ZERO_PSK = Buffer.alloc(32);
const EMPTY = Buffer.alloc(0);
const EMPTY_VIEW = new DataView(EMPTY.buffer, EMPTY.byteOffset, 0);

export class Peer {
  readonly publicKey: Buffer;
  readonly publicKeyText: string;
  presharedKey: Buffer = ZERO_PSK;
  endpoint: ResolvedEndpoint | undefined;
  endpointKey: number | string | undefined;
  persistentKeepalive = 0;
  readonly cookies: CookieGenerator;

  current: Keypair | undefined;
  previous: Keypair | undefined;
  next: Keypair | undefined;
  handshake: InitiatorState | undefined;
  handshakeStarted = 0;
  lastInitiationSent = -Infinity;
  lastTimestamp: Buffer | undefined;
  lastTimestampSent: Buffer | undefined;
  lastInitiationConsumed = -Infinity;
  lastMinuteHandshakeSent = false;
  queue: Buffer[] = [];

  /** Wall-clock ms of the last completed handshake (0: never). */
  lastHandshake = 0;
  rxBytes = 0;
  txBytes = 0;

  /** Batch bookkeeping (see WireGuardEngine.epoch). */
  txEpoch = 0;
  txGroup = 0;
  rxEpoch = 0;

  // timer deadlines (monotonic ms; undefined = not armed)
  retransmitAt: number | undefined;
  sendKeepaliveAt: number | undefined;
  newHandshakeAt: number | undefined;
  zeroKeysAt: number | undefined;
  lastAuthenticatedTraversal = -Infinity;

  constructor(publicKey: Uint8Array, timers: Timers, now: () => number) {
    this.publicKey = Buffer.from(publicKey);
    this.publicKeyText = keyToBase64(publicKey);
    this.cookies = new CookieGenerator(publicKey, timers.cookieRefreshTime, now);
  }

  setEndpoint(e: Endpoint | undefined): void {
    if (!e) { this.endpoint = undefined; this.endpointKey = undefined; return; }
    const rec = encodeEndpoint(e.address, e.port);
    this.endpoint = decodeEndpoint(rec);
    this.endpointKey = endpointKey(rec);
  }
}

export interface EngineOptions {
  privateKey?: Uint8Array;
  timers?: Partial<Timers>;
  /** Inner MTU: outgoing plaintext is padded to 16 bytes but not past it. */
  mtu?: number;
  /** Monotonic clock in ms (tests may replace it). */
  now?: () => number;
}

export class WireGuardEngine {
  readonly timers: Timers;
  readonly peers = new Map<string, Peer>();
  readonly allowedIps = new AllowedIps<Peer>();
  readonly stats: EngineStats = {
    dropped: {
      malformed: 0, badMac1: 0, cookieRequired: 0, handshakeFailed: 0, rateLimited: 0, sourceRateLimited: 0, unknownIndex: 0, replay: 0,
      authFailed: 0, expired: 0, notAllowed: 0, noRoute: 0, noEndpoint: 0, queueFull: 0,
    },
    handshakeInitiationsSent: 0, handshakeInitiationsReceived: 0, handshakeResponsesSent: 0,
    handshakeResponsesReceived: 0, cookieRepliesSent: 0, cookieRepliesReceived: 0, keepalivesSent: 0,
    keepalivesReceived: 0, dataPacketsSent: 0, dataPacketsReceived: 0,
  };
  mtu: number;
  io: EngineIo;
  /** When true every handshake message needs a valid MAC2 (tests force it; otherwise load decides). */
  forceUnderLoad = false;

  private key: StaticKey | undefined;
  private checker: CookieChecker | undefined;
  private readonly indices = new Map<number, IndexEntry>();
  private readonly now: () => number;
  private handshakeWindowStart = 0;
  private handshakesInWindow = 0;
  /** Under load until then (ms): the state outlasts the load by UNDER_LOAD_HOLD_MS. */
  private underLoadUntil = -Infinity;
  private readonly limiter = new HandshakeRateLimiter();
  // One scratch per direction; a call that re-enters while one is in use gets a fresh one.
  private txScratch = new BatchScratch(MIN_SCRATCH);
  private sealScratch = new BatchScratch(MIN_SCRATCH);
  private openScratch = new BatchScratch(MIN_SCRATCH);
  /** Numbers batches, so peers and keypairs can be marked "seen in this batch" without a Set or Map. */
  private epoch = 0;
  private readonly keyTable = new KeyTable();
  private txArena = new Arena();
  private rxArena = new Arena();
  private rxView: DataView = new DataView(new ArrayBuffer(0));

  constructor(io: EngineIo, opts: EngineOptions = {}) {
    this.io = io;
    this.timers = { ...DEFAULT_TIMERS, ...opts.timers };
    this.mtu = opts.mtu ?? 1420;
    this.now = opts.now ?? (() => performance.now());
    if (opts.privateKey) this.setPrivateKey(opts.privateKey);
  }

  get privateKey(): Buffer | undefined { return this.key?.private; }
  get publicKey(): Buffer | undefined { return this.key?.public; }

  setPrivateKey(priv: Uint8Array | undefined): void {
    this.key?.wipe();
    if (!priv || priv.every((b) => b === 0)) {
      this.key = undefined;
      this.checker = undefined;
    } else {
      this.key = new StaticKey(priv);
      this.checker = new CookieChecker(this.key.public, this.timers.cookieRefreshTime, this.now);
    }
    // New identity: every session and handshake is void; a peer with our own key is dropped.
    for (const peer of this.peers.values()) {
      this.zeroPeer(peer);
      if (this.key && equalBytes(peer.publicKey, this.key.public)) this.removePeer(peer.publicKey);
    }
  }

  // ---- configuration ----

  getPeer(publicKey: Uint8Array): Peer | undefined {
    return this.peers.get(keyToBase64(publicKey));
  }

  /** Adds or updates a peer; allowedIps are added to what it has (replaceAllowedIps first to reset). */
  setPeer(cfg: PeerConfig): Peer {
    if (cfg.publicKey.length !== 32 || cfg.publicKey.every((b) => b === 0)) throw new RangeError('a peer\'s public key must be 32 bytes, not all zero');
    const text = keyToBase64(cfg.publicKey);
    let peer = this.peers.get(text);
    if (!peer) {
      peer = new Peer(cfg.publicKey, this.timers, this.now);
      this.peers.set(text, peer);
    }
    if (cfg.presharedKey) {
      peer.presharedKey.fill(0);
      peer.presharedKey = Buffer.from(cfg.presharedKey);
    }
    if (cfg.endpoint) peer.setEndpoint(cfg.endpoint);
    for (const cidr of cfg.allowedIps ?? []) this.allowedIps.insert(cidr, peer);
    if (cfg.persistentKeepalive !== undefined) {
      const was = peer.persistentKeepalive;
      peer.persistentKeepalive = cfg.persistentKeepalive;
      // Like wireguard-go: turning persistent keepalive on sends one right away (this also starts a handshake).
      if (cfg.persistentKeepalive > 0 && was === 0 && peer.endpoint && this.key) this.sendKeepalive(peer);
    }
    return peer;
  }

  replaceAllowedIps(peer: Peer): void {
    this.allowedIps.removeValue(peer);
  }

  removePeer(publicKey: Uint8Array): void {
    const text = keyToBase64(publicKey);
    const peer = this.peers.get(text);
    if (!peer) return;
    this.zeroPeer(peer);
    peer.presharedKey.fill(0);
    this.allowedIps.removeValue(peer);
    this.peers.delete(text);
  }

  private acquire(which: 'txScratch' | 'sealScratch' | 'openScratch', n: number): BatchScratch {
    const s = this[which];
    if (s.inUse) return new BatchScratch(Math.max(n, MIN_SCRATCH));
    if (s.capacity >= n) { s.inUse = true; return s; }
    const grown = new BatchScratch(Math.max(n, 2 * s.capacity));
    grown.inUse = true;
    this[which] = grown;
    return grown;
  }

  /** The direction's arena, or (if a call up the stack holds it) one for this call alone. */
  private takeArena(which: 'txArena' | 'rxArena', size: number): Arena {
    let a = this[which];
    if (a.inUse) a = new Arena();
    a.fit(size);
    a.inUse = true;
    return a;
  }

  // ---- outgoing: packets from TUN ----

  /**
   * Routes, encrypts and sends a batch of IP packets (buffer[offsets[i] .. +lengths[i]]). Packets
   * for peers without a session are queued and a handshake starts.
   */
  sendPackets(buffer: Uint8Array, offsets: Uint32Array | readonly number[], lengths: Uint32Array | readonly number[], count: number): void {
    const s = this.acquire('txScratch', count);
    try {
      const epoch = ++this.epoch;
      const { groups, groupOf, order } = s;
      let ngroups = 0;
      for (let i = 0; i < count; i++) {
        const len = lengths[i]!;
        const peer = len > 0 ? this.routeOf(buffer, offsets[i]!, len) : undefined;
        if (!peer) { this.stats.dropped.noRoute++; groupOf[i] = NO_GROUP; continue; }
        if (peer.txEpoch !== epoch) {
          peer.txEpoch = epoch;
          peer.txGroup = ngroups;
          const g = groups[ngroups] ??= { peer, kp: undefined, start: 0, count: 0 };
          g.peer = peer;
          g.count = 0;
          ngroups++;
        }
        groups[peer.txGroup]!.count++;
        groupOf[i] = peer.txGroup;
      }
      if (ngroups === 0) return;
      // Lay the packets out group by group, each group in the order its packets came.
      let at = 0;
      for (let g = 0; g < ngroups; g++) { const grp = groups[g]!; grp.start = at; at += grp.count; grp.count = 0; }
      for (let i = 0; i < count; i++) {
        const g = groupOf[i]!;
        if (g === NO_GROUP) continue;
        const grp = groups[g]!;
        order[grp.start + grp.count++] = i;
      }
      for (let g = 0; g < ngroups; g++) {
        const grp = groups[g]!;
        const peer = grp.peer;
        const kp = this.usableSendKeypair(peer);
        if (!kp || peer.queue.length > 0) {
          for (let k = grp.start; k < grp.start + grp.count; k++) {
            const i = order[k]!;
            this.enqueue(peer, Buffer.from(buffer.subarray(offsets[i]!, offsets[i]! + lengths[i]!)));
          }
          if (kp) this.flushQueue(peer); else this.initiateHandshake(peer, false);
          grp.kp = undefined;
          continue;
        }
        grp.kp = kp;
      }
      this.sealAndSend(buffer, offsets, lengths, order, groups, ngroups);
    } finally {
      s.inUse = false;
    }
  }

  private routeOf(buf: Uint8Array, off: number, len: number): Peer | undefined {
    const version = buf[off]! >> 4;
    if (version === 4 && len >= 20) return this.allowedIps.lookup(4, buf, off + 16);
    if (version === 6 && len >= 40) return this.allowedIps.lookup(6, buf, off + 24);
    return undefined;
  }

  private enqueue(peer: Peer, packet: Buffer): void {
    if (peer.queue.length >= MAX_QUEUED_PACKETS) {
      peer.queue.shift();
      this.stats.dropped.queueFull++;
    }
    peer.queue.push(packet);
  }

  private usableSendKeypair(peer: Peer): Keypair | undefined {
    const kp = peer.current;
    if (!kp) return undefined;
    if (this.now() - kp.created >= this.timers.rejectAfterTime || kp.sendCounter >= this.timers.rejectAfterMessages) return undefined;
    return kp;
  }

  /**
   * Seals the packets of several peers in one native call and sends one batch per peer. Group g
   * holds packets order[start .. start+count) (order null: the indices themselves); groups
   * without a keypair are skipped.
   */
  private sealAndSend(buffer: Uint8Array, offsets: Uint32Array | readonly number[], lengths: Uint32Array | readonly number[],
    order: Uint32Array | null, groups: readonly TxGroup[], ngroups: number): void {
    let total = 0;
    let n = 0;
    for (let g = 0; g < ngroups; g++) {
      const grp = groups[g]!;
      if (!grp.kp) continue;
      for (let k = grp.start; k < grp.start + grp.count; k++) {
        total += DATA_HEADER_SIZE + paddedLength(lengths[order ? order[k]! : k]!, this.mtu) + TAG_SIZE;
      }
      n += grp.count;
    }
    if (n === 0) return;
    const arena = this.takeArena('txArena', total);
    const out = arena.buffer;
    const header = arena.view;
    const s = this.acquire('sealScratch', n);
    try {
      const { keyIndex, srcOffsets, srcLengths, counters, dstOffsets, dstLengths, outOffsets, outLengths } = s;
      let at = 0;
      let j = 0;
      const now = this.now();
      for (let g = 0; g < ngroups; g++) {
        const grp = groups[g]!;
        const kp = grp.kp;
        if (!kp) continue;
        const slot = kp.sendSlot;
        let carriesData = false;
        for (let k = grp.start; k < grp.start + grp.count; k++) {
          const i = order ? order[k]! : k;
          const len = lengths[i]!;
          if (len > 0) carriesData = true;
          const counter = kp.sendCounter++;
          const counterLow = counter >>> 0;
          const counterHigh = Math.floor(counter / 0x1_0000_0000);
          header.setUint32(at, MESSAGE_DATA, true);
          header.setUint32(at + 4, kp.remoteIndex, true);
          header.setUint32(at + 8, counterLow, true);
          header.setUint32(at + 12, counterHigh, true);
          keyIndex[j] = slot;
          srcOffsets[j] = offsets[i]!;
          srcLengths[j] = len;
          counters[2 * j] = counterLow;
          counters[2 * j + 1] = counterHigh;
          outOffsets[j] = at;
          dstOffsets[j] = at + DATA_HEADER_SIZE;
          at += DATA_HEADER_SIZE + paddedLength(len, this.mtu) + TAG_SIZE;
          j++;
        }
        // Keepalives do not arm the "no answer, new handshake" timer; data does.
        this.onAuthenticatedSent(grp.peer, now, carriesData);
      }
      const b = s.batch;
      b.keys = this.keyTable.bytes; b.src = buffer; b.dst = out; b.count = n;
      sealBatch(b, this.mtu);
      b.keys = b.src = b.dst = EMPTY;
      for (let k = 0; k < n; k++) outLengths[k] = DATA_HEADER_SIZE + dstLengths[k]!;
      j = 0;
      for (let g = 0; g < ngroups; g++) {
        const grp = groups[g]!;
        const kp = grp.kp;
        if (!kp) continue;
        const peer = grp.peer;
        const count = grp.count;
        let bytes = 0;
        for (let k = j; k < j + count; k++) {
          bytes += outLengths[k]!;
          if (srcLengths[k] === 0) this.stats.keepalivesSent++; else this.stats.dataPacketsSent++;
        }
        peer.txBytes += bytes;
        if (peer.endpoint) {
          const whole = j === 0 && count === n;
          const done = this.io.send(peer.endpoint, {
            buffer: out, count,
            offsets: whole ? outOffsets : outOffsets.subarray(j, j + count),
            lengths: whole ? outLengths : outLengths.subarray(j, j + count),
          });
          if (done !== true) arena.handOver();
        } else {
          this.stats.dropped.noEndpoint += count;
        }
        j += count;
        // Rekey when the session has carried many messages, or (initiator only) when it is old.
        if (kp.sendCounter >= this.timers.rekeyAfterMessages || (kp.initiator && now - kp.created >= this.timers.rekeyAfterTime)) {
          this.initiateHandshake(peer, false);
        }
      }
    } finally {
      s.inUse = false;
      arena.inUse = false;
    }
  }

  private flushQueue(peer: Peer): void {
    const kp = this.usableSendKeypair(peer);
    if (!kp || peer.queue.length === 0) return;
    const packets = peer.queue;
    peer.queue = [];
    const offsets: number[] = [];
    const lengths: number[] = [];
    let total = 0;
    for (const p of packets) { offsets.push(total); lengths.push(p.length); total += p.length; }
    const buf = Buffer.concat(packets, total);
    this.sealAndSend(buf, offsets, lengths, null, [{ peer, kp, start: 0, count: packets.length }], 1);
  }

  /** Sends an empty data message (queued behind a handshake if there is no session). */
  sendKeepalive(peer: Peer): void {
    const kp = this.usableSendKeypair(peer);
    if (kp && peer.queue.length === 0) {
      this.sealAndSend(EMPTY, [0], [0], null, [{ peer, kp, start: 0, count: 1 }], 1);
    } else {
      if (peer.queue.length === 0) this.enqueue(peer, Buffer.alloc(0));
      if (kp) this.flushQueue(peer); else this.initiateHandshake(peer, false);
    }
  }

  // ---- handshakes ----

  private newIndex(entry: IndexEntry): number {
    for (;;) {
      const index = randomInt(0, 0x1_0000_0000);
      if (!this.indices.has(index)) {
        this.indices.set(index, entry);
        return index;
      }
    }
  }

  /** A (rounded) TAI64N strictly greater than the last one we sent this peer. */
  private timestamp(peer: Peer): Buffer {
    const t = tai64n();
    const last = peer.lastTimestampSent;
    peer.lastTimestampSent = last && Buffer.compare(t, last) <= 0 ? nextTai64n(last) : t;
    return peer.lastTimestampSent;
  }

  /** Starts (or, when `retry`, retransmits) a handshake initiation to `peer`. */
  initiateHandshake(peer: Peer, retry: boolean): void {
    if (!this.key) return;
    const now = this.now();
    if (!retry && peer.handshake && now - peer.lastInitiationSent < this.timers.rekeyTimeout) return;
    // An attempt runs from its first initiation until a session is confirmed, or until tick()
    // gives up after REKEY_ATTEMPT_TIME and drops what waited for it. It runs without an
    // endpoint too (each retry looks again), so packets staged for such a peer expire as well.
    if (!peer.handshake && peer.retransmitAt === undefined) peer.handshakeStarted = now;
    peer.retransmitAt = now + this.timers.rekeyTimeout + randomInt(0, 334) * Math.min(1, this.timers.rekeyTimeout / 5000);
    if (!peer.endpoint) { this.stats.dropped.noEndpoint++; return; }
    this.dropHandshake(peer);
    const entry: IndexEntry = { peer };
    const localIndex = this.newIndex(entry);
    const made = createInitiation(this.key, peer.publicKey, peer.presharedKey, localIndex, this.timestamp(peer));
    if (!made) { this.indices.delete(localIndex); return; }
    entry.handshake = made.state;
    peer.handshake = made.state;
    peer.lastInitiationSent = now;
    peer.cookies.stamp(made.message);
    this.stats.handshakeInitiationsSent++;
    this.sendOne(peer.endpoint, made.message);
    this.onAuthenticatedSent(peer, now, false);
  }

  private sendOne(to: ResolvedEndpoint, msg: Buffer): void {
    this.io.send(to, { buffer: msg, offsets: Uint32Array.of(0), lengths: Uint32Array.of(msg.length), count: 1 });
  }

  private installKeypair(peer: Peer, keys: SessionKeys, now: number): Keypair {
    const kp: Keypair = {
      peer, localIndex: keys.localIndex, remoteIndex: keys.remoteIndex,
      initiator: keys.initiator, created: now, sendCounter: 0, replay: new ReplayWindow(),
      sendSlot: this.keyTable.add(keys.sendKey), receiveSlot: this.keyTable.add(keys.receiveKey),
    };
    // The key table holds the only copy from here on: dropping the keypair zeroes it.
    keys.sendKey.fill(0);
    keys.receiveKey.fill(0);
    this.indices.set(kp.localIndex, { peer, keypair: kp });
    if (keys.initiator) {
      // The initiator may use the new session at once; the old one stays for packets in flight.
      if (peer.next) { this.dropKeypair(peer.next); peer.next = undefined; }
      if (peer.previous) this.dropKeypair(peer.previous);
      peer.previous = peer.current;
      peer.current = kp;
    } else {
      // The responder waits for the initiator's first data message before sending on it.
      if (peer.next) this.dropKeypair(peer.next);
      peer.next = kp;
    }
    peer.lastHandshake = Date.now();
    peer.zeroKeysAt = now + 3 * this.timers.rejectAfterTime;
    peer.lastMinuteHandshakeSent = false;
    return kp;
  }

  private dropKeypair(kp: Keypair): void {
    const e = this.indices.get(kp.localIndex);
    if (e?.keypair === kp) this.indices.delete(kp.localIndex);
    this.keyTable.remove(kp.sendSlot);
    this.keyTable.remove(kp.receiveSlot);
    kp.sendSlot = kp.receiveSlot = -1;
  }

  private zeroPeer(peer: Peer): void {
    for (const kp of [peer.current, peer.previous, peer.next]) if (kp) this.dropKeypair(kp);
    peer.current = peer.previous = peer.next = undefined;
    this.endAttempt(peer);
    peer.queue = [];
    peer.sendKeepaliveAt = peer.newHandshakeAt = peer.zeroKeysAt = undefined;
  }

  /** Ends the peer's handshake attempt: no more retransmissions, our initiation's state dropped. */
  private endAttempt(peer: Peer): void {
    this.dropHandshake(peer);
    peer.handshakeStarted = 0;
    peer.retransmitAt = undefined;
  }

  /** Forgets our pending initiation to the peer, its secrets zeroed. */
  private dropHandshake(peer: Peer): void {
    const state = peer.handshake;
    if (!state) return;
    this.indices.delete(state.localIndex);
    wipeInitiator(state);
    peer.handshake = undefined;
  }

  private underLoad(now: number): boolean {
    if (now - this.handshakeWindowStart >= 1000) {
      this.handshakeWindowStart = now;
      this.handshakesInWindow = 0;
    }
    this.handshakesInWindow++;
    if (this.handshakesInWindow > this.timers.underLoadPerSecond) this.underLoadUntil = now + UNDER_LOAD_HOLD_MS;
    return this.forceUnderLoad || now < this.underLoadUntil;
  }

  /**
   * MAC checks shared by initiations and responses, and under load a valid MAC2 (a cookie: the
   * source receives at its address) and the source's handshake rate; false when the message
   * must go no further. Every check here costs far less than the Noise work it guards.
   */
  private admitHandshake(msg: Uint8Array, rec: Uint8Array, recOff: number, now: number): boolean {
    const checker = this.checker!;
    if (!checker.checkMac1(msg)) { this.stats.dropped.badMac1++; return false; }
    if (this.underLoad(now)) {
      const source = rec.subarray(recOff, recOff + 18);
      if (!checker.checkMac2(msg, source)) {
        this.stats.dropped.cookieRequired++;
        this.stats.cookieRepliesSent++;
        const reply = checker.makeReply(msg, source);
        this.sendOne(decodeEndpoint(rec, recOff), reply);
        return false;
      }
      if (!this.limiter.allow(rec, recOff, now)) { this.stats.dropped.sourceRateLimited++; return false; }
    }
    return true;
  }

  private handleInitiation(msg: Uint8Array, rec: Uint8Array, recOff: number, now: number): void {
    if (!this.admitHandshake(msg, rec, recOff, now)) return;
    const init = consumeInitiation(this.key!, msg);
    if (!init) { this.stats.dropped.handshakeFailed++; return; }
    const peer = this.peers.get(keyToBase64(init.remoteStatic));
    if (!peer || (peer.lastTimestamp && Buffer.compare(init.timestamp, peer.lastTimestamp) <= 0)) {
      wipeConsumed(init);
      this.stats.dropped.handshakeFailed++;
      return;
    }
    if (now - peer.lastInitiationConsumed < this.timers.initiationMinInterval) {
      wipeConsumed(init);
      this.stats.dropped.rateLimited++;
      return;
    }
    peer.lastTimestamp = init.timestamp;
    peer.lastInitiationConsumed = now;
    this.stats.handshakeInitiationsReceived++;
    const entry: IndexEntry = { peer };
    const localIndex = this.newIndex(entry);
    const made = createResponse(init, peer.presharedKey, localIndex);
    if (!made) { this.indices.delete(localIndex); this.stats.dropped.handshakeFailed++; return; }
    this.installKeypair(peer, made.keys, now);
    this.updateEndpoint(peer, rec, recOff);
    peer.cookies.stamp(made.message);
    this.stats.handshakeResponsesSent++;
    this.sendOne(peer.endpoint!, made.message);
    this.onAuthenticatedReceived(peer, now);
    this.onAuthenticatedSent(peer, now, false);
  }

  private handleResponse(msg: Uint8Array, rec: Uint8Array, recOff: number, now: number): void {
    if (!this.admitHandshake(msg, rec, recOff, now)) return;
    const receiver = new DataView(msg.buffer, msg.byteOffset).getUint32(8, true);
    const entry = this.indices.get(receiver);
    const state = entry?.handshake;
    if (!entry || !state || entry.peer.handshake !== state) { this.stats.dropped.handshakeFailed++; return; }
    const keys = consumeResponse(this.key!, state, msg);
    if (!keys) { this.stats.dropped.handshakeFailed++; return; }
    const peer = entry.peer;
    this.stats.handshakeResponsesReceived++;
    this.endAttempt(peer);
    this.installKeypair(peer, keys, now);
    this.updateEndpoint(peer, rec, recOff);
    this.onAuthenticatedReceived(peer, now);
    // Confirm the session to the responder: queued packets, or else a keepalive.
    if (peer.queue.length > 0) this.flushQueue(peer); else this.sendKeepalive(peer);
  }

  private handleCookieReply(msg: Uint8Array): void {
    const receiver = new DataView(msg.buffer, msg.byteOffset).getUint32(4, true);
    const entry = this.indices.get(receiver);
    if (!entry || !entry.peer.cookies.consumeReply(msg)) { this.stats.dropped.handshakeFailed++; return; }
    this.stats.cookieRepliesReceived++;
  }

  private updateEndpoint(peer: Peer, rec: Uint8Array, recOff: number): void {
    const key = endpointKey(rec, recOff);
    if (key !== peer.endpointKey) {
      peer.endpoint = decodeEndpoint(rec, recOff);
      peer.endpointKey = key;
    }
  }

  // ---- incoming: datagrams from UDP ----

  /** Processes a batch of received datagrams: handshakes at once, data messages opened in one native call. */
  receive(d: ReceivedDatagrams): void {
    const now = this.now();
    const buf = d.buffer;
    // The socket hands over the same receive buffer every time: one view of it, kept.
    let view = this.rxView;
    if (view.buffer !== buf.buffer || view.byteOffset !== buf.byteOffset || view.byteLength !== buf.byteLength) {
      view = this.rxView = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    }
    const s = this.acquire('openScratch', d.count);
    try {
      let n = 0;
      for (let i = 0; i < d.count; i++) {
        const off = d.offsets[i]!;
        const len = d.lengths[i]!;
        if (len < 4) { this.stats.dropped.malformed++; continue; }
        const type = view.getUint32(off, true); // type byte + three zero reserved bytes
        if (type === MESSAGE_DATA && len >= DATA_HEADER_SIZE + TAG_SIZE) {
          const entry = this.indices.get(view.getUint32(off + 4, true));
          const kp = entry?.keypair;
          if (!kp) { this.stats.dropped.unknownIndex++; continue; }
          const counter = view.getUint32(off + 8, true) + view.getUint32(off + 12, true) * 0x1_0000_0000;
          if (now - kp.created >= this.timers.rejectAfterTime || counter >= this.timers.rejectAfterMessages) {
            this.stats.dropped.expired++;
            continue;
          }
          if (!kp.replay.check(counter)) { this.stats.dropped.replay++; continue; }
          s.index[n] = i; s.keypairs[n] = kp; s.counter[n] = counter; n++;
          continue;
        }
        if (!this.key) { this.stats.dropped.malformed++; continue; }
        // Only handshake messages need a view of their own; data is opened straight from the batch.
        const msg = buf.subarray(off, off + len);
        const recOff = d.endpointOffset(i);
        if (type === MESSAGE_INITIATION && len === INITIATION_SIZE) this.handleInitiation(msg, d.endpoints, recOff, now);
        else if (type === MESSAGE_RESPONSE && len === RESPONSE_SIZE) this.handleResponse(msg, d.endpoints, recOff, now);
        else if (type === MESSAGE_COOKIE_REPLY && len === COOKIE_REPLY_SIZE) this.handleCookieReply(msg);
        else this.stats.dropped.malformed++;
      }
      if (n > 0) this.openAndDeliver(d, s, n, now);
    } finally {
      for (let k = 0; k < d.count; k++) s.keypairs[k] = undefined;
      s.peers.length = 0;
      s.inUse = false;
    }
  }

  private openAndDeliver(d: ReceivedDatagrams, s: BatchScratch, n: number, now: number): void {
    const { keyIndex, srcOffsets, srcLengths, counters, dstOffsets, dstLengths, ok, index, counter, keypairs } = s;
    // What goes to the TUN: the delivered packets' places in the output.
    const { outOffsets: deliverOffsets, outLengths: deliverLengths } = s;
    const epoch = ++this.epoch;
    let total = 0;
    let m = 0;
    for (let k = 0; k < n; k++) {
      const kp = keypairs[k]!;
      // A handshake later in this batch may have dropped the keypair, and its key slot with it.
      if (kp.receiveSlot < 0) { this.stats.dropped.unknownIndex++; continue; }
      const i = index[k]!;
      const c = counter[k]!;
      index[m] = i; keypairs[m] = kp; counter[m] = c;
      keyIndex[m] = kp.receiveSlot;
      srcOffsets[m] = d.offsets[i]! + DATA_HEADER_SIZE;
      srcLengths[m] = d.lengths[i]! - DATA_HEADER_SIZE;
      counters[2 * m] = c >>> 0;
      counters[2 * m + 1] = Math.floor(c / 0x1_0000_0000);
      // Each plaintext gets room in front (the interface's virtio_net_hdr).
      total += DELIVER_HEADROOM;
      dstOffsets[m] = total;
      total += srcLengths[m]! - TAG_SIZE;
      m++;
    }
    if (m === 0) return;
    n = m;
    const arena = this.takeArena('rxArena', total);
    try {
      const out = arena.buffer;
      const b = s.batch;
      b.keys = this.keyTable.bytes; b.src = d.buffer; b.dst = out; b.count = n;
      openBatch(b, ok);
      b.keys = b.src = b.dst = EMPTY;
      let delivered = 0;
      const touched = s.peers;
      // Datagrams split from one GRO message share one source record: its endpoint is checked once.
      let lastPeer: Peer | undefined;
      let lastRecOff = -1;
      for (let k = 0; k < n; k++) {
        const kp = keypairs[k]!;
        if (!ok[k]) { this.stats.dropped.authFailed++; continue; }
        if (!kp.replay.accept(counter[k]!)) { this.stats.dropped.replay++; continue; }
        const peer = kp.peer;
        if (kp === peer.next) this.confirmNext(peer);
        const i = index[k]!;
        const recOff = d.endpointOffset(i);
        if (peer !== lastPeer || recOff !== lastRecOff) {
          this.updateEndpoint(peer, d.endpoints, recOff);
          lastPeer = peer;
          lastRecOff = recOff;
        }
        peer.rxBytes += d.lengths[i]!;
        if (peer.rxEpoch !== epoch) { peer.rxEpoch = epoch; touched.push(peer); }
        const len = dstLengths[k]!;
        if (len === 0) { this.stats.keepalivesReceived++; continue; }
        const at = dstOffsets[k]!;
        const ipLen = this.innerLength(out, at, len, peer);
        if (ipLen === 0) continue;
        this.stats.dataPacketsReceived++;
        if (peer.sendKeepaliveAt === undefined) peer.sendKeepaliveAt = now + this.timers.keepaliveTimeout;
        deliverOffsets[delivered] = at;
        deliverLengths[delivered] = ipLen;
        delivered++;
      }
      for (const peer of touched) {
        this.onAuthenticatedReceived(peer, now);
        const kp = peer.current;
        // Last-minute rekey by the initiator when the session nears REJECT_AFTER_TIME.
        if (kp?.initiator && !peer.lastMinuteHandshakeSent &&
          now - kp.created >= this.timers.rejectAfterTime - this.timers.keepaliveTimeout - this.timers.rekeyTimeout) {
          peer.lastMinuteHandshakeSent = true;
          this.initiateHandshake(peer, false);
        }
      }
      if (delivered > 0 && this.io.deliver({ buffer: out, offsets: deliverOffsets, lengths: deliverLengths, count: delivered }) !== true) {
        arena.handOver();
      }
    } finally {
      arena.inUse = false;
    }
  }

  /** Length of the IP packet inside a decrypted payload (padding stripped), 0 if it must be dropped. */
  private innerLength(buf: Uint8Array, off: number, len: number, peer: Peer): number {
    const version = buf[off]! >> 4;
    let ipLen: number;
    let source: Peer | undefined;
    if (version === 4 && len >= 20) {
      ipLen = (buf[off + 2]! << 8) | buf[off + 3]!;
      source = this.allowedIps.lookup(4, buf, off + 12);
    } else if (version === 6 && len >= 40) {
      ipLen = 40 + ((buf[off + 4]! << 8) | buf[off + 5]!);
      source = this.allowedIps.lookup(6, buf, off + 8);
    } else {
      this.stats.dropped.malformed++;
      return 0;
    }
    if (ipLen > len || ipLen < (version === 4 ? 20 : 40)) { this.stats.dropped.malformed++; return 0; }
    if (source !== peer) { this.stats.dropped.notAllowed++; return 0; }
    return ipLen;
  }

  private confirmNext(peer: Peer): void {
    const next = peer.next!;
    if (peer.previous) this.dropKeypair(peer.previous);
    peer.previous = peer.current;
    peer.current = next;
    peer.next = undefined;
    // The peer's initiation gave us a session: an attempt of our own is done (as wireguard-go).
    this.endAttempt(peer);
    this.flushQueue(peer);
  }

  // ---- timers ----

  private onAuthenticatedSent(peer: Peer, now: number, data: boolean): void {
    peer.sendKeepaliveAt = undefined;
    peer.lastAuthenticatedTraversal = now;
    if (data && peer.newHandshakeAt === undefined) {
      peer.newHandshakeAt = now + this.timers.keepaliveTimeout + this.timers.rekeyTimeout;
    }
  }

  private onAuthenticatedReceived(peer: Peer, now: number): void {
    peer.newHandshakeAt = undefined;
    peer.lastAuthenticatedTraversal = now;
  }

  /** Runs due timers; the interface calls this a few times a second. */
  tick(): void {
    const now = this.now();
    this.limiter.sweep(now);
    for (const peer of this.peers.values()) {
      if (peer.retransmitAt !== undefined && now >= peer.retransmitAt) {
        if (now - peer.handshakeStarted >= this.timers.rekeyAttemptTime) {
          // Give up: drop the attempt and what waited for it.
          this.endAttempt(peer);
          peer.queue = [];
        } else {
          this.initiateHandshake(peer, true);
        }
      }
      if (peer.sendKeepaliveAt !== undefined && now >= peer.sendKeepaliveAt) {
        peer.sendKeepaliveAt = undefined;
        if (this.usableSendKeypair(peer)) this.sendKeepalive(peer);
      }
      if (peer.newHandshakeAt !== undefined && now >= peer.newHandshakeAt) {
        // We sent data and heard nothing back: the session may be dead, start a new one.
        peer.newHandshakeAt = undefined;
        this.initiateHandshake(peer, false);
      }
      if (peer.persistentKeepalive > 0 && now - peer.lastAuthenticatedTraversal >= peer.persistentKeepalive * 1000) {
        peer.lastAuthenticatedTraversal = now;
        this.sendKeepalive(peer);
      }
      if (peer.zeroKeysAt !== undefined && now >= peer.zeroKeysAt) this.zeroPeer(peer);
    }
  }

  /** Whether the peer has a session it may send on now. */
  hasSession(peer: Peer): boolean {
    return this.usableSendKeypair(peer) !== undefined;
  }

  /** Whether any session key is held in memory (false once every keypair is dropped and zeroed). */
  holdsSessionKeys(): boolean {
    return !this.keyTable.empty();
  }

  /**
   * Drops every session and handshake and zeroes the keys held: the static private key and
   * every preshared key (on shutdown; the engine is done with after this).
   */
  close(): void {
    for (const peer of this.peers.values()) {
      this.zeroPeer(peer);
      peer.presharedKey.fill(0);
    }
    this.key?.wipe();
    this.key = undefined;
    this.checker = undefined;
  }
}

