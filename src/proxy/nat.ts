// Kernel-terminated TCP: a NAT inside the TUN instead of a TCP stack.
//
// An application's segment S:sp → D:dp read from the TUN is rewritten to F:port → L:listen (F a
// fake peer address routed into the TUN, L the TUN's own address, port taken from a free list)
// and written back, so the host kernel hands the connection to our listening socket on
// L:listen. The kernel's answers L:listen → F:port come out of the TUN and are rewritten back to
// D:dp → S:sp. The entry at index `port` remembers (S, sp, D, dp). Each entry precomputes its
// checksum deltas (RFC 1624), so a rewrite is four stores and two checksum adjustments.
//
// A SYN costs an entry before anything proves its source real, so half-open entries (SYN seen,
// the handshake not completed) are bounded three ways: a few seconds to complete the handshake,
// a cap per source address outside this host, and, when the table is full, the oldest half-open
// entry makes room for a new SYN. An entry given up on is reset towards the listener too, so the
// kernel forgets the embryonic connection before its port is handed out again.
import { checksumDelta } from '../packet/checksum.js';
import { IpView } from '../packet/ip.js';
import { IpProtocol } from '../packet/protocols.js';
import { TcpFlags, TcpView } from '../packet/tcp.js';
import { buildBareTcpSegment, buildTcpReset } from '../packet/tcp-reset.js';
import { formatIP, parseIP, parseIPv4 } from '../addr.js';
import { DEFAULT_MAX_SESSIONS } from './limits.js';

const { FIN, SYN, RST, ACK } = TcpFlags;

export interface NatAddresses {
  /** The TUN's own IPv4 address (listening sockets bind here) and the fake peer. */
  local4: string;
  fake4: string;
  local6?: string;
  fake6?: string;
}

export interface NatOptions extends NatAddresses {
  /**
   * Listening ports on the local addresses. Several spread connections over several accept
   * queues: one queue (at most net.core.somaxconn) overflows under a burst of SYNs.
   */
  listenPort4: number | number[];
  listenPort6?: number | number[];
  /** Ports handed out to translated connections (inclusive). */
  portMin?: number;
  portMax?: number;
  /** Cap on concurrent entries; SYNs beyond it are answered with a reset. */
  maxSessions?: number;
  /** How long a closed entry keeps translating stray segments (final ACKs, retransmitted FINs). */
  lingerMs?: number;
  /** How long a SYN may wait for the application to complete the handshake (default 5 s). */
  handshakeTimeoutMs?: number;
  /**
   * How long a completed handshake may wait for our listener to accept it (default 60 s: a
   * burst of connections can fill the listeners' accept queues for a while).
   */
  acceptTimeoutMs?: number;
  /**
   * Half-open entries one source address of another host (a 'gateway' source) may hold; SYNs
   * beyond it are dropped (default 1024). This host's own sources are not capped.
   */
  maxHalfOpenPerSource?: number;
  /** Called when an entry is freed, so no relay outlives its translation. */
  onRelease?: (port: number) => void;
  /** Decides at SYN time whether a destination may be connected at all (false → reset). */
  admit?: (family: 4 | 6, dstHost: string, dstPort: number) => boolean;
  /**
   * Who sent a segment (its source address, a view of 4 or 16 bytes): this host ('local'),
   * another host served in gateway mode ('gateway', capped per source), or neither (false:
   * counted as `foreign` and dropped without an answer). Without it every source is 'local'.
   */
  admitSource?: (family: 4 | 6, address: Uint8Array) => 'local' | 'gateway' | false;
  /** Writes a packet the NAT makes on its own (a reset for the listener) into the TUN. */
  emit?: (packet: Buffer) => void;
}

export interface NatEntry {
  readonly port: number;
  readonly family: 4 | 6;
  /** Original source and destination, as text (for the relay and logs). */
  readonly srcHost: string;
  readonly srcPort: number;
  readonly dstHost: string;
  readonly dstPort: number;
  /** The listener this connection is delivered to. */
  readonly listenPort: number;
  readonly key: string;
  readonly srcAddr: Buffer;
  readonly dstAddr: Buffer;
  /** One's-complement deltas: forward (app → listener) and reverse; address-only deltas (IPv4 header, pseudo-header). */
  readonly fwdDelta: number;
  readonly revDelta: number;
  readonly fwdIpDelta: number;
  readonly revIpDelta: number;
  /**
   * half-open: SYN translated, the application has not acknowledged the listener's SYN-ACK;
   * pending: handshake done, not yet accepted; open: accepted; closing: lingering after close.
   */
  state: 'half-open' | 'pending' | 'open' | 'closing';
  readonly createdAt: number;
  lastSeen: number;
  closedAt: number;
  /** The listener's initial sequence number + 1, once its SYN-ACK went by (0 before). */
  listenerNext: number;
  /** The sequence number the listener expects next from the application, until accepted. */
  appNext: number;
}

