// Noise_IKpsk2 as WireGuard uses it (wireguard.com/protocol "First Message" / "Second Message").
// These functions build and consume handshake messages; they hold no timers and do no I/O.
// Every intermediate secret (chaining keys, DH results, message keys) is zeroed as soon as the
// next step has consumed it; the state a handshake keeps is zeroed by wipeInitiator and
// wipeConsumed when it is dropped.
import type { KeyObject } from 'node:crypto';
import { hash, kdf, aeadSeal, aeadOpen, dh, wipe, generateEphemeral, type StaticKey } from './crypto.js';
import { MESSAGE_INITIATION, MESSAGE_RESPONSE, INITIATION_SIZE, RESPONSE_SIZE } from './constants.js';

const CONSTRUCTION = Buffer.from('Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s');
const IDENTIFIER = Buffer.from('WireGuard v1 zx2c4 Jason@zx2c4.com');
const LABEL_MAC1 = Buffer.from('mac1----');
const LABEL_COOKIE = Buffer.from('cookie--');
const EMPTY = Buffer.alloc(0);

const INITIAL_CHAIN = hash(CONSTRUCTION);
const INITIAL_HASH = hash(INITIAL_CHAIN, IDENTIFIER);

/** Nanoseconds are rounded down to a multiple of 2^24 (~16.8 ms), as wireguard-go does: a TAI64N shows no fine clock. */
export const TAI64N_STEP_NS = 0x1000000;

/** TAI64N of now: 8 bytes seconds (+2^62) and 4 bytes nanoseconds (rounded down), big-endian. */
export function tai64n(nowMs = Date.now()): Buffer {
  const out = Buffer.alloc(12);
  const seconds = Math.floor(nowMs / 1000);
  const nanos = Math.floor((nowMs - seconds * 1000) * 1e6);
  out.writeBigUInt64BE(0x4000000000000000n + BigInt(seconds), 0);
  out.writeUInt32BE(nanos - (nanos % TAI64N_STEP_NS), 8);
  return out;
}

/** The smallest rounded TAI64N after `t` (for an initiation sent within one step of the last). */
export function nextTai64n(t: Buffer): Buffer {
  const out = Buffer.from(t);
  const nanos = out.readUInt32BE(8) + TAI64N_STEP_NS;
  if (nanos < 1e9) {
    out.writeUInt32BE(nanos, 8);
  } else {
    out.writeBigUInt64BE(out.readBigUInt64BE(0) + 1n, 0);
    out.writeUInt32BE(0, 8);
  }
  return out;
}

/** State an initiator keeps between sending an initiation and receiving the response. */
export interface InitiatorState {
  ck: Buffer;
  h: Buffer;
  /** Dropped (undefined) once the handshake is wiped. */
  ephemeralPrivate: KeyObject | undefined;
  localIndex: number;
  remoteStatic: Buffer;
  presharedKey: Buffer;
}

/** Zeroes an initiator's handshake state (it is being dropped). */
export function wipeInitiator(state: InitiatorState): void {
  wipe(state.ck, state.h, state.presharedKey);
  state.ephemeralPrivate = undefined;
}

/** Session keys at the end of a handshake. */
export interface SessionKeys {
  sendKey: Buffer;
  receiveKey: Buffer;
  localIndex: number;
  remoteIndex: number;
  initiator: boolean;
}

/** KDF_n(ck, input) → [next chaining key, keys...]; zeroes the old chaining key and, if `secret`, the input. */
function ratchet(n: 1 | 2 | 3, ck: Buffer, input: Buffer, secret: boolean): Buffer[] {
  const out = kdf(n, ck, input);
  if (ck !== INITIAL_CHAIN) ck.fill(0);
  if (secret) input.fill(0);
  return out;
}

/**
 * Builds a handshake initiation (148 bytes, MACs not yet written) from `local` to `remoteStatic`.
 * `timestamp` must grow from one initiation to the next (the responder rejects replays by it).
 */
