// Noise_IKpsk2 as WireGuard uses it (wireguard.com/protocol "First Message" / "Second Message").
// These functions build and consume handshake messages; they hold no timers and do no I/O.
import {
  hash, kdf, aeadSeal, aeadOpen, StaticKey, generatePrivateKey, publicKey, dh,
} from './crypto.js';
import { MESSAGE_INITIATION, MESSAGE_RESPONSE, INITIATION_SIZE, RESPONSE_SIZE } from './constants.js';

const CONSTRUCTION = Buffer.from('Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s');
const IDENTIFIER = Buffer.from('WireGuard v1 zx2c4 Jason@zx2c4.com');
export const LABEL_MAC1 = Buffer.from('mac1----');
export const LABEL_COOKIE = Buffer.from('cookie--');
const EMPTY = Buffer.alloc(0);

const INITIAL_CHAIN = hash(CONSTRUCTION);
const INITIAL_HASH = hash(INITIAL_CHAIN, IDENTIFIER);

/** Chaining key and hash at the start of a handshake towards responder `responderPublic`. */
function start(responderPublic: Uint8Array): { ck: Buffer; h: Buffer } {
  return { ck: INITIAL_CHAIN, h: hash(INITIAL_HASH, responderPublic) };
}

/** TAI64N of now: 8 bytes seconds (+2^62) and 4 bytes nanoseconds, big-endian. */
export function tai64n(nowMs = Date.now()): Buffer {
  const out = Buffer.alloc(12);
  const seconds = Math.floor(nowMs / 1000);
  out.writeBigUInt64BE(0x4000000000000000n + BigInt(seconds), 0);
  out.writeUInt32BE(Math.floor((nowMs % 1000) * 1e6), 8);
  return out;
}

/** State an initiator keeps between sending an initiation and receiving the response. */
export interface InitiatorState {
  ck: Buffer;
  h: Buffer;
  ephemeralPrivate: Buffer;
  localIndex: number;
  remoteStatic: Buffer;
  presharedKey: Buffer;
}

/** Session keys at the end of a handshake. */
export interface SessionKeys {
  sendKey: Buffer;
  receiveKey: Buffer;
  localIndex: number;
  remoteIndex: number;
  initiator: boolean;
}

/**
 * Builds a handshake initiation (148 bytes, MACs not yet written) from `local` to `remoteStatic`.
 * `timestamp` must grow from one initiation to the next (the responder rejects replays by it).
 */