export interface NatCounters {
  translated: number;
  replies: number;
  created: number;
  released: number;
  resets: number;
  refusedFull: number;
  rejected: number;
  dropped: number;
  /** Half-open entries freed to make room for a new SYN. */
  evicted: number;
  /** Completed handshakes not accepted within the accept timeout. */
  acceptTimeouts: number;
  /** Half-open entries whose handshake did not complete within the handshake timeout. */
  handshakeTimeouts: number;
  /**
   * Completed handshakes the listener's side closed before they were accepted: libuv, out of
   * descriptors (EMFILE), accepts and closes what waits in the queue without telling Node.
   */
  closedBeforeAccept: number;
  /** SYNs dropped because their source held its share of half-open entries. */
  sourceLimited: number;
  /** Segments from a source that admitSource refused. */
  foreign: number;
}

/** The RFC 1624 delta (as checksumDelta computes it) of replacing ports a0, a1 with b0, b1. */
function portsDelta(a0: number, a1: number, b0: number, b1: number): number {
  return (~a0 & 0xffff) + b0 + (~a1 & 0xffff) + b1;
}

/** A NatEntry whose address texts are made when first asked for (a spoofed SYN never is). */
class Entry implements NatEntry {
  state: NatEntry['state'] = 'half-open';
  lastSeen: number;
  closedAt = 0;
  listenerNext = 0;
  private srcText: string | undefined;
  private dstText: string | undefined;

  constructor(readonly port: number, readonly family: 4 | 6, readonly srcAddr: Buffer, readonly dstAddr: Buffer,
    readonly srcPort: number, readonly dstPort: number, readonly listenPort: number, readonly key: string,
    readonly fwdIpDelta: number, readonly revIpDelta: number, readonly fwdDelta: number, readonly revDelta: number,
    readonly createdAt: number, public appNext: number) {
    this.lastSeen = createdAt;
  }

  get srcHost(): string {
    return (this.srcText ??= formatIP(this.srcAddr));
  }

  get dstHost(): string {
    return (this.dstText ??= formatIP(this.dstAddr));
  }
}

/** Ports of half-open entries, oldest first: a doubly linked list over port numbers. */
class HalfOpenList {
  private readonly prev = new Int32Array(65536).fill(-1);
  private readonly next = new Int32Array(65536).fill(-1);
  private head = -1;
  private tail = -1;

  get oldest(): number {
    return this.head;
  }

  push(port: number): void {
    this.prev[port] = this.tail;
    this.next[port] = -1;
    if (this.tail >= 0) this.next[this.tail] = port; else this.head = port;
    this.tail = port;
  }

  remove(port: number): void {
    const p = this.prev[port]!, n = this.next[port]!;
    if (p >= 0) this.next[p] = n; else this.head = n;
    if (n >= 0) this.prev[n] = p; else this.tail = p;
    this.prev[port] = -1;
    this.next[port] = -1;
  }
}

export class TcpNat {
  readonly counters: NatCounters = {
    translated: 0, replies: 0, created: 0, released: 0, resets: 0, refusedFull: 0, rejected: 0, dropped: 0,
    evicted: 0, acceptTimeouts: 0, handshakeTimeouts: 0, closedBeforeAccept: 0, sourceLimited: 0, foreign: 0,
  };
  private readonly entries: (NatEntry | undefined)[] = new Array(65536);
  private readonly byKey = new Map<string, NatEntry>();
  private readonly free: Uint16Array;
  private freeHead = 0;
  private freeCount: number;
  private readonly local4: Uint8Array;
  private readonly fake4: Uint8Array;
  private readonly local6: Uint8Array | undefined;
  private readonly fake6: Uint8Array | undefined;
  /** The addresses of a translated application segment (fake peer, then local), per family. */
  private readonly translated4: Buffer;
  private readonly translated6: Buffer | undefined;
  private readonly maxSessions: number;
  private readonly lingerMs: number;
  private readonly handshakeTimeoutMs: number;
  private readonly acceptTimeoutMs: number;
  private readonly maxHalfOpenPerSource: number;
  private readonly halfOpen = new HalfOpenList();
  /** Half-open entries per source address (its bytes as a latin1 string). */
  private readonly halfOpenBySource = new Map<string, number>();
  private active = 0;
  /** The packet being translated and its TCP header (views reused for every packet). */
  private readonly ip = new IpView();
  private readonly tcp = new TcpView();