export function createInitiation(local: StaticKey, remoteStatic: Uint8Array, presharedKey: Uint8Array,
  localIndex: number, timestamp: Buffer): { message: Buffer; state: InitiatorState } | undefined {
  let ck = INITIAL_CHAIN;
  let h = hash(INITIAL_HASH, remoteStatic);
  const msg = Buffer.alloc(INITIATION_SIZE);
  msg[0] = MESSAGE_INITIATION;
  msg.writeUInt32LE(localIndex, 4);
  const ephemeral = generateEphemeral();
  ephemeral.public.copy(msg, 8);
  [ck] = ratchet(1, ck, ephemeral.public, false) as [Buffer];
  h = hash(h, ephemeral.public);
  const es = dh(ephemeral.private, remoteStatic);
  if (!es) { wipe(ck); return undefined; }
  let key: Buffer;
  [ck, key] = ratchet(2, ck, es, true) as [Buffer, Buffer];
  const encryptedStatic = aeadSeal(key, 0n, local.public, h);
  key.fill(0);
  encryptedStatic.copy(msg, 40);
  h = hash(h, encryptedStatic);
  const ss = local.dh(remoteStatic);
  if (!ss) { wipe(ck); return undefined; }
  [ck, key] = ratchet(2, ck, ss, true) as [Buffer, Buffer];
  const encryptedTimestamp = aeadSeal(key, 0n, timestamp, h);
  key.fill(0);
  encryptedTimestamp.copy(msg, 88);
  h = hash(h, encryptedTimestamp);
  return {
    message: msg,
    state: { ck, h, ephemeralPrivate: ephemeral.private, localIndex, remoteStatic: Buffer.from(remoteStatic), presharedKey: Buffer.from(presharedKey) },
  };
}

/** What a responder learns from a valid initiation (before it knows whether it trusts the peer). */
export interface ConsumedInitiation {
  remoteStatic: Buffer;
  remoteIndex: number;
  remoteEphemeral: Buffer;
  timestamp: Buffer;
  ck: Buffer;
  h: Buffer;
}

/** Zeroes what a responder kept of an initiation (once answered, or refused). */
export function wipeConsumed(init: ConsumedInitiation): void {
  wipe(init.ck, init.h);
}

/** Decrypts an initiation addressed to `local`; undefined if it does not authenticate. */
export function consumeInitiation(local: StaticKey, msg: Uint8Array): ConsumedInitiation | undefined {
  if (msg.length !== INITIATION_SIZE || msg[0] !== MESSAGE_INITIATION) return undefined;
  const m = Buffer.from(msg.buffer, msg.byteOffset, msg.length);
  let ck = INITIAL_CHAIN;
  let h = hash(INITIAL_HASH, local.public);
  const remoteIndex = m.readUInt32LE(4);
  const remoteEphemeral = Buffer.from(m.subarray(8, 40));
  [ck] = ratchet(1, ck, remoteEphemeral, false) as [Buffer];
  h = hash(h, remoteEphemeral);
  const es = local.dh(remoteEphemeral);
  if (!es) { wipe(ck); return undefined; }
  let key: Buffer;
  [ck, key] = ratchet(2, ck, es, true) as [Buffer, Buffer];
  const encryptedStatic = m.subarray(40, 88);
  const remoteStatic = aeadOpen(key, 0n, encryptedStatic, h);
  key.fill(0);
  if (!remoteStatic) { wipe(ck); return undefined; }
  h = hash(h, encryptedStatic);
  const ss = local.dh(remoteStatic);
  if (!ss) { wipe(ck); return undefined; }
  [ck, key] = ratchet(2, ck, ss, true) as [Buffer, Buffer];
  const encryptedTimestamp = m.subarray(88, 116);
  const timestamp = aeadOpen(key, 0n, encryptedTimestamp, h);
  key.fill(0);
  if (!timestamp) { wipe(ck); return undefined; }
  h = hash(h, encryptedTimestamp);
  return { remoteStatic, remoteIndex, remoteEphemeral, timestamp, ck, h };
}

/**
 * Builds the response to a consumed initiation (92 bytes, MACs not yet written) and the session
 * keys. The initiation's chaining state is used up (zeroed) either way.
 */
