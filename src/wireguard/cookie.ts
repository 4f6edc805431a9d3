// MAC1/MAC2 and cookies (wireguard.com/protocol "Cookie MACs"): the responder side checks MACs
// and, when under load, answers initiations lacking a valid MAC2 with an encrypted cookie; the
// initiator side remembers the cookie and uses it for MAC2 on its next handshake messages.
import { randomBytes } from 'node:crypto';
import { mac, equalBytes, xaeadSeal, xaeadOpen } from './crypto.js';
import { mac1Key, cookieKey } from './noise.js';
import { MESSAGE_COOKIE_REPLY, COOKIE_REPLY_SIZE } from './constants.js';

/** Checks MACs of messages sent to us and makes cookie replies. */
export class CookieChecker {
  private readonly mac1: Buffer;
  private readonly cookieEncryptionKey: Buffer;
  private secret = randomBytes(32);
  private secretBorn = 0;

  constructor(localPublic: Uint8Array, private readonly refreshMs: number, private readonly now: () => number) {
    this.mac1 = mac1Key(localPublic);
    this.cookieEncryptionKey = cookieKey(localPublic);
    this.secretBorn = now();
  }

  /** MAC1 over everything before it is correct. */
  checkMac1(msg: Uint8Array): boolean {
    const off = msg.length - 32;
    return equalBytes(mac(this.mac1, msg.subarray(0, off)), msg.subarray(off, off + 16));
  }

  /** The cookie this source address earns: MAC(secret, source), the secret changing every 2 min. */
  private cookieFor(source: Uint8Array): Buffer {
    if (this.now() - this.secretBorn > this.refreshMs) {
      this.secret.fill(0);
      this.secret = randomBytes(32);
      this.secretBorn = this.now();
    }
    return mac(this.secret, source);
  }

  /** MAC2 is the MAC under the cookie this source would have received. */
  checkMac2(msg: Uint8Array, source: Uint8Array): boolean {
    const off = msg.length - 16;
    return equalBytes(mac(this.cookieFor(source), msg.subarray(0, off)), msg.subarray(off));
  }

  /** A cookie reply (64 bytes) to handshake message `msg` from `source` (address bytes + port). */
  makeReply(msg: Uint8Array, source: Uint8Array): Buffer {
    const reply = Buffer.alloc(COOKIE_REPLY_SIZE);
    reply[0] = MESSAGE_COOKIE_REPLY;
    Buffer.from(msg.buffer, msg.byteOffset, msg.length).copy(reply, 4, 4, 8); // receiver = the sender's index
    const nonce = randomBytes(24);
    nonce.copy(reply, 8);
    const mac1 = msg.subarray(msg.length - 32, msg.length - 16);
    xaeadSeal(this.cookieEncryptionKey, nonce, this.cookieFor(source), mac1).copy(reply, 32);
    return reply;
  }
}

/** Per peer: the MAC1 key towards the peer, the last MAC1 we sent and a cookie the peer gave us. */
export class CookieGenerator {
  readonly mac1Key: Buffer;
  private readonly decryptKey: Buffer;
  private lastMac1: Buffer | undefined;
  private cookie: Buffer | undefined;
  private cookieBorn = 0;

  constructor(remotePublic: Uint8Array, private readonly refreshMs: number, private readonly now: () => number) {
    this.mac1Key = mac1Key(remotePublic);
    this.decryptKey = cookieKey(remotePublic);
  }

  /** Writes MAC1 and (with a fresh cookie) MAC2 into a handshake message we are about to send. */
  stamp(msg: Buffer): void {
    const off = msg.length - 32;
    mac(this.mac1Key, msg.subarray(0, off)).copy(msg, off);
    this.lastMac1 = Buffer.from(msg.subarray(off, off + 16));
    const cookie = this.cookie && this.now() - this.cookieBorn < this.refreshMs ? this.cookie : undefined;
    if (cookie) mac(cookie, msg.subarray(0, off + 16)).copy(msg, off + 16);
    else msg.fill(0, off + 16);
  }

  /** Takes a cookie reply; true when it decrypted against the last MAC1 we sent. */
  consumeReply(reply: Uint8Array): boolean {
    if (reply.length !== COOKIE_REPLY_SIZE || !this.lastMac1) return false;
    const cookie = xaeadOpen(this.decryptKey, reply.subarray(8, 32), reply.subarray(32), this.lastMac1);
    if (!cookie) return false;
    this.cookie = cookie;
    this.cookieBorn = this.now();
    return true;
  }
}