  constructor(private readonly opts: NatOptions) {
    this.local4 = parseIPv4(opts.local4);
    this.fake4 = parseIPv4(opts.fake4);
    this.local6 = opts.local6 ? parseIP(opts.local6) : undefined;
    this.fake6 = opts.fake6 ? parseIP(opts.fake6) : undefined;
    this.translated4 = Buffer.concat([this.fake4, this.local4]);
    this.translated6 = this.local6 && this.fake6 ? Buffer.concat([this.fake6, this.local6]) : undefined;
    const min = opts.portMin ?? 10000;
    const max = opts.portMax ?? 65535;
    this.free = new Uint16Array(max - min + 1);
    // A FIFO free list: a released port waits for every other port before reuse, which keeps it
    // clear of the kernel's TIME_WAIT for the old connection on the listener side.
    for (let p = min; p <= max; p++) this.free[p - min] = p;
    this.freeCount = this.free.length;
    this.maxSessions = Math.min(opts.maxSessions ?? DEFAULT_MAX_SESSIONS, this.free.length);
    this.lingerMs = opts.lingerMs ?? 5000;
    this.handshakeTimeoutMs = opts.handshakeTimeoutMs ?? 5000;
    this.acceptTimeoutMs = opts.acceptTimeoutMs ?? 60_000;
    this.maxHalfOpenPerSource = opts.maxHalfOpenPerSource ?? 1024;
  }

  /** Number of live entries (including closing ones still lingering). */
  get size(): number {
    return this.byKey.size;
  }

  /** Entries not yet closing. */
  get activeSessions(): number {
    return this.active;
  }

  /** The entry behind an accepted socket's remote port. */
  lookup(port: number): NatEntry | undefined {
    return this.entries[port];
  }

  *[Symbol.iterator](): IterableIterator<NatEntry> {
    yield* this.byKey.values();
  }

  /** Half-open entries held by the source address `address` (4 or 16 bytes). */
  halfOpenFrom(address: Uint8Array): number {
    return this.halfOpenBySource.get(Buffer.from(address).toString('latin1')) ?? 0;
  }

  /** The relay is done with this connection: keep translating stragglers for a while, then free. */
  close(port: number, now = Date.now()): void {
    const e = this.entries[port];
    if (!e || e.state === 'closing') return;
    if (e.state === 'half-open') this.leaveHalfOpen(e);
    e.state = 'closing';
    e.closedAt = now;
    this.active--;
  }

  markOpen(port: number): void {
    const e = this.entries[port];
    if (!e || (e.state !== 'pending' && e.state !== 'half-open')) return;
    if (e.state === 'half-open') this.leaveHalfOpen(e);
    e.state = 'open';
  }

  /** Frees lingering and never-accepted entries; returns the ports of entries it gave up on. */
  sweep(now = Date.now()): number[] {
    const abandoned: number[] = [];
    for (const e of this.byKey.values()) {
      if (e.state === 'closing' && now - e.closedAt >= this.lingerMs) this.release(e);
      else if (e.state === 'half-open' && now - e.createdAt >= this.handshakeTimeoutMs) {
        abandoned.push(e.port);
        this.counters.handshakeTimeouts++;
        this.abandon(e);
      } else if (e.state === 'pending' && now - e.createdAt >= this.acceptTimeoutMs) {
        abandoned.push(e.port);
        this.counters.acceptTimeouts++;
        this.abandon(e);
      }
    }
    return abandoned;
  }

  /**
   * Gives up on an entry that was never accepted: resets the listener's side of it (the kernel
   * would otherwise keep it, and meet the next user of the port with it) and frees it at once.
   */
  private abandon(e: NatEntry): void {
    this.opts.emit?.(this.listenerReset(e));
    this.release(e);
  }

  private leaveHalfOpen(e: NatEntry): void {
    this.halfOpen.remove(e.port);
    const key = e.srcAddr.toString('latin1');
    const n = this.halfOpenBySource.get(key)! - 1;
    if (n > 0) this.halfOpenBySource.set(key, n); else this.halfOpenBySource.delete(key);
  }

  private release(e: NatEntry): void {
    if (this.entries[e.port] !== e) return;
    if (e.state === 'half-open') this.leaveHalfOpen(e);
    if (e.state !== 'closing') this.active--;
    this.entries[e.port] = undefined;
    this.byKey.delete(e.key);
    this.free[(this.freeHead + this.freeCount) % this.free.length] = e.port;
    this.freeCount++;
    this.counters.released++;
    this.opts.onRelease?.(e.port);
  }

