// SOCKS5 (RFC 1928, username/password RFC 1929) and SOCKS4a messages as bytes: what a client
// sends, and readers for what a proxy answers. The readers take whatever has arrived so far and
// say whether a whole message is there (a proxy may send it in pieces), throwing
// PacketParseError when the bytes cannot be one. Host names are checked (hostname.ts) before
// they are written into a request.
import net from 'node:net';
import { PacketParseError } from './errors.js';
import { u16, put16, formatIPv4, formatIPv6, parseIPv4, parseIPv6 } from './bytes.js';
import { isHostName } from './hostname.js';

export const SOCKS5_VERSION = 5;
export const Socks5Method = { NoAuthentication: 0, UsernamePassword: 2, NoneAcceptable: 0xff } as const;
export const Socks5Command = { Connect: 1, Bind: 2, UdpAssociate: 3 } as const;
export const Socks5AddressType = { IPv4: 1, DomainName: 3, IPv6: 4 } as const;
/** REP values of a SOCKS5 reply; 0 is success. */
export const Socks5ReplyCode = {
  Succeeded: 0, GeneralFailure: 1, NotAllowed: 2, NetworkUnreachable: 3, HostUnreachable: 4,
  ConnectionRefused: 5, TtlExpired: 6, CommandNotSupported: 7, AddressTypeNotSupported: 8,
} as const;

/** The proxy's method choice (VER, METHOD) and the RFC 1929 status (VER, STATUS) are two bytes each. */
export const SOCKS5_CHOICE_LENGTH = 2;
export const SOCKS4_REPLY_LENGTH = 8;
const SOCKS4_VERSION = 4;
const SOCKS4_CONNECT = 1;
const SOCKS4_GRANTED = 0x5a;
const RFC1929_VERSION = 1;
const MAX_FIELD = 255;

export interface HostPort { host: string; port: number }

/** VER, NMETHODS, METHODS: the methods the client can do. */
export function encodeSocks5Greeting(methods: readonly number[]): Buffer {
  return Buffer.from([SOCKS5_VERSION, methods.length, ...methods]);
}

/** The method the proxy chose from its two-byte answer; throws when it is not SOCKS5. */
export function decodeSocks5Choice(choice: Uint8Array): number {
  if (choice.length < SOCKS5_CHOICE_LENGTH || choice[0] !== SOCKS5_VERSION) {
    throw new PacketParseError('socks5', `method choice of version ${choice[0]}, not 5`);
  }
  return choice[1]!;
}

/** The RFC 1929 request; each field has a one-byte length, so more than 255 bytes is a RangeError. */
export function encodeSocks5Credentials(username: string, password: string): Buffer {
  const user = Buffer.from(username, 'utf8');
  const pass = Buffer.from(password, 'utf8');
  // One length byte each: a longer value would wrap it and spill into the next field.
  if (user.length > MAX_FIELD || pass.length > MAX_FIELD) throw new RangeError('a SOCKS5 username or password is longer than 255 bytes');
  return Buffer.concat([Buffer.from([RFC1929_VERSION, user.length]), user, Buffer.from([pass.length]), pass]);
}

/** True when the two-byte RFC 1929 status says the credentials were accepted. */
export function socks5CredentialsAccepted(status: Uint8Array): boolean {
  return status.length >= SOCKS5_CHOICE_LENGTH && status[1] === 0;
}

/**
 * ATYP, address and port for `host` (an IP literal or a host name); a TypeError for anything
 * else, so no byte a proxy would misread reaches it.
 */
export function encodeSocks5Address(host: string, port: number): Buffer {
  let addr: Buffer;
  if (net.isIPv4(host)) addr = Buffer.concat([Buffer.from([Socks5AddressType.IPv4]), parseIPv4(host)]);
  else if (net.isIPv6(host)) addr = Buffer.concat([Buffer.from([Socks5AddressType.IPv6]), parseIPv6(host)]);
  else {
    if (!isHostName(host)) throw new TypeError(`${JSON.stringify(host)} is not a host name`);
    // A host name is at most 254 ASCII bytes: its length fits the one byte SOCKS5 gives it.
    const name = Buffer.from(host, 'latin1');
    addr = Buffer.concat([Buffer.from([Socks5AddressType.DomainName, name.length]), name]);
  }
  const p = Buffer.alloc(2);
  put16(p, 0, port);
  return Buffer.concat([addr, p]);
}

/** VER, CMD, RSV, then the destination address. */
export function encodeSocks5Request(command: number, host: string, port: number): Buffer {
  return Buffer.concat([Buffer.from([SOCKS5_VERSION, command, 0]), encodeSocks5Address(host, port)]);
}

