// The WireGuard state machine of one interface, without I/O. The interface (interface.ts) feeds
// it TUN batches and UDP batches and carries out its sends; tests drive it with in-memory I/O.
// It holds the configuration (our key, the peers, AllowedIPs, the timers) and is made of one
// part per piece of the protocol, each in its own file:
//   send.ts       routing, staging and sealing packets from the TUN
//   receive.ts    opening data messages and delivering their packets
//   handshake.ts  our identity, initiations, and the handshake messages received
//   timers.ts     the deadlines events arm, and tick()
//   keys.ts       sessions, their local indices and the key table the native AEAD reads
//   peer.ts       what the engine knows about one peer
import { equalBytes, keyToBase64 } from './crypto.js';
import { AllowedIps } from './allowed-ips.js';
import { DEFAULT_TIMERS, type Timers } from './constants.js';
import { Peer, type PeerConfig } from './peer.js';
import { Sessions } from './keys.js';
import { Handshakes } from './handshake.js';
import { Sender } from './send.js';
import { Receiver } from './receive.js';
import { tick } from './timers.js';
import { newEngineStats, type EngineStats } from './stats.js';
import type { Packed, ReceivedDatagrams } from './batch.js';
import type { ResolvedEndpoint } from '../net/endpoint.js';

export interface EngineIo {
  /**
   * Sends datagrams to one endpoint (fire and forget; UDP may drop). The offsets and lengths
   * arrays are the engine's, reused by its next batch: copy them if the send outlives the call.
   * Returns true when the bytes are no longer needed (the kernel took them during the call): the
   * engine then reuses the buffer for its next batch. Otherwise the buffer is the sender's.
   */
  send(to: ResolvedEndpoint, datagrams: Packed): boolean | void;
  /**
   * Writes decrypted, authenticated IP packets to the TUN device. The arrays are the engine's,
   * as for send; so is the buffer again when this returns true.
   */
  deliver(packets: Packed): boolean | void;
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
  readonly stats: EngineStats = newEngineStats();
  mtu: number;
  io: EngineIo;
  /** Monotonic clock in ms. */
  readonly now: () => number;
  // The parts, for one another (a program uses the methods below).
  readonly sessions: Sessions;
  readonly handshakes: Handshakes;
  readonly sender: Sender;
  readonly receiver: Receiver;

  constructor(io: EngineIo, opts: EngineOptions = {}) {
    this.io = io;
    this.timers = { ...DEFAULT_TIMERS, ...opts.timers };
    this.mtu = opts.mtu ?? 1420;
    this.now = opts.now ?? (() => performance.now());
    this.sessions = new Sessions(this.timers);
    this.handshakes = new Handshakes(this);
    this.sender = new Sender(this);
    this.receiver = new Receiver(this);
    if (opts.privateKey) this.setPrivateKey(opts.privateKey);
  }

  get privateKey(): Buffer | undefined { return this.handshakes.staticKey?.private; }
  get publicKey(): Buffer | undefined { return this.handshakes.staticKey?.public; }

  /** When true every handshake message needs a valid MAC2 (tests force it; otherwise load decides). */
  get forceUnderLoad(): boolean { return this.handshakes.forceUnderLoad; }
  set forceUnderLoad(on: boolean) { this.handshakes.forceUnderLoad = on; }

  setPrivateKey(priv: Uint8Array | undefined): void {
    this.handshakes.setKey(priv);
    // New identity: every session and handshake is void; a peer with our own key is dropped.
    const own = this.publicKey;
    for (const peer of this.peers.values()) {
      this.zeroPeer(peer);
      if (own && equalBytes(peer.publicKey, own)) this.removePeer(peer.publicKey);
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
      if (cfg.persistentKeepalive > 0 && was === 0 && peer.endpoint && this.publicKey) this.sendKeepalive(peer);
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

  // ---- the protocol ----

  /**
   * Routes, encrypts and sends a batch of IP packets (buffer[offsets[i] .. +lengths[i]]). Packets
   * for peers without a session are staged and a handshake starts.
   */
  sendPackets(buffer: Uint8Array, offsets: Uint32Array | readonly number[], lengths: Uint32Array | readonly number[], count: number): void {
    this.sender.send(buffer, offsets, lengths, count);
  }

  /** Processes a batch of received datagrams: handshakes at once, data messages opened in one native call. */
  receive(d: ReceivedDatagrams): void {
    this.receiver.receive(d);
  }

  /** Sends an empty data message (staged behind a handshake if there is no session). */
  sendKeepalive(peer: Peer): void {
    this.sender.keepalive(peer);
  }

  /** Starts (or, when `retry`, retransmits) a handshake initiation to `peer`. */
  initiateHandshake(peer: Peer, retry: boolean): void {
    this.handshakes.initiate(peer, retry);
  }

  /** Runs due timers; the interface calls this a few times a second. */
  tick(): void {
    tick(this, this.now());
  }

  /** Whether the peer has a session it may send on now. */
  hasSession(peer: Peer): boolean {
    return this.sessions.sendable(peer, this.now()) !== undefined;
  }

  /** Whether any session key is held in memory (false once every keypair is dropped and zeroed). */
  holdsSessionKeys(): boolean {
    return this.sessions.holdsKeys();
  }

  /** Drops the peer's sessions (keys zeroed), its handshake attempt, staged packets and timers. */
  zeroPeer(peer: Peer): void {
    this.sessions.dropAll(peer);
    this.handshakes.endAttempt(peer);
    peer.queue = [];
    peer.sendKeepaliveAt = peer.newHandshakeAt = peer.zeroKeysAt = undefined;
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
    this.handshakes.setKey(undefined);
  }
}
