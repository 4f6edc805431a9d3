// Handshakes (wireguard.com/protocol "Handshake", "Cookie MACs"): our identity, initiations we
// start and retransmit, and the handshake messages we receive. A received handshake message
// costs far more than a data message (two or three X25519), so each passes the cheaper checks
// first: MAC1; under load (more than underLoadPerSecond handshake messages in a second, and for a
// second after) a valid MAC2, or else a cookie reply; then its source's token bucket; only then
// the Noise computation. Every handshake state we drop is zeroed.
import { randomInt } from 'node:crypto';
import { StaticKey, keyToBase64 } from './crypto.js';
import {
  createInitiation, consumeInitiation, createResponse, consumeResponse, tai64n, nextTai64n, wipeInitiator, wipeConsumed,
  type SessionKeys,
} from './noise.js';
import { CookieChecker } from './cookie.js';
import { HandshakeRateLimiter } from './ratelimiter.js';
import { MESSAGE_INITIATION, MESSAGE_RESPONSE, MESSAGE_COOKIE_REPLY, INITIATION_SIZE, RESPONSE_SIZE, COOKIE_REPLY_SIZE } from './constants.js';
import { onAuthenticatedReceived, onAuthenticatedSent, onSessionDerived } from './timers.js';
import type { IndexEntry } from './keys.js';
import type { Peer } from './peer.js';
import type { WireGuardEngine } from './engine.js';
import { decodeEndpoint, type ResolvedEndpoint } from '../net/endpoint.js';

/** How long the interface stays under load after the handshake rate falls back (wireguard-go's UnderLoadAfterTime). */
const UNDER_LOAD_HOLD_MS = 1000;
/** Endpoint record bytes a cookie covers: the address and the port. */
const COOKIE_SOURCE_SIZE = 18;

export class Handshakes {
  /** When true every handshake message needs a valid MAC2 (tests force it; otherwise load decides). */
  forceUnderLoad = false;
  private key: StaticKey | undefined;
  private checker: CookieChecker | undefined;
  private windowStart = 0;
  private inWindow = 0;
  /** Under load until then (ms): the state outlasts the load by UNDER_LOAD_HOLD_MS. */
  private underLoadUntil = -Infinity;
  private readonly limiter = new HandshakeRateLimiter();

  constructor(private readonly engine: WireGuardEngine) {}

  /** Our static key pair (undefined: none, so no handshake is made or answered). */
  get staticKey(): StaticKey | undefined { return this.key; }

  /** Takes a new private key (none when undefined or all zero); the old one is zeroed. */
  setKey(priv: Uint8Array | undefined): void {
    this.key?.wipe();
    if (!priv || priv.every((b) => b === 0)) {
      this.key = undefined;
      this.checker = undefined;
    } else {
      this.key = new StaticKey(priv);
      this.checker = new CookieChecker(this.key.public, this.engine.timers.cookieRefreshTime, this.engine.now);
    }
  }

  /** Starts (or, when `retry`, retransmits) a handshake initiation to `peer`. */
  initiate(peer: Peer, retry: boolean): void {
    if (!this.key) return;
    const { timers: t, stats, sessions } = this.engine;
    const now = this.engine.now();
    if (!retry && peer.handshake && now - peer.lastInitiationSent < t.rekeyTimeout) return;
    // An attempt runs from its first initiation until a session is confirmed, or until tick()
    // gives up after REKEY_ATTEMPT_TIME and drops what waited for it. It runs without an
    // endpoint too (each retry looks again), so packets staged for such a peer expire as well.
    if (!peer.handshake && peer.retransmitAt === undefined) peer.handshakeStarted = now;
    peer.retransmitAt = now + t.rekeyTimeout + randomInt(0, 334) * Math.min(1, t.rekeyTimeout / 5000);
    if (!peer.endpoint) { stats.dropped.noEndpoint++; return; }
    this.drop(peer);
    const entry: IndexEntry = { peer };
    const localIndex = sessions.reserve(entry);
    const made = createInitiation(this.key, peer.publicKey, peer.presharedKey, localIndex, this.timestamp(peer));
    if (!made) { sessions.release(localIndex); return; }
    entry.handshake = made.state;
    peer.handshake = made.state;
    peer.lastInitiationSent = now;
    peer.cookies.stamp(made.message);
    stats.handshakeInitiationsSent++;
    this.sendOne(peer.endpoint, made.message);
    onAuthenticatedSent(peer, now, false, t);
  }

  /** Ends the peer's handshake attempt: no more retransmissions, our initiation's state dropped. */
  endAttempt(peer: Peer): void {
    this.drop(peer);
    peer.handshakeStarted = 0;
    peer.retransmitAt = undefined;
  }

  /** Forgets our pending initiation to the peer, its secrets zeroed. */
  drop(peer: Peer): void {
    const state = peer.handshake;
    if (!state) return;
    this.engine.sessions.release(state.localIndex);
    wipeInitiator(state);
    peer.handshake = undefined;
  }

  /** Forgets sources that stopped sending handshakes (the timer tick calls it). */
  sweep(now: number): void {
    this.limiter.sweep(now);
  }

  /**
   * A received message that is not data, from the endpoint record rec[recOff..]. Returns false
   * when it is no handshake message either (wrong type or size), or we have no key to answer it.
   */
  receive(type: number, msg: Uint8Array, rec: Uint8Array, recOff: number, now: number): boolean {
    if (!this.key) return false;
    if (type === MESSAGE_INITIATION && msg.length === INITIATION_SIZE) this.onInitiation(msg, rec, recOff, now);
    else if (type === MESSAGE_RESPONSE && msg.length === RESPONSE_SIZE) this.onResponse(msg, rec, recOff, now);
    else if (type === MESSAGE_COOKIE_REPLY && msg.length === COOKIE_REPLY_SIZE) this.onCookieReply(msg);
    else return false;
    return true;
  }