/** Bytes of the address (ATYP on) at b[off], or undefined while its length byte is missing; -1 for an unknown type. */
function addressLength(b: Uint8Array, off: number): number | undefined {
  const type = b[off];
  if (type === Socks5AddressType.IPv4) return 1 + 4 + 2;
  if (type === Socks5AddressType.IPv6) return 1 + 16 + 2;
  if (type === Socks5AddressType.DomainName) return off + 1 < b.length ? 2 + b[off + 1]! + 2 : undefined;
  return -1;
}

/** The address at b[off] whose length addressLength gave. */
function readAddress(b: Uint8Array, off: number, length: number): HostPort {
  const type = b[off];
  const host = type === Socks5AddressType.IPv4 ? formatIPv4(b, off + 1)
    : type === Socks5AddressType.IPv6 ? formatIPv6(b, off + 1)
    : Buffer.from(b.buffer, b.byteOffset + off + 2, length - 4).toString('latin1');
  return { host, port: u16(b, off + length - 2) };
}

export interface Socks5Reply {
  /** REP: 0 for success (Socks5ReplyCode). */
  code: number;
  /** BND.ADDR and BND.PORT (empty and 0 in a refusal). */
  bound: HostPort;
  /** Bytes the reply took at the start of the buffer; what follows is the proxied stream. */
  length: number;
}

/**
 * Reads the reply to a request at the start of `buffered`: undefined while bytes are missing.
 * A refusal (REP ≠ 0) is whole after four bytes; its address says nothing, and a proxy may
 * close without sending it. Throws PacketParseError when the bytes cannot be a reply.
 */
export function decodeSocks5Reply(buffered: Uint8Array): Socks5Reply | undefined {
  if (buffered.length < 4) return undefined;
  if (buffered[0] !== SOCKS5_VERSION) throw new PacketParseError('socks5', `reply of version ${buffered[0]}, not 5`);
  const code = buffered[1]!;
  if (code !== Socks5ReplyCode.Succeeded) return { code, bound: { host: '', port: 0 }, length: 4 };
  const n = addressLength(buffered, 3);
  if (n === undefined) return undefined;
  if (n < 0) throw new PacketParseError('socks5', `reply address of unknown type ${buffered[3]}`, 3);
  if (buffered.length < 3 + n) return undefined;
  return { code, bound: readAddress(buffered, 3, n), length: 3 + n };
}

/** RSV, FRAG and the destination before one datagram sent through a UDP relay (RFC 1928 §7). */
export function socks5UdpWrap(dest: HostPort, payload: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from([0, 0, 0]), encodeSocks5Address(dest.host, dest.port), payload]);
}

/** A datagram from a UDP relay: its source and payload; undefined when malformed or a fragment (never throws). */
export function socks5UdpUnwrap(msg: Buffer): { from: HostPort; payload: Buffer } | undefined {
  // Fragments (FRAG ≠ 0) are not reassembled: the RFC lets a client drop them.
  if (msg.length < 4 || msg[2] !== 0) return undefined;
  const n = addressLength(msg, 3);
  if (n === undefined || n < 0 || msg.length < 3 + n) return undefined;
  return { from: readAddress(msg, 3, n), payload: msg.subarray(3 + n) };
}

/**
 * A SOCKS4a CONNECT: an IPv4 destination as is, a host name after the user id (the address
 * 0.0.0.1 says one follows). IPv6 has no place in SOCKS4; a name that is no host name and a user
 * id with a NUL (it ends the field) are refused with a TypeError.
 */
export function encodeSocks4aConnect(dest: HostPort, userId: string): Buffer {
  if (net.isIPv6(dest.host)) throw new TypeError(`SOCKS4a cannot carry the IPv6 destination ${dest.host}`);
  if (userId.includes('\0')) throw new TypeError('a SOCKS4a user id cannot hold a NUL');
  const head = Buffer.alloc(8);
  head[0] = SOCKS4_VERSION;
  head[1] = SOCKS4_CONNECT;
  put16(head, 2, dest.port);
  let name = Buffer.alloc(0);
  if (net.isIPv4(dest.host)) head.set(parseIPv4(dest.host), 4);
  else {
    if (!isHostName(dest.host)) throw new TypeError(`${JSON.stringify(dest.host)} is not a host name`);
    head.set([0, 0, 0, 1], 4);
    name = Buffer.from(`${dest.host}\0`, 'latin1');
  }
  return Buffer.concat([head, Buffer.from(`${userId}\0`, 'utf8'), name]);
}

/** The status byte of an eight-byte SOCKS4 reply; granted when it is 0x5a. */
export function decodeSocks4Reply(reply: Uint8Array): { granted: boolean; status: number } {
  const status = reply[1] ?? 0;
  return { granted: status === SOCKS4_GRANTED, status };
}
