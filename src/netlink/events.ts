// Link, address and route change notifications as an async iterator. The subscription socket is
// read through the one readiness loop (src/readiness.ts); each wake-up drains every queued
// notification in one crossing.
import { TuntapError, toTuntapError } from '../errors.js';
import type { NetnsRef } from '../netns.js';
import {
  RTM_DELADDR, RTM_DELLINK, RTM_DELROUTE, RTM_NEWADDR, RTM_NEWLINK, RTM_NEWROUTE, RTNLGRP_IPV4_IFADDR,
  RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV6_IFADDR, RTNLGRP_IPV6_ROUTE, RTNLGRP_LINK,
} from './constants.js';
import { splitMessages, type Message } from './codec.js';
import { parseAddress, type Address } from './addresses.js';
import { parseLink, type Link } from './links.js';
import { parseRoute, type Route } from './routes.js';
import { Netlink, nativeNetlink } from './socket.js';
import { Reader } from '../readiness.js';

export type NetlinkEvent =
  | { type: 'newlink' | 'dellink'; link: Link }
  | { type: 'newaddr' | 'deladdr'; address: Address }
  | { type: 'newroute' | 'delroute'; route: Route }
  /** The kernel dropped notifications because the reader fell behind: re-read the state. */
  | { type: 'overrun' };

export type EventGroup = 'link' | 'ipv4-address' | 'ipv6-address' | 'ipv4-route' | 'ipv6-route';

const groupNumbers: Record<EventGroup, number> = {
  link: RTNLGRP_LINK, 'ipv4-address': RTNLGRP_IPV4_IFADDR, 'ipv6-address': RTNLGRP_IPV6_IFADDR,
  'ipv4-route': RTNLGRP_IPV4_ROUTE, 'ipv6-route': RTNLGRP_IPV6_ROUTE,
};

export interface WatchOptions {
  netns?: NetnsRef;
  /** Default: link, ipv4-address, ipv6-address. */
  groups?: EventGroup[];
  signal?: AbortSignal;
  /** Events kept waiting for the consumer before reading stops (default MAX_QUEUED_EVENTS). */
  maxQueued?: number;
}

/**
 * Events waiting for the consumer: past this the socket is not read until the consumer catches
 * up (what one read brought in is kept, so at most one 1 MiB read's worth more is held); the
 * kernel keeps what its receive buffer holds and reports an overrun for the rest.
 */
export const MAX_QUEUED_EVENTS = 65536;

/**
 * Subscribes at once (events from the moment of the call are kept) and yields them in order
 * until `signal` aborts or the loop breaks; both release the socket. While more than `maxQueued`
 * events wait for a slow consumer the socket is not read: the kernel holds what its receive
 * buffer can, and past that drops notifications and reports an 'overrun' event, after which the
 * consumer should re-read the state it follows.
 */
export function watchEvents(opts: WatchOptions = {}): AsyncIterableIterator<NetlinkEvent> & { close(): void; readonly queued: number } {
  const limit = Math.max(1, opts.maxQueued ?? MAX_QUEUED_EVENTS);
  const groups = (opts.groups ?? ['link', 'ipv4-address', 'ipv6-address']).map((g) => groupNumbers[g]);
  const nl = Netlink.open({ netns: opts.netns, groups });
  const queue: NetlinkEvent[] = [];
  let failure: unknown;
  let wake: (() => void) | undefined;
  let done = false;
  let paused = false;
  const buffer = Buffer.allocUnsafe(1 << 20);
  const watcher = new nativeNetlink.Watcher(nl.fd, buffer);
  const reader = new Reader({
    get poller() { return done ? null : watcher; },
    mayHaveMore: () => false,  // each drain takes what fits; readiness reports at once what is left
    readError: (e) => toTuntapError(e, 'watching netlink events'),
  }, 'netlink events are already being read');

  const onBytes = (bytes: number) => {
    const { messages, malformed } = splitMessages(buffer, bytes);
    nl.malformed += malformed;
    for (const m of messages) {
      try {
        const ev = decode(m);
        if (ev) queue.push(ev);
      } catch {
        nl.malformed++;  // a notification too short for its header: drop it
      }
    }
    if (queue.length >= limit) { paused = true; reader.end(); }
    wake?.();
  };
  // The loop ends on close, on a pause, or on a failure; ENOBUFS (the kernel dropped
  // notifications because we fell behind) is reported as an overrun and reading goes on.
  const onEnd = (err: unknown) => {
    if (done || paused) return;
    if (err instanceof TuntapError && err.code === 'ENOBUFS') {
      queue.push({ type: 'overrun' });
      reader.each(onBytes, onEnd);
    } else if (err) {
      failure = err;
    }
    wake?.();
  };
  reader.each(onBytes, onEnd);

  const close = () => {
    if (done) return;
    done = true;
    queue.length = 0;  // after close or abort, iteration ends; pending events are dropped
    watcher.close();
    reader.end();
    nl.close();
    opts.signal?.removeEventListener('abort', close);
    wake?.();
  };
  if (opts.signal?.aborted) close();
  opts.signal?.addEventListener('abort', close, { once: true });

  const iterator = {
    close,
    /** Events read and not yet taken. */
    get queued() { return queue.length; },
    async next(): Promise<IteratorResult<NetlinkEvent>> {
      for (;;) {
        if (queue.length > 0) {
          const value = queue.shift()!;
          if (paused && queue.length <= limit / 2) { paused = false; reader.each(onBytes, onEnd); }
          return { value, done: false };
        }
        if (failure) { const f = failure; failure = undefined; close(); throw f; }
        if (done) return { value: undefined, done: true };
        await new Promise<void>((resolve) => { wake = resolve; });
        wake = undefined;
      }
    },
    async return(): Promise<IteratorResult<NetlinkEvent>> {
      close();
      return { value: undefined, done: true };
    },
    [Symbol.asyncIterator]() { return iterator; },
  };
  return iterator;
}

function decode(m: Message): NetlinkEvent | undefined {
  const type = m.type;
  switch (type) {
    case RTM_NEWLINK: case RTM_DELLINK: {
      const link = parseLink(m);
      return link && { type: type === RTM_NEWLINK ? 'newlink' : 'dellink', link };
    }
    case RTM_NEWADDR: case RTM_DELADDR: {
      const address = parseAddress(m);
      return address && { type: type === RTM_NEWADDR ? 'newaddr' : 'deladdr', address };
    }
    case RTM_NEWROUTE: case RTM_DELROUTE: {
      const route = parseRoute(m);
      return route && { type: type === RTM_NEWROUTE ? 'newroute' : 'delroute', route };
    }
    default:
      return undefined;
  }
}
