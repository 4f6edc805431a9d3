// Protocol constants (wireguard.com/protocol, paper §6). Timers are in milliseconds and can be
// shortened per interface (tests do), never by editing this file.

export interface Timers {
  rekeyAfterMessages: number;
  rejectAfterMessages: number;
  rekeyAfterTime: number;
  rejectAfterTime: number;
  rekeyAttemptTime: number;
  rekeyTimeout: number;
  keepaliveTimeout: number;
  /** Cookie secrets change and received cookies expire after this long. */
  cookieRefreshTime: number;
  /** Handshake messages per second above which the interface counts as under load. */
  underLoadPerSecond: number;
  /** Smallest interval between two initiations accepted from one peer (flood guard). */
  initiationMinInterval: number;
}

// Counters are JS numbers: exact up to 2^53, far beyond what one key can carry before rekeying
// (2^53 packets at 10 Mpps is 28 years), so REJECT_AFTER_MESSAGES is capped there.
export const DEFAULT_TIMERS: Readonly<Timers> = Object.freeze({
  rekeyAfterMessages: 2 ** 60 > Number.MAX_SAFE_INTEGER ? Number.MAX_SAFE_INTEGER - 2 ** 20 : 2 ** 60,
  rejectAfterMessages: Number.MAX_SAFE_INTEGER - 2 ** 13,
  rekeyAfterTime: 120_000,
  rejectAfterTime: 180_000,
  rekeyAttemptTime: 90_000,
  rekeyTimeout: 5_000,
  keepaliveTimeout: 10_000,
  cookieRefreshTime: 120_000,
  underLoadPerSecond: 128,
  initiationMinInterval: 20,
});

export const MESSAGE_INITIATION = 1;
export const MESSAGE_RESPONSE = 2;
export const MESSAGE_COOKIE_REPLY = 3;
export const MESSAGE_DATA = 4;

export const INITIATION_SIZE = 148;
export const RESPONSE_SIZE = 92;
export const COOKIE_REPLY_SIZE = 64;
export const DATA_HEADER_SIZE = 16;
export const TAG_SIZE = 16;

/**
 * Packets staged per peer while it has no session (wireguard-go's bound); the oldest go first.
 * They are dropped when the handshake attempt gives up, endpoint or not.
 */
export const MAX_QUEUED_PACKETS = 128;