  private underLoad(now: number): boolean {
    if (now - this.windowStart >= 1000) {
      this.windowStart = now;
      this.inWindow = 0;
    }
    this.inWindow++;
    if (this.inWindow > this.engine.timers.underLoadPerSecond) this.underLoadUntil = now + UNDER_LOAD_HOLD_MS;
    return this.forceUnderLoad || now < this.underLoadUntil;
  }

  /**
   * MAC checks shared by initiations and responses, and under load a valid MAC2 (a cookie: the
   * source receives at its address) and the source's handshake rate; false when the message
   * must go no further. Every check here costs far less than the Noise work it guards.
   */
  private admit(msg: Uint8Array, rec: Uint8Array, recOff: number, now: number): boolean {
    const checker = this.checker!;
    const { stats } = this.engine;
    if (!checker.checkMac1(msg)) { stats.dropped.badMac1++; return false; }
    if (this.underLoad(now)) {
      const source = rec.subarray(recOff, recOff + COOKIE_SOURCE_SIZE);
      if (!checker.checkMac2(msg, source)) {
        stats.dropped.cookieRequired++;
        stats.cookieRepliesSent++;
        this.sendOne(decodeEndpoint(rec, recOff), checker.makeReply(msg, source));
        return false;
      }
      if (!this.limiter.allow(rec, recOff, now)) { stats.dropped.sourceRateLimited++; return false; }
    }
    return true;
  }

  private onInitiation(msg: Uint8Array, rec: Uint8Array, recOff: number, now: number): void {
    if (!this.admit(msg, rec, recOff, now)) return;
    const { stats, timers: t, sessions } = this.engine;
    const init = consumeInitiation(this.key!, msg);
    if (!init) { stats.dropped.handshakeFailed++; return; }
    const peer = this.engine.peers.get(keyToBase64(init.remoteStatic));
    if (!peer || (peer.lastTimestamp && Buffer.compare(init.timestamp, peer.lastTimestamp) <= 0)) {
      wipeConsumed(init);
      stats.dropped.handshakeFailed++;
      return;
    }
    if (now - peer.lastInitiationConsumed < t.initiationMinInterval) {
      wipeConsumed(init);
      stats.dropped.rateLimited++;
      return;
    }
    peer.lastTimestamp = init.timestamp;
    peer.lastInitiationConsumed = now;
    stats.handshakeInitiationsReceived++;
    const localIndex = sessions.reserve({ peer });
    const made = createResponse(init, peer.presharedKey, localIndex);
    if (!made) { sessions.release(localIndex); stats.dropped.handshakeFailed++; return; }
    this.newSession(peer, made.keys, now);
    peer.learnEndpoint(rec, recOff);
    peer.cookies.stamp(made.message);
    stats.handshakeResponsesSent++;
    this.sendOne(peer.endpoint!, made.message);
    onAuthenticatedReceived(peer, now);
    onAuthenticatedSent(peer, now, false, t);
  }

  private onResponse(msg: Uint8Array, rec: Uint8Array, recOff: number, now: number): void {
    if (!this.admit(msg, rec, recOff, now)) return;
    const { stats, sessions } = this.engine;
    const receiver = new DataView(msg.buffer, msg.byteOffset).getUint32(8, true);
    const entry = sessions.entry(receiver);
    const state = entry?.handshake;
    if (!entry || !state || entry.peer.handshake !== state) { stats.dropped.handshakeFailed++; return; }
    const keys = consumeResponse(this.key!, state, msg);
    if (!keys) { stats.dropped.handshakeFailed++; return; }
    const peer = entry.peer;
    stats.handshakeResponsesReceived++;
    this.endAttempt(peer);
    this.newSession(peer, keys, now);
    peer.learnEndpoint(rec, recOff);
    onAuthenticatedReceived(peer, now);
    // Confirm the session to the responder: queued packets, or else a keepalive.
    if (peer.queue.length > 0) this.engine.sender.flush(peer); else this.engine.sender.keepalive(peer);
  }

  private onCookieReply(msg: Uint8Array): void {
    const { stats, sessions } = this.engine;
    const receiver = new DataView(msg.buffer, msg.byteOffset).getUint32(4, true);
    const entry = sessions.entry(receiver);
    if (!entry || !entry.peer.cookies.consumeReply(msg)) { stats.dropped.handshakeFailed++; return; }
    stats.cookieRepliesReceived++;
  }

  private newSession(peer: Peer, keys: SessionKeys, now: number): void {
    this.engine.sessions.install(peer, keys, now);
    onSessionDerived(peer, now, this.engine.timers);
  }

  /** A (rounded) TAI64N strictly greater than the last one we sent this peer. */
  private timestamp(peer: Peer): Buffer {
    const t = tai64n();
    const last = peer.lastTimestampSent;
    peer.lastTimestampSent = last && Buffer.compare(t, last) <= 0 ? nextTai64n(last) : t;
    return peer.lastTimestampSent;
  }

  private sendOne(to: ResolvedEndpoint, msg: Buffer): void {
    this.engine.io.send(to, { buffer: msg, offsets: Uint32Array.of(0), lengths: Uint32Array.of(msg.length), count: 1 });
  }
}
