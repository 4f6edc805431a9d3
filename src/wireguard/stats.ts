// What an engine counts: every packet it drops, by reason, and the messages it sent and received.
// `tuntap wg show` and the UAPI's stats=1 print them; tests and the fuzzer check them.

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

export function newEngineStats(): EngineStats {
  return {
    dropped: {
      malformed: 0, badMac1: 0, cookieRequired: 0, handshakeFailed: 0, rateLimited: 0, sourceRateLimited: 0, unknownIndex: 0, replay: 0,
      authFailed: 0, expired: 0, notAllowed: 0, noRoute: 0, noEndpoint: 0, queueFull: 0,
    },
    handshakeInitiationsSent: 0, handshakeInitiationsReceived: 0, handshakeResponsesSent: 0,
    handshakeResponsesReceived: 0, cookieRepliesSent: 0, cookieRepliesReceived: 0, keepalivesSent: 0,
    keepalivesReceived: 0, dataPacketsSent: 0, dataPacketsReceived: 0,
  };
}
