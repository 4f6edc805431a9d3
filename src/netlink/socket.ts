// A NETLINK_ROUTE socket bound to one network namespace for its lifetime, in synchronous
// request mode: rtnetlink handles a request while it is being sent, so a request waits only for
// replies that are already on their way. Each receive crossing brings back a batch of datagrams.
import { constants } from 'node:os';
import { addon } from '../native.js';
import type { NativePoller } from '../readiness.js';
import { call, TuntapError, errnoName, type Explain } from '../errors.js';
import { inNetns, type NetnsRef } from '../netns.js';
import {
  NETLINK_ROUTE, NLM_F_ACK, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR,
  NLMSG_NOOP, NLMSG_OVERRUN, messageTypeNames,
} from './constants.js';
import { encodeMessage, parseAck, splitMessages, type Attr, type Message } from './codec.js';

export interface NetlinkNative {
  open(protocol: number, groups: number[]): { fd: number; portId: number };
  send(fd: number, bytes: Uint8Array): number;
  recv(fd: number, buffer: Uint8Array, timeoutMs: number): number;
  /** Reads a subscription socket into `buffer`; counts are bytes (native/poller.h's convention). */
  Watcher: new (fd: number, buffer: Uint8Array) => NativePoller;
}
interface CloseNative { closeFd(fd: number): void }

export const nativeNetlink = (addon as { netlink: NetlinkNative }).netlink;
const closeFd = (addon as CloseNative).closeFd;

/** A netlink failure; `kernelMessage` is the kernel's extended-ack text when it sent one. */
export class NetlinkError extends TuntapError {
  readonly kernelMessage: string | undefined;
  constructor(syscall: string, errno: number, message: string, kernelMessage?: string) {
    super(syscall, errno, message);
    this.name = 'NetlinkError';
    this.kernelMessage = kernelMessage;
  }
}

const genericSentence: Record<string, string> = {
  EPERM: 'operation not permitted: it needs CAP_NET_ADMIN (run as root)',
  EEXIST: 'it already exists',
  ENODEV: 'no such device',
  ENOENT: 'no such entry',
  ESRCH: 'no such entry',
  EINVAL: 'the kernel rejected an invalid argument',
  EBUSY: 'the device is busy',
  ENETUNREACH: 'the network is unreachable',
  EADDRNOTAVAIL: 'the address is not available',
  EOPNOTSUPP: 'the kernel does not support this',
  ERANGE: 'a value is out of range',
};

export interface NetlinkOptions {
  /** Open the socket inside this namespace; it stays bound there until closed. */
  netns?: NetnsRef;
  /** Multicast groups to join (RTNLGRP_*), for event subscriptions. */
  groups?: number[];
  /** How long a request waits for the kernel before giving up (default 10 s). */
  timeoutMs?: number;
}

/** Where an operation runs: an open socket, or a namespace to open a short-lived one in. */
export interface Target {
  netlink?: Netlink;
  netns?: NetnsRef;
}

export class Netlink implements Disposable {
  readonly fd: number;
  readonly portId: number;
  /** The namespace the socket was opened in (undefined: the caller's). */
  readonly netns: NetnsRef | undefined;
  /** Messages dropped because their framing was broken. */
  malformed = 0;
  private seq = Math.floor(Math.random() * 0x7fffffff);
  /** Receive buffer, made on the first request (an event subscription brings its own). */
  private buffer: Buffer | undefined;
  private readonly timeoutMs: number;
  private closed = false;

  private constructor(fd: number, portId: number, timeoutMs: number, netns: NetnsRef | undefined) {
    this.fd = fd;
    this.netns = netns;
    this.portId = portId;
    this.timeoutMs = timeoutMs;
  }

  static open(opts: NetlinkOptions = {}): Netlink {
    const { fd, portId } = inNetns(opts.netns as NetnsRef, () =>
      call('opening a netlink socket', () => nativeNetlink.open(NETLINK_ROUTE, opts.groups ?? [])));
    return new Netlink(fd, portId, opts.timeoutMs ?? 10_000, opts.netns);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    closeFd(this.fd);
  }