  private allocate(ip: IpView, tcp: TcpView, key: string, now: number): NatEntry | undefined {
    if (this.active >= this.maxSessions || this.freeCount === 0) {
      // Full: the oldest half-open entry (a SYN whose source never answered) makes room.
      const oldest = this.halfOpen.oldest;
      if (oldest < 0) return undefined;
      this.counters.evicted++;
      this.abandon(this.entries[oldest]!);
    }
    const port = this.free[this.freeHead]!;
    this.freeHead = (this.freeHead + 1) % this.free.length;
    this.freeCount--;
    // Nothing here is allocated that a SYN never answered does not need: a flood makes many.
    const b = ip.buf, n = ip.addressLength, family = ip.version;
    const srcAddr = Buffer.from(b.subarray(ip.srcOffset, ip.srcOffset + n));
    const dstAddr = Buffer.from(b.subarray(ip.dstOffset, ip.dstOffset + n));
    const srcPort = tcp.srcPort;
    const dstPort = tcp.dstPort;
    const ports4 = this.opts.listenPort4, ports6 = this.opts.listenPort6!;
    const choices = family === 4 ? ports4 : ports6;
    const listen = typeof choices === 'number' ? choices : choices[port % choices.length]!;
    // Source and destination sit side by side in both versions' headers.
    const oldAddrs = b.subarray(ip.srcOffset, ip.dstOffset + n);
    const newAddrs = family === 4 ? this.translated4 : this.translated6!;
    const fwdIpDelta = checksumDelta(oldAddrs, newAddrs);
    const revIpDelta = checksumDelta(newAddrs, oldAddrs);
    const entry = new Entry(port, family, srcAddr, dstAddr, srcPort, dstPort, listen, key,
      fwdIpDelta, revIpDelta,
      fwdIpDelta + portsDelta(srcPort, dstPort, port, listen), revIpDelta + portsDelta(port, listen, srcPort, dstPort),
      now, (tcp.seq + 1) >>> 0);
    this.entries[port] = entry;
    this.byKey.set(key, entry);
    this.halfOpen.push(port);
    const sourceKey = srcAddr.toString('latin1');
    this.halfOpenBySource.set(sourceKey, (this.halfOpenBySource.get(sourceKey) ?? 0) + 1);
    this.active++;
    this.counters.created++;
    return entry;
  }

