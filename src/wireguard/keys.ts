// Sessions and their keys: the keypairs handshakes yield (current, previous and next per peer),
// the table of local indices that names them and our handshakes in flight on the wire, and the
// key table the native AEAD reads. A dropped keypair's keys are zeroed at once.
import { randomInt } from 'node:crypto';
import type { InitiatorState, SessionKeys } from './noise.js';
import type { Timers } from './constants.js';
import type { Peer } from './peer.js';
import { ReplayWindow } from './replay.js';

export interface Keypair {
  peer: Peer;
  localIndex: number;
  remoteIndex: number;
  initiator: boolean;
  created: number;
  sendCounter: number;
  replay: ReplayWindow;
  /** Where the key table holds the session's send and receive keys (-1 once dropped). */
  sendSlot: number;
  receiveSlot: number;
}

/** What a local index names: a session of the peer's, or our handshake with it under way. */
export interface IndexEntry { peer: Peer; keypair?: Keypair; handshake?: InitiatorState }

const KEY_SIZE = 32;

/**
 * The session keys as the native AEAD reads them: 32-byte slots in one buffer, written once when
 * a keypair is installed and zeroed when it is dropped, so a batch passes slot numbers instead
 * of copying its keys.
 */
class KeyTable {
  bytes = Buffer.alloc(KEY_SIZE * 16);
  private readonly free: number[] = [];
  private used = 0;

  add(key: Buffer): number {
    let slot = this.free.pop();
    if (slot === undefined) {
      if (this.used * KEY_SIZE >= this.bytes.length) {
        const grown = Buffer.alloc(this.bytes.length * 2);
        this.bytes.copy(grown);
        this.bytes.fill(0);
        this.bytes = grown;
      }
      slot = this.used++;
    }
    key.copy(this.bytes, slot * KEY_SIZE);
    return slot;
  }

  /** True when no session key is held (every slot zero). */
  empty(): boolean {
    return this.bytes.every((b) => b === 0);
  }

  remove(slot: number): void {
    if (slot < 0) return;
    this.bytes.fill(0, slot * KEY_SIZE, slot * KEY_SIZE + KEY_SIZE);
    this.free.push(slot);
  }
}

export class Sessions {
  private readonly table = new KeyTable();
  private readonly indices = new Map<number, IndexEntry>();

  constructor(private readonly timers: Timers) {}

  /** The key slots a batch's keyIndex names (the buffer is replaced when it grows: read it per batch). */
  get keys(): Buffer { return this.table.bytes; }

  /** What the local index of a received message names. */
  entry(index: number): IndexEntry | undefined {
    return this.indices.get(index);
  }

  /** Gives `entry` a random local index no other entry holds. */
  reserve(entry: IndexEntry): number {
    for (;;) {
      const index = randomInt(0, 0x1_0000_0000);
      if (!this.indices.has(index)) {
        this.indices.set(index, entry);
        return index;
      }
    }
  }

  release(index: number): void {
    this.indices.delete(index);
  }

  /**
   * Installs the keys a handshake derived; the table holds the only copy from here on (the
   * keys given are zeroed). The initiator sends on the new session at once; the responder waits
   * for the initiator's first data message (confirm()).
   */
  install(peer: Peer, keys: SessionKeys, now: number): Keypair {
    const kp: Keypair = {
      peer, localIndex: keys.localIndex, remoteIndex: keys.remoteIndex,
      initiator: keys.initiator, created: now, sendCounter: 0, replay: new ReplayWindow(),
      sendSlot: this.table.add(keys.sendKey), receiveSlot: this.table.add(keys.receiveKey),
    };
    keys.sendKey.fill(0);
    keys.receiveKey.fill(0);
    this.indices.set(kp.localIndex, { peer, keypair: kp });
    if (keys.initiator) {
      // The old session stays for packets in flight.
      if (peer.next) { this.drop(peer.next); peer.next = undefined; }
      if (peer.previous) this.drop(peer.previous);
      peer.previous = peer.current;
      peer.current = kp;
    } else {
      if (peer.next) this.drop(peer.next);
      peer.next = kp;
    }
    return kp;
  }

  /** The initiator used the session we answered: it becomes the current one. */
  confirm(peer: Peer): void {
    const next = peer.next!;
    if (peer.previous) this.drop(peer.previous);
    peer.previous = peer.current;
    peer.current = next;
    peer.next = undefined;
  }

  /** Forgets a keypair and zeroes its keys. */
  drop(kp: Keypair): void {
    const e = this.indices.get(kp.localIndex);
    if (e?.keypair === kp) this.indices.delete(kp.localIndex);
    this.table.remove(kp.sendSlot);
    this.table.remove(kp.receiveSlot);
    kp.sendSlot = kp.receiveSlot = -1;
  }

  /** Drops every session of the peer. */
  dropAll(peer: Peer): void {
    for (const kp of [peer.current, peer.previous, peer.next]) if (kp) this.drop(kp);
    peer.current = peer.previous = peer.next = undefined;
  }

  /** The session the peer may be sent on now: not past REJECT_AFTER_TIME or REJECT_AFTER_MESSAGES. */
  sendable(peer: Peer, now: number): Keypair | undefined {
    const kp = peer.current;
    if (!kp) return undefined;
    if (now - kp.created >= this.timers.rejectAfterTime || kp.sendCounter >= this.timers.rejectAfterMessages) return undefined;
    return kp;
  }

  /** Whether a data message with this counter on this session is past its limits. */
  expired(kp: Keypair, counter: number, now: number): boolean {
    return now - kp.created >= this.timers.rejectAfterTime || counter >= this.timers.rejectAfterMessages;
  }

  /** Whether any session key is held (false once every keypair is dropped and zeroed). */
  holdsKeys(): boolean {
    return !this.table.empty();
  }
}