  [Symbol.dispose](): void {
    this.close();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  private nextSeq(): number {
    this.seq = (this.seq + 1) >>> 0 || 1;
    return this.seq;
  }

  private send(type: number, flags: number, header: Uint8Array, attrs: Attr[] | undefined, what: string): number {
    if (this.closed) throw new TuntapError('sendto', constants.errno.EBADF, `${what}: the netlink socket is closed`);
    const seq = this.nextSeq();
    const bytes = encodeMessage({ type, flags, seq, header, attrs });
    call(what, () => nativeNetlink.send(this.fd, bytes));
    return seq;
  }

  /** Receives batches until `onMessage` returns true for a message of our sequence. */
  private receive(seq: number, what: string, onMessage: (m: Message) => boolean): void {
    const deadline = Date.now() + this.timeoutMs;
    const buffer = this.buffer ??= Buffer.allocUnsafe(1 << 20);
    for (;;) {
      const left = deadline - Date.now();
      const n = left <= 0 ? 0 : call(what, () => nativeNetlink.recv(this.fd, buffer, Math.min(left, 0x7fffffff)));
      if (n === 0) throw new TuntapError('recv', constants.errno.ETIMEDOUT, `${what}: the kernel did not answer within ${this.timeoutMs} ms`);
      const { messages, malformed } = splitMessages(buffer, n);
      this.malformed += malformed;
      for (const m of messages) {
        if (m.seq !== seq || (m.portId !== this.portId && m.portId !== 0)) continue;  // stale reply
        if (onMessage(m)) return;
      }
    }
  }

  private fail(type: number, m: Message, what: string, explain?: Explain): never {
    const ack = parseAck(m);
    const syscall = `netlink(${messageTypeNames[type] ?? type})`;
    const code = errnoName(ack.errno);
    const sentence = ack.message ?? explain?.(code) ?? genericSentence[code] ?? `failed with ${code}`;
    const extra = ack.message && explain?.(code) ? ` — ${explain(code)}` : '';
    throw new NetlinkError(syscall, ack.errno, `${what}: ${sentence}${extra} (${syscall}: ${code})`, ack.message);
  }

  /** Sends a change request and waits for the kernel's ACK; kernel errors become NetlinkError. */
  request(type: number, flags: number, header: Uint8Array, attrs: Attr[], what: string, explain?: Explain): void {
    const seq = this.send(type, flags | NLM_F_REQUEST | NLM_F_ACK, header, attrs, what);
    this.receive(seq, what, (m) => {
      if (m.type !== NLMSG_ERROR) return false;
      if (parseAck(m).errno !== 0) this.fail(type, m, what, explain);
      return true;
    });
  }

  /** Sends a GET for one object and parses the single reply. */
  get<T>(type: number, header: Uint8Array, attrs: Attr[], parse: (m: Message) => T, what: string, explain?: Explain): T {
    const seq = this.send(type, NLM_F_REQUEST, header, attrs, what);
    let result: T | undefined;
    this.receive(seq, what, (m) => {
      if (m.type === NLMSG_ERROR) {
        if (parseAck(m).errno !== 0) this.fail(type, m, what, explain);
        return result !== undefined;
      }
      if (m.type === NLMSG_NOOP || m.type === NLMSG_OVERRUN) return false;
      result = parse(m);
      return true;
    });
    return result as T;
  }

  /**
   * Dumps a table (NLM_F_DUMP): parses every part until NLMSG_DONE. `parse` returns undefined for
   * entries to skip. A dump the kernel marks interrupted (the table changed meanwhile) is retried.
   */
  dump<T>(type: number, header: Uint8Array, attrs: Attr[], parse: (m: Message) => T | undefined, what: string): T[] {
    for (let attempt = 0; ; attempt++) {
      const seq = this.send(type, NLM_F_REQUEST | NLM_F_DUMP, header, attrs, what);
      const out: T[] = [];
      let interrupted = false;
      this.receive(seq, what, (m) => {
        if (m.flags & NLM_F_DUMP_INTR) interrupted = true;
        if (m.type === NLMSG_DONE) {
          if (m.payload.length >= 4 && m.payload.readInt32LE(0) < 0) this.fail(type, m, what);
          return true;
        }
        if (m.type === NLMSG_ERROR) {
          if (parseAck(m).errno !== 0) this.fail(type, m, what);
          return true;
        }
        if (m.type === NLMSG_NOOP || m.type === NLMSG_OVERRUN) return false;
        const v = parse(m);
        if (v !== undefined) out.push(v);
        return false;
      });
      if (!interrupted || attempt >= 4) return out;
    }
  }
}

/** Runs `fn` with the target's socket, or with a short-lived one opened in `target.netns`. */
export function withNetlink<T>(target: Target | undefined, fn: (nl: Netlink) => T): T {
  if (target?.netlink) return fn(target.netlink);
  const nl = Netlink.open({ netns: target?.netns });
  try {
    return fn(nl);
  } finally {
    nl.close();
  }
}