  /**
   * Translates one IP packet read from the TUN, in place: b[start, end), or all of b
   * (`partialChecksum`: its TCP checksum is CHECKSUM_PARTIAL, see adjustPartial). A TSO
   * super-packet is translated as one packet: its headers are those of every segment cut from
   * it. Returns 'forward' when the packet should be written back into the TUN, a Buffer when a
   * reply (a reset) should be written instead, or 'drop'. Non-TCP packets return 'other' untouched.
   */
  translate(b: Buffer, now: number, partialChecksum = false, start = 0, end = b.length): 'forward' | 'drop' | 'other' | Buffer {
    const ip = this.ip, tcp = this.tcp;
    if (!ip.tryWrap(b, start, end)) { this.counters.dropped++; return 'drop'; }
    if (ip.upperProtocol !== IpProtocol.TCP || (ip.version === 6 && !this.local6)) return 'other';
    // Fragments cannot be translated port by port; the kernel never sends us any (DF).
    if (ip.isFragment || !tcp.tryWrap(b, ip.upperOffset, ip.payloadEnd)) { this.counters.dropped++; return 'drop'; }
    const family = ip.version;
    const flags = tcp.flags;
    const fake = family === 4 ? this.fake4 : this.fake6!;
    const local = family === 4 ? this.local4 : this.local6!;

    // The kernel's side of a translated connection: L:listen → F:port.
    if (ip.dstEquals(fake)) {
      const e = this.entries[tcp.dstPort];
      if (!e || e.family !== family || !ip.srcEquals(local)) {
        // A listener-side socket outliving its entry (say, retransmitting a FIN whose ACK was
        // lost): reset it, as the vanished peer would, so it does not linger in the kernel.
        if (flags & RST) { this.counters.dropped++; return 'drop'; }
        return this.reset();
      }
      if (e.state === 'half-open' && (flags & (SYN | ACK)) === (SYN | ACK)) e.listenerNext = (tcp.seq + 1) >>> 0;
      else if (e.state === 'pending' && flags & (RST | FIN)) this.counters.closedBeforeAccept++;
      this.rewrite(e, e.dstAddr, e.srcAddr, e.dstPort, e.srcPort, e.revIpDelta, e.revDelta, partialChecksum, flags, now);
      this.counters.replies++;
      return 'forward';
    }

    // An application's segment.
    // Addresses then ports: one slice unless IPv4 options or IPv6 extension headers sit between
    // them (a joined string would be flattened again when hashed).
    const src = ip.srcOffset, addrEnd = ip.dstOffset + ip.addressLength, l4 = ip.upperOffset;
    const key = l4 === addrEnd ? b.toString('latin1', src, l4 + 4)
      : b.toString('latin1', src, addrEnd) + b.toString('latin1', l4, l4 + 4);
    let e = this.byKey.get(key);
    if (flags & SYN && !(flags & ACK)) {
      if (e && e.state === 'closing') { this.release(e); e = undefined; }
      if (!e) {
        const source = this.opts.admitSource ? this.opts.admitSource(family, b.subarray(src, ip.dstOffset)) : 'local';
        if (!source) {
          this.counters.foreign++;
          return 'drop';
        }
        // Dropped, not reset: a real client retransmits its SYN, a spoofed one costs nothing more.
        if (source === 'gateway' && (this.halfOpenBySource.get(b.toString('latin1', src, ip.dstOffset)) ?? 0) >= this.maxHalfOpenPerSource) {
          this.counters.sourceLimited++;
          return 'drop';
        }
        if (this.opts.admit) {
          const host = formatIP(b.subarray(ip.dstOffset, addrEnd));
          if (!this.opts.admit(family, host, tcp.dstPort)) {
            this.counters.rejected++;
            return this.reset();
          }
        }
        e = this.allocate(ip, tcp, key, now);
        if (!e) {
          this.counters.refusedFull++;
          return this.reset();
        }
      }
    } else if (!e) {
      if (flags & RST) { this.counters.dropped++; return 'drop'; }
      if (this.opts.admitSource && !this.opts.admitSource(family, b.subarray(src, ip.dstOffset))) {
        this.counters.foreign++;
        return 'drop';
      }
      return this.reset();
    }
    if (e.state === 'half-open' || e.state === 'pending') this.beforeAccept(e, flags);
    this.rewrite(e, fake, local, e.port, e.listenPort, e.fwdIpDelta, e.fwdDelta, partialChecksum, flags, now);
    this.counters.translated++;
    return 'forward';
  }

  /**
   * An application segment on an entry not yet accepted: the ACK of the listener's SYN-ACK
   * (acknowledging exactly its ISN + 1, which a spoofed source never saw) completes the
   * handshake, and the sequence number the listener expects next is kept for a reset.
   */
  private beforeAccept(e: NatEntry, flags: number): void {
    const tcp = this.tcp;
    if (e.state === 'half-open' && flags & ACK && e.listenerNext !== 0 && tcp.ack === e.listenerNext) {
      this.leaveHalfOpen(e);
      e.state = 'pending';
    }
    const next = (tcp.seq + tcp.payloadLength + (flags & SYN ? 1 : 0) + (flags & FIN ? 1 : 0)) >>> 0;
    if (((next - e.appNext) | 0) > 0) e.appNext = next;
  }

  /** A RST from the fake peer to the listener, in sequence, for an entry given up on. */
  private listenerReset(e: NatEntry): Buffer {
    const fake = e.family === 4 ? this.fake4 : this.fake6!;
    const local = e.family === 4 ? this.local4 : this.local6!;
    return buildBareTcpSegment(fake, local, { srcPort: e.port, dstPort: e.listenPort, seq: e.appNext, ack: 0, flags: RST });
  }

  /**
   * Writes the translated addresses and ports into the packet in the views, adjusts its
   * checksums and notes the segment on `e`.
   */
  private rewrite(e: NatEntry, src: Uint8Array, dst: Uint8Array, srcPort: number, dstPort: number,
    ipDelta: number, fullDelta: number, partialChecksum: boolean, flags: number, now: number): void {
    const ip = this.ip;
    ip.storeAddresses(src, dst);
    this.tcp.storePorts(srcPort, dstPort);
    ip.adjustHeaderChecksum(ipDelta);
    // A partial checksum holds the pseudo-header sum only: the ports are not in it.
    this.tcp.adjustChecksum(partialChecksum ? ipDelta : fullDelta, partialChecksum);
    e.lastSeen = now;
    if (flags & RST && e.state !== 'closing') this.close(e.port, now);
  }

  /** The reset a closed port would send in answer to the segment in the views. */
  private reset(): Buffer {
    this.counters.resets++;
    return buildTcpReset(this.ip, this.tcp);
  }
}