export function createInitiation(local: StaticKey, remoteStatic: Uint8Array, presharedKey: Uint8Array,
  localIndex: number, timestamp: Buffer): { message: Buffer; state: InitiatorState } | undefined {
  let { ck, h } = start(remoteStatic);
  const msg = Buffer.alloc(INITIATION_SIZE);
  msg[0] = MESSAGE_INITIATION;
  msg.writeUInt32LE(localIndex, 4);
  const ephemeralPrivate = generatePrivateKey();
  const ephemeralPublic = publicKey(ephemeralPrivate);
  ephemeralPublic.copy(msg, 8);
  [ck] = kdf(1, ck, ephemeralPublic) as [Buffer];
  h = hash(h, ephemeralPublic);
  const es = dh(ephemeralPrivate, remoteStatic);
  if (!es) return undefined;
  let key: Buffer;
  [ck, key] = kdf(2, ck, es) as [Buffer, Buffer];
  const encryptedStatic = aeadSeal(key, 0n, local.public, h);
  encryptedStatic.copy(msg, 40);
  h = hash(h, encryptedStatic);
  const ss = local.dh(remoteStatic);
  if (!ss) return undefined;
  [ck, key] = kdf(2, ck, ss) as [Buffer, Buffer];
  const encryptedTimestamp = aeadSeal(key, 0n, timestamp, h);
  encryptedTimestamp.copy(msg, 88);
  h = hash(h, encryptedTimestamp);
  return {
    message: msg,
    state: { ck, h, ephemeralPrivate, localIndex, remoteStatic: Buffer.from(remoteStatic), presharedKey: Buffer.from(presharedKey) },
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

/** Decrypts an initiation addressed to `local`; undefined if it does not authenticate. */
export function consumeInitiation(local: StaticKey, msg: Uint8Array): ConsumedInitiation | undefined {
  if (msg.length !== INITIATION_SIZE || msg[0] !== MESSAGE_INITIATION) return undefined;
  const m = Buffer.from(msg.buffer, msg.byteOffset, msg.length);
  let { ck, h } = start(local.public);
  const remoteIndex = m.readUInt32LE(4);
  const remoteEphemeral = Buffer.from(m.subarray(8, 40));
  [ck] = kdf(1, ck, remoteEphemeral) as [Buffer];
  h = hash(h, remoteEphemeral);
  const es = local.dh(remoteEphemeral);
  if (!es) return undefined;
  let key: Buffer;
  [ck, key] = kdf(2, ck, es) as [Buffer, Buffer];
  const encryptedStatic = m.subarray(40, 88);
  const remoteStatic = aeadOpen(key, 0n, encryptedStatic, h);
  if (!remoteStatic) return undefined;
  h = hash(h, encryptedStatic);
  const ss = local.dh(remoteStatic);
  if (!ss) return undefined;
  [ck, key] = kdf(2, ck, ss) as [Buffer, Buffer];
  const encryptedTimestamp = m.subarray(88, 116);
  const timestamp = aeadOpen(key, 0n, encryptedTimestamp, h);
  if (!timestamp) return undefined;
  h = hash(h, encryptedTimestamp);
  return { remoteStatic, remoteIndex, remoteEphemeral, timestamp, ck, h };
}

/** Builds the response to a consumed initiation (92 bytes, MACs not yet written) and the session keys. */
export function createResponse(init: ConsumedInitiation, presharedKey: Uint8Array, localIndex: number):
  { message: Buffer; keys: SessionKeys } | undefined {
  let { ck, h } = init;
  const msg = Buffer.alloc(RESPONSE_SIZE);
  msg[0] = MESSAGE_RESPONSE;
  msg.writeUInt32LE(localIndex, 4);
  msg.writeUInt32LE(init.remoteIndex, 8);
  const ephemeralPrivate = generatePrivateKey();
  const ephemeralPublic = publicKey(ephemeralPrivate);
  ephemeralPublic.copy(msg, 12);
  [ck] = kdf(1, ck, ephemeralPublic) as [Buffer];
  h = hash(h, ephemeralPublic);
  const ee = dh(ephemeralPrivate, init.remoteEphemeral);
  const se = dh(ephemeralPrivate, init.remoteStatic);
  if (!ee || !se) return undefined;
  [ck] = kdf(1, ck, ee) as [Buffer];
  [ck] = kdf(1, ck, se) as [Buffer];
  const [ck2, tau, key] = kdf(3, ck, presharedKey) as [Buffer, Buffer, Buffer];
  ck = ck2;
  h = hash(h, tau);
  const encryptedNothing = aeadSeal(key, 0n, EMPTY, h);
  encryptedNothing.copy(msg, 44);
  h = hash(h, encryptedNothing);
  const [receiveKey, sendKey] = kdf(2, ck, EMPTY) as [Buffer, Buffer];
  return { message: msg, keys: { sendKey, receiveKey, localIndex, remoteIndex: init.remoteIndex, initiator: false } };
}

/** Reads the indices of a response without authenticating it (to find the handshake it answers). */
export function responseReceiverIndex(msg: Uint8Array): number | undefined {
  if (msg.length !== RESPONSE_SIZE || msg[0] !== MESSAGE_RESPONSE) return undefined;
  return new DataView(msg.buffer, msg.byteOffset).getUint32(8, true);
}

/** Completes the initiator's side: session keys, or undefined when the response does not authenticate. */
export function consumeResponse(local: StaticKey, state: InitiatorState, msg: Uint8Array): SessionKeys | undefined {
  if (msg.length !== RESPONSE_SIZE || msg[0] !== MESSAGE_RESPONSE) return undefined;
  const m = Buffer.from(msg.buffer, msg.byteOffset, msg.length);
  if (m.readUInt32LE(8) !== state.localIndex) return undefined;
  let { ck, h } = state;
  const remoteEphemeral = m.subarray(12, 44);
  [ck] = kdf(1, ck, remoteEphemeral) as [Buffer];
  h = hash(h, remoteEphemeral);
  const ee = dh(state.ephemeralPrivate, remoteEphemeral);
  const se = local.dh(remoteEphemeral);
  if (!ee || !se) return undefined;
  [ck] = kdf(1, ck, ee) as [Buffer];
  [ck] = kdf(1, ck, se) as [Buffer];
  const [ck2, tau, key] = kdf(3, ck, state.presharedKey) as [Buffer, Buffer, Buffer];
  ck = ck2;
  h = hash(h, tau);
  if (!aeadOpen(key, 0n, m.subarray(44, 60), h)) return undefined;
  const [sendKey, receiveKey] = kdf(2, ck, EMPTY) as [Buffer, Buffer];
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

