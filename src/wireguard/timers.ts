// WireGuard's timers (wireguard.com/protocol "Timers", paper §6): the deadlines each event arms
// or clears on a peer, and tick(), which runs those that are due. Deadlines are monotonic ms on
// the peer (undefined: not armed); the interface calls tick() a few times a second.
import type { Timers } from './constants.js';
import type { Keypair } from './keys.js';
import type { Peer } from './peer.js';
import type { WireGuardEngine } from './engine.js';

/** We sent an authenticated message (data arms "no answer: new handshake"; keepalives and handshakes do not). */
export function onAuthenticatedSent(peer: Peer, now: number, carriesData: boolean, t: Timers): void {
  peer.sendKeepaliveAt = undefined;
  peer.lastAuthenticatedTraversal = now;
  if (carriesData && peer.newHandshakeAt === undefined) peer.newHandshakeAt = now + t.keepaliveTimeout + t.rekeyTimeout;
}

/** An authenticated message came from the peer: the session is alive. */
export function onAuthenticatedReceived(peer: Peer, now: number): void {
  peer.newHandshakeAt = undefined;
  peer.lastAuthenticatedTraversal = now;
}

/** Data came from the peer: unless we send something first, a keepalive answers it. */
export function onDataReceived(peer: Peer, now: number, t: Timers): void {
  if (peer.sendKeepaliveAt === undefined) peer.sendKeepaliveAt = now + t.keepaliveTimeout;
}

/** A handshake gave the peer a new session: its keys are zeroed if nothing renews them in 3 × REJECT_AFTER_TIME. */
export function onSessionDerived(peer: Peer, now: number, t: Timers): void {
  peer.lastHandshake = Date.now();
  peer.zeroKeysAt = now + 3 * t.rejectAfterTime;
  peer.lastMinuteHandshakeSent = false;
}

/** After sending on a session: it has carried many messages, or (initiator only) it is old. */
export function rekeyDueSending(kp: Keypair, now: number, t: Timers): boolean {
  return kp.sendCounter >= t.rekeyAfterMessages || (kp.initiator && now - kp.created >= t.rekeyAfterTime);
}

/** After receiving: the initiator's last chance to rekey before the session nears REJECT_AFTER_TIME (once per session). */
export function rekeyDueReceiving(peer: Peer, now: number, t: Timers): boolean {
  const kp = peer.current;
  if (!kp?.initiator || peer.lastMinuteHandshakeSent || now - kp.created < t.rejectAfterTime - t.keepaliveTimeout - t.rekeyTimeout) return false;
  peer.lastMinuteHandshakeSent = true;
  return true;
}

/** Runs what is due on every peer. */
export function tick(engine: WireGuardEngine, now: number): void {
  const t = engine.timers;
  engine.handshakes.sweep(now);
  for (const peer of engine.peers.values()) {
    if (peer.retransmitAt !== undefined && now >= peer.retransmitAt) {
      if (now - peer.handshakeStarted >= t.rekeyAttemptTime) {
        // Give up: drop the attempt and what waited for it.
        engine.handshakes.endAttempt(peer);
        peer.queue = [];
      } else {
        engine.handshakes.initiate(peer, true);
      }
    }
    if (peer.sendKeepaliveAt !== undefined && now >= peer.sendKeepaliveAt) {
      peer.sendKeepaliveAt = undefined;
      if (engine.hasSession(peer)) engine.sender.keepalive(peer);
    }
    if (peer.newHandshakeAt !== undefined && now >= peer.newHandshakeAt) {
      // We sent data and heard nothing back: the session may be dead, start a new one.
      peer.newHandshakeAt = undefined;
      engine.handshakes.initiate(peer, false);
    }
    if (peer.persistentKeepalive > 0 && now - peer.lastAuthenticatedTraversal >= peer.persistentKeepalive * 1000) {
      peer.lastAuthenticatedTraversal = now;
      engine.sender.keepalive(peer);
    }
    if (peer.zeroKeysAt !== undefined && now >= peer.zeroKeysAt) engine.zeroPeer(peer);
  }
}
