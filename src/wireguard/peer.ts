// One peer as the engine knows it: its keys and endpoint, the sessions it has with us, the
// handshake we have under way, the packets waiting for a session, its timer deadlines and its
// counters. The engine's parts (send, receive, handshake, timers, keys) read and change it.
import { CookieGenerator } from './cookie.js';
import type { InitiatorState } from './noise.js';
import type { Keypair } from './keys.js';
import { MAX_QUEUED_PACKETS, type Timers } from './constants.js';
import { decodeEndpoint, encodeEndpoint, endpointKey, type Endpoint, type ResolvedEndpoint } from '../net/endpoint.js';

/** How a program configures a peer (WireGuardEngine.setPeer). */
export interface PeerConfig {
  publicKey: Uint8Array;
  presharedKey?: Uint8Array;
  endpoint?: Endpoint;
  allowedIps?: string[];
  /** Seconds; 0/undefined: off. */
  persistentKeepalive?: number;
}

export const ZERO_PSK = Buffer.alloc(32);

export class Peer {
  readonly publicKey: Buffer;
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
  /** Packets waiting for a session (at most MAX_QUEUED_PACKETS, the oldest dropped first). */
  queue: Buffer[] = [];

  /** Wall-clock ms of the last completed handshake (0: never). */
  lastHandshake = 0;
  rxBytes = 0;
  txBytes = 0;

  /** Batch bookkeeping: the batch numbers (see Sender and Receiver) that last saw this peer, and its group in the TUN batch. */
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
    this.cookies = new CookieGenerator(publicKey, timers.cookieRefreshTime, now);
  }

  setEndpoint(e: Endpoint | undefined): void {
    if (!e) { this.endpoint = undefined; this.endpointKey = undefined; return; }
    const rec = encodeEndpoint(e.address, e.port);
    this.endpoint = decodeEndpoint(rec);
    this.endpointKey = endpointKey(rec);
  }

  /** Takes the source of an authenticated message (an endpoint record) as the peer's endpoint: roaming. */
  learnEndpoint(rec: Uint8Array, recOff: number): void {
    const key = endpointKey(rec, recOff);
    if (key !== this.endpointKey) {
      this.endpoint = decodeEndpoint(rec, recOff);
      this.endpointKey = key;
    }
  }

  /** Stages a packet until a session exists; false when the queue was full and its oldest packet went. */
  stage(packet: Buffer): boolean {
    const full = this.queue.length >= MAX_QUEUED_PACKETS;
    if (full) this.queue.shift();
    this.queue.push(packet);
    return !full;
  }
}