export function createResponse(init: ConsumedInitiation, presharedKey: Uint8Array, localIndex: number):
  { message: Buffer; keys: SessionKeys } | undefined {
  let ck = init.ck;
  let h = init.h;
  const msg = Buffer.alloc(RESPONSE_SIZE);
  msg[0] = MESSAGE_RESPONSE;
  msg.writeUInt32LE(localIndex, 4);
  msg.writeUInt32LE(init.remoteIndex, 8);
  const ephemeral = generateEphemeral();
  ephemeral.public.copy(msg, 12);
  [ck] = ratchet(1, ck, ephemeral.public, false) as [Buffer];
  h = hash(h, ephemeral.public);
  wipeConsumed(init);
  const ee = dh(ephemeral.private, init.remoteEphemeral);
  const se = dh(ephemeral.private, init.remoteStatic);
  if (!ee || !se) { wipe(ck, ee, se, h); return undefined; }
  [ck] = ratchet(1, ck, ee, true) as [Buffer];
  [ck] = ratchet(1, ck, se, true) as [Buffer];
  const [ck2, tau, key] = ratchet(3, ck, Buffer.from(presharedKey), true) as [Buffer, Buffer, Buffer];
  ck = ck2;
  h = hash(h, tau);
  tau.fill(0);
  const encryptedNothing = aeadSeal(key, 0n, EMPTY, h);
  key.fill(0);
  encryptedNothing.copy(msg, 44);
  h.fill(0);
  const [receiveKey, sendKey] = ratchet(2, ck, EMPTY, false) as [Buffer, Buffer];
  return { message: msg, keys: { sendKey, receiveKey, localIndex, remoteIndex: init.remoteIndex, initiator: false } };
}

/**
 * Completes the initiator's side: session keys, or undefined when the response does not
 * authenticate. The state stays as it was (a forged response must not end the handshake); the
 * caller wipes it when it drops it.
 */
export function consumeResponse(local: StaticKey, state: InitiatorState, msg: Uint8Array): SessionKeys | undefined {
  if (msg.length !== RESPONSE_SIZE || msg[0] !== MESSAGE_RESPONSE || !state.ephemeralPrivate) return undefined;
  const m = Buffer.from(msg.buffer, msg.byteOffset, msg.length);
  if (m.readUInt32LE(8) !== state.localIndex) return undefined;
  let ck: Buffer = Buffer.from(state.ck);
  let h = state.h;
  const remoteEphemeral = m.subarray(12, 44);
  [ck] = ratchet(1, ck, remoteEphemeral, false) as [Buffer];
  h = hash(h, remoteEphemeral);
  const ee = dh(state.ephemeralPrivate, remoteEphemeral);
  const se = local.dh(remoteEphemeral);
  if (!ee || !se) { wipe(ck, ee, se, h); return undefined; }
  [ck] = ratchet(1, ck, ee, true) as [Buffer];
  [ck] = ratchet(1, ck, se, true) as [Buffer];
  const [ck2, tau, key] = ratchet(3, ck, Buffer.from(state.presharedKey), true) as [Buffer, Buffer, Buffer];
  ck = ck2;
  h = hash(h, tau);
  tau.fill(0);
  const authentic = aeadOpen(key, 0n, m.subarray(44, 60), h) !== undefined;
  key.fill(0);
  h.fill(0);
  if (!authentic) { ck.fill(0); return undefined; }
  const [sendKey, receiveKey] = ratchet(2, ck, EMPTY, false) as [Buffer, Buffer];
  return { sendKey, receiveKey, localIndex: state.localIndex, remoteIndex: m.readUInt32LE(4), initiator: true };
}

/** MAC1 key for messages sent to the holder of `publicKey`: HASH(LABEL_MAC1 || publicKey). */
export function mac1Key(pub: Uint8Array): Buffer {
  return hash(LABEL_MAC1, pub);
}

/** Key that encrypts cookies sent by the holder of `publicKey`: HASH(LABEL_COOKIE || publicKey). */
export function cookieKey(pub: Uint8Array): Buffer {
  return hash(LABEL_COOKIE, pub);
}

