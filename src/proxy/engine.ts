// The transparent proxy: packets from the TUN go through the TCP NAT (nat.ts) into local
// listening sockets, whose connections reach the upstream (upstream.ts) and are then relayed
// natively (socket-relay.ts); UDP goes through the UDP relay (udp.ts); DNS queries are answered
// from the fake-IP pool or carried over TCP. Only sources the source policy (sources.ts) admits are served, and failures on every side
// path are counted by errno (failures.ts) rather than allowed to stop the service.
import { EventEmitter } from 'node:events';
import net from 'node:net';
import { closeSync, openSync } from 'node:fs';
import { TcpNat, type NatEntry } from './nat.js';
import { FakeIpPool } from './fake-ip.js';
import { parseQuery, buildAnswer, RCODE_SERVFAIL, TYPE_A, TYPE_AAAA } from '../packet/dns.js';
import { UdpRelay } from './udp.js';
import { parseUdpPacket, buildUdpPacket, type UdpDatagram } from '../packet/udp-packet.js';
import { formatIP } from '../addr.js';
import { isGso, needsCsum, type OffloadMode, type PacketBatch, type VirtioNetHdr } from '../device/index.js';
import { decide, type Rule, type RuleAction } from './rules.js';
import { connectThrough, describeUpstream, formatHostPort, UpstreamError, type Upstream } from './upstream.js';
import { SocketRelay, type RelayEnd } from './socket-relay.js';
import { DEFAULT_MAX_SESSIONS } from './limits.js';
import { Reclaimer } from './reclaim.js';
import { SourcePolicy } from './sources.js';
import { FailureLog, type FailureKind } from './failures.js';
import { printable } from './names.js';

/** The slice of a TUN device the proxy uses (src/device TunDevice satisfies it). */
export interface PacketDevice {
  /**
   * 'raw' (the fastest here): TSO super-packets as the kernel delivered them, each translated
   * once and written back behind the same virtio_net_hdr; 'split': ordinary packets, split on
   * read and coalesced on write by the device; 'none': no vnet header, full checksums.
   */
  readonly offload: OffloadMode;
  batches(opts?: { signal?: AbortSignal }): AsyncIterable<PacketBatch>;
  writeRanges(buffer: Uint8Array, offsets: Uint32Array, lengths: Uint32Array, count: number, opts?: { raw?: boolean }): Promise<number>;
  writeBatch(packets: readonly Uint8Array[]): Promise<unknown>;
}

export interface TunProxyOptions {
  device: PacketDevice;
  upstream: Upstream;
  rules?: Rule[];
  /**
   * The rules may change while it runs (setRules, a reload): the NAT then asks them at every new
   * connection even while there are none. Without rules that may change it does not ask at all.
   */
  rulesMayChange?: boolean;
  /** The TUN's own addresses (listeners bind here) and the fake peers used by the NAT. */
  local4: string;
  fake4: string;
  local6?: string;
  fake6?: string;
  /** Relay UDP through the upstream (SOCKS5 UDP ASSOCIATE) or directly. */
  udp?: boolean;
  /**
   * DNS queries (UDP port 53): 'auto' relays them with the other UDP when that works and
   * otherwise carries them over TCP through the proxy; 'tcp' always over TCP; 'fake-ip' answers
   * A/AAAA from the fake pools (other types over TCP); 'off' treats them as plain UDP.
   */
  dns?: 'auto' | 'tcp' | 'fake-ip' | 'off';
  /** Where DNS-over-TCP queries go (default: the address the application asked). */
  dnsServer?: string;
  fakeIpRanges?: string[];
  /** How long after its last use a fake address may go to another name (default 5 minutes). */
  fakeIpReuseAfterMs?: number;
  /**
   * Gateway mode: CIDRs of other hosts whose forwarded traffic is served too. Without it only
   * packets from this host's own addresses are carried.
   */
  gateway?: string[];
  maxSessions?: number;
  /** How long a SYN may wait for its handshake to complete (default 5 s). */
  handshakeTimeoutMs?: number;
  /** How long a completed handshake may wait to be accepted (default 60 s). */
  acceptTimeoutMs?: number;
  /** Half-open TCP entries per source address in a gateway network (default 1024). */
  maxHalfOpenPerSource?: number;
  /** Listening sockets per family (each has its own accept queue); default 8. */
  listeners?: number;
  idleTimeoutMs?: number;
  connectTimeoutMs?: number;
  /** Local addresses for upstream sockets (keeps them out of the TUN with a source rule). */
  bindAddress4?: string;
  bindAddress6?: string;
  log?: (line: string) => void;
}

export interface ConnectionInfo {
  id: number;
  source: string;
  destination: string;
  via: string;
  state: 'connecting' | 'open';
  startedAt: number;
  bytesUp: number;
  bytesDown: number;
}

export interface ProxyStats {
  sessions: number;
  natEntries: number;
  connectionsTotal: number;
  /** Connections that failed: accept failures plus upstream connect failures. */
  connectionsFailed: number;
  /** Failures by kind and errno name (or reason). */
  failures: Record<FailureKind, Record<string, number>>;
  bytesUp: number;
  bytesDown: number;
  udpSessions: number;
  udpSent: number;
  udpReceived: number;
  /** UDP datagrams dropped because nothing was sent to where they came from. */
  udpUnsolicited: number;
  /**
   * UDP datagrams the relay dropped: over its session limit, past 64 queued while a session
   * opens, refused by the socket, under a malformed SOCKS5 UDP header, or too large to carry.
   */
  udpDropped: number;
  /** Full collections (and malloc trims) asked for after connections came and went. */
  reclaims: number;
  dnsQueries: number;
  dnsOverTcp: number;
  /** Queries carried over TCP that got their answer back to the application. */
  dnsOverTcpAnswered: number;
  dnsFake: number;
  /** Fake-IP queries answered SERVFAIL: every address was in use or recently used. */
  dnsServfail: number;
  packetsIn: number;
  packetsOut: number;
  dropped: number;
  /** Non-TCP packets from sources the proxy does not serve (TCP ones: nat.foreign). */
  foreign: number;
  nat: TcpNat['counters'];
}

interface Session {
  id: number;
  entry: NatEntry;
  /**
   * The relay's pair: from accept on it holds the application's connection (no net.Socket is
   * kept for it), and relays once the upstream is attached; undefined once ended.
   */
  relayId: number | undefined;
  destination: string;
  via: string;
  state: 'connecting' | 'open';
  startedAt: number;
  /** Where it goes: the host (a name in fake-IP mode) and the upstream that reaches it. */
  destHost: string;
  upstream: Upstream;
  /** The destination is a fake address whose name this session keeps from reuse. */
  holdsFakeIp: boolean;
  /** Bytes moved since the last idle sweep (the sweep asks the relay), and when the session last moved any. */
  active: boolean;
  idleSince: number;
}

/**
 * Why libuv dropped connections it could not accept: it does so only when accept() fails with
 * EMFILE or ENFILE, and trying to open a file now tells which (EMFILE if it is over since).
 */
function descriptorShortage(): string {
  try {
    closeSync(openSync('/dev/null', 'r'));
    return 'EMFILE';
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ENFILE' ? 'ENFILE' : 'EMFILE';
  }
}

/** The errno name of a failure, else its UpstreamError reason. */
function failureCode(e: unknown): string {
  if (e instanceof UpstreamError) return e.code ?? e.reason;
  return (e as NodeJS.ErrnoException).code ?? 'error';
}

/**
 * Upstream handshakes run at once; more connections wait (as a native half-pair each) so a burst
 * of thousands does not hold thousands of net.Sockets and handshakes at the same time.
 */
export const MAX_HANDSHAKES = 256;

export class TunProxy extends EventEmitter {
  private readonly nat: TcpNat;
  private readonly servers: net.Server[];
  private readonly sessions = new Map<number, Session>();
  private readonly udp?: UdpRelay;
  private readonly fakeIps?: FakeIpPool;
  private readonly sources: SourcePolicy;
  private readonly failures: FailureLog;
  private readonly relays: SocketRelay;
  /** Relaying sessions by their relay pair. */
  private readonly relayed = new Map<number, Session>();
  private readonly reclaimer: Reclaimer;
  /** Upstream handshakes running, and the sessions waiting for one (at most MAX_HANDSHAKES run). */
  private handshakes = 0;
  private readonly handshakeQueue: Session[] = [];
  private readonly abort = new AbortController();
  private readonly sweepTimer: NodeJS.Timeout;
  private writeChain: Promise<void> = Promise.resolve();
  /** Where the translated packets of a batch lie (grown to the largest batch seen). */
  private outOffsets = new Uint32Array(0);
  private outLengths = new Uint32Array(0);
  private asyncOut: Buffer[] = [];
  private asyncScheduled = false;
  private nextId = 1;
  private closed = false;
  private pump: Promise<void> = Promise.resolve();
  private dnsInFlight = 0;
  /** nat.counters.closedBeforeAccept already counted as failures. */
  private closedBeforeAcceptSeen = 0;
  private bytesUpDone = 0;
  private bytesDownDone = 0;
  /** The routing rules (setRules replaces them: a reload); connections made keep their decision. */
  private rules: readonly Rule[];
  private readonly counters = {
    connectionsTotal: 0, dnsQueries: 0, dnsOverTcp: 0, dnsOverTcpAnswered: 0, dnsFake: 0, dnsServfail: 0,
    packetsIn: 0, packetsOut: 0, dropped: 0, foreign: 0,
  };

  private constructor(private readonly opts: TunProxyOptions, servers: net.Server[], ports: { v4: number[]; v6?: number[] }) {
    super();
    this.servers = servers;
    this.rules = opts.rules ?? [];
    this.failures = new FailureLog({ log: opts.log });
    this.sources = new SourcePolicy({ gateway: opts.gateway });
    if (opts.dns === 'fake-ip') {
      this.fakeIps = new FakeIpPool(opts.fakeIpRanges ?? ['198.19.128.0/17', 'fd00:fa4e::/96'],
        { reuseAfterMs: opts.fakeIpReuseAfterMs });
    }
    const fakeIps = this.fakeIps;
    this.nat = new TcpNat({
      local4: opts.local4, fake4: opts.fake4, local6: opts.local6, fake6: opts.fake6,
      listenPort4: ports.v4, listenPort6: ports.v6, maxSessions: opts.maxSessions,
      handshakeTimeoutMs: opts.handshakeTimeoutMs, acceptTimeoutMs: opts.acceptTimeoutMs,
      maxHalfOpenPerSource: opts.maxHalfOpenPerSource,
      onRelease: (port) => {
        const s = this.sessions.get(port);
        if (s) this.end(s);
      },
      // A SYN to a fake address keeps it from going to another name before it is accepted.
      admit: this.rules.length === 0 && !opts.rulesMayChange && opts.upstream.kind !== 'reject' && !fakeIps ? undefined
        : (_family, host, port) => { fakeIps?.touch(host); return this.actionFor(host, port) !== 'reject'; },
      admitSource: (_family, address) => this.sources.classify(address),
      emit: (p) => this.writeLater(p),
    });
    if (opts.udp) {
      this.udp = new UdpRelay({
        upstream: opts.upstream, write: (p) => this.writeLater(p), log: opts.log, failures: this.failures,
        localAddress4: opts.bindAddress4, localAddress6: opts.bindAddress6,
        nameOf: fakeIps ? (a) => fakeIps.nameOf(a) : undefined,
        hold: fakeIps ? (a) => fakeIps.hold(a) : undefined,
        release: fakeIps ? (a) => fakeIps.release(a) : undefined,
        idleMs: Math.min(opts.idleTimeoutMs ?? 300_000, 60_000),
      });
    }
    this.udp?.probe();
    this.relays = new SocketRelay({
      maxPairs: Math.max(1, opts.maxSessions ?? DEFAULT_MAX_SESSIONS),
      onFinished: (end) => this.relayEnded(end),
      onError: (e) => { if (!this.closed) { this.opts.log?.(`relay: ${(e as Error).message}`); this.emit('error', e); } },
    });
    this.reclaimer = new Reclaimer(undefined, () => this.relays.trim());
    for (const s of servers) {
      s.on('connection', (sock: net.Socket) => this.accept(sock));
      // accept() failing (EMFILE when out of descriptors) is counted; the listener keeps going.
      s.on('error', (e: NodeJS.ErrnoException) => {
        this.failures.note('accept', e.code ?? 'error', `accepting a connection: ${e.message}`);
      });
    }
    this.sweepTimer = setInterval(() => this.sweep(), 1000);
    this.sweepTimer.unref();
  }

  private sweep(): void {
    this.relays.takeActive((id) => { const s = this.relayed.get(id); if (s) s.active = true; });
    this.closeIdle(Date.now());
    const c = this.nat.counters;
    const timeouts = c.acceptTimeouts;
    const entries = this.nat.size;
    this.nat.sweep();
    // Entries that finished lingering are garbage too.
    this.reclaimer.note(entries - this.nat.size);
    this.reclaimer.due(this.sessions.size === 0 && this.nat.size === 0);
    // Half-open entries (never answered, like spoofed SYNs) are not failures of ours; a
    // completed handshake that no accept() picked up is.
    for (let i = timeouts; i < c.acceptTimeouts; i++) {
      this.failures.note('accept', 'ETIMEDOUT', 'a connection completed its handshake but was not accepted in time');
    }
    if (c.closedBeforeAccept > this.closedBeforeAcceptSeen) {
      const code = descriptorShortage();
      for (; this.closedBeforeAcceptSeen < c.closedBeforeAccept; this.closedBeforeAcceptSeen++) {
        this.failures.note('accept', code, `a connection was closed before it could be accepted (accept: ${code})`);
      }
    }
  }

  /** Closes the sessions that moved no byte either way for the idle timeout (to the second). */
  private closeIdle(now: number): void {
    const idle = this.opts.idleTimeoutMs ?? 300_000;
    for (const s of this.sessions.values()) {
      if (s.active) {
        s.active = false;
        s.idleSince = now;
      } else if (now - s.idleSince >= idle) {
        this.opts.log?.(`${s.destination}: idle for ${Math.round(idle / 1000)} s, closing`);
        this.end(s);
      }
    }
  }

  /** Listens on the TUN's addresses and starts moving packets. The TUN must be up and addressed. */
  static async start(opts: TunProxyOptions): Promise<TunProxy> {
    const listen = (host: string): Promise<net.Server> => new Promise((resolve, reject) => {
      const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true });
      server.once('error', reject);
      server.listen({ host, port: 0, backlog: 4096 }, () => { server.off('error', reject); resolve(server); });
    });
    const count = Math.max(1, opts.listeners ?? 8);
    const servers4: net.Server[] = [];
    const servers6: net.Server[] = [];
    try {
      for (let i = 0; i < count; i++) {
        servers4.push(await listen(opts.local4));
        if (opts.local6) servers6.push(await listen(opts.local6));
      }
    } catch (e) {
      for (const s of [...servers4, ...servers6]) s.close();
      throw e;
    }
    const port = (s: net.Server): number => (s.address() as net.AddressInfo).port;
    const proxy = new TunProxy(opts, [...servers4, ...servers6],
      { v4: servers4.map(port), v6: opts.local6 ? servers6.map(port) : undefined });
    proxy.pump = proxy.run();
    return proxy;
  }

  private actionFor(host: string, port: number): RuleAction {
    if (this.opts.upstream.kind === 'reject') return 'reject';
    return decide(this.rules, host, this.fakeIps?.nameOf(host), port);
  }

  /**
   * Replaces the routing rules (a reload): new connections, UDP flows and DNS queries are decided
   * by them; connections already made stay as they are.
   */
  setRules(rules: readonly Rule[]): void {
    if (!this.opts.rulesMayChange) throw new TypeError('setRules: the proxy was started without rulesMayChange');
    this.rules = [...rules];
  }

  private async run(): Promise<void> {
    const device = this.opts.device;
    const raw = device.offload === 'raw';
    const hdr: VirtioNetHdr = { flags: 0, gsoType: 0, hdrLen: 0, gsoSize: 0, csumStart: 0, csumOffset: 0 };
    try {
      for await (const batch of device.batches({ signal: this.abort.signal })) {
        const now = Date.now();
        const { buffer, offsets, lengths, count } = batch;
        // Raw mode writes each translated packet back with the header it came with.
        const head = raw ? batch.headerLength : 0;
        if (this.outOffsets.length < count) {
          this.outOffsets = new Uint32Array(count);
          this.outLengths = new Uint32Array(count);
        }
        const outOffsets = this.outOffsets, outLengths = this.outLengths;
        let n = 0;
        for (let i = 0; i < count; i++) {
          const start = offsets[i]!, end = start + lengths[i]!;
          const h = raw ? batch.vnetInto(i, hdr) : undefined;
          const partial = h !== undefined && needsCsum(h);
          const verdict = this.nat.translate(buffer, now, partial, start, end);
          if (verdict === 'forward') {
            outOffsets[n] = start - head;
            outLengths[n++] = end - start + head;
          } else if (verdict === 'other') {
            // Only TCP offloads are enabled: a UDP super-packet is not the kernel's to send.
            if (h && isGso(h)) this.counters.dropped++;
            else this.other(batch.packet(i));
          } else if (verdict !== 'drop') this.writeLater(verdict);
        }
        this.counters.packetsIn += count;
        this.counters.packetsOut += n;
        // The batch's memory is reused by the next read: write before asking for more.
        if (n > 0) await device.writeRanges(buffer, outOffsets, outLengths, n, { raw }).catch((e: unknown) => this.writeFailed(e));
      }
    } catch (e) {
      if (!this.closed) {
        this.opts.log?.(`tun: ${(e as Error).message}`);
        this.emit('error', e);
      }
    }
  }

  private writeFailed(e: unknown): void {
    if (!this.closed) this.opts.log?.(`tun write: ${(e as Error).message}`);
  }

  private write(packets: Buffer[]): Promise<void> {
    this.counters.packetsOut += packets.length;
    this.writeChain = this.writeChain.then(async () => { await this.opts.device.writeBatch(packets); })
      .catch((e: unknown) => this.writeFailed(e));
    return this.writeChain;
  }

  /** Packets made outside the read loop (UDP answers, DNS) go out in one batch per turn. */
  private writeLater(p: Buffer): void {
    this.asyncOut.push(p);
    if (this.asyncScheduled) return;
    this.asyncScheduled = true;
    setImmediate(() => {
      this.asyncScheduled = false;
      const batch = this.asyncOut;
      this.asyncOut = [];
      if (!this.closed) void this.write(batch);
    });
  }

  /** Non-TCP packets: UDP to the relay or DNS, the rest dropped. */
  private other(p: Buffer): void {
    const d = parseUdpPacket(p);
    if (!d) { this.counters.dropped++; return; }
    if (!this.sources.allows(d.srcAddr)) { this.counters.foreign++; return; }
    const dns = this.opts.dns ?? 'auto';
    if (d.dstPort === 53 && dns !== 'off') {
      this.counters.dnsQueries++;
      if (dns === 'fake-ip' && this.answerFake(d)) return;
      if (dns === 'auto' && this.udp?.proven) { this.udp.handle(d); return; }
      void this.dnsOverTcp(d);
      return;
    }
    if (this.udp && this.actionFor(formatIP(d.dstAddr), d.dstPort) === 'proxy') this.udp.handle(d);
    else this.counters.dropped++;
  }

  /** Answers an A/AAAA query from the fake-IP pool; false when it must be resolved for real. */
  private answerFake(d: UdpDatagram): boolean {
    // parseQuery refuses a name that is not a host name: no fake address, so the name is never
    // handed to the upstream as text (the real resolver, over TCP, answers it or not).
    const q = parseQuery(d.payload);
    if (!q || (q.type !== TYPE_A && q.type !== TYPE_AAAA) || q.klass !== 1) return false;
    const family = q.type === TYPE_A ? 4 : 6;
    const addrs = this.fakeIps!.addressesFor(q.name, family);
    const exhausted = addrs.length === 0 && this.fakeIps!.hasRange(family);
    if (!exhausted) this.counters.dnsFake++;
    else {
      this.counters.dnsServfail++;
      this.failures.note('dns', 'pool-exhausted', `dns: no fake address free for ${printable(q.name)} (each is in use or was used in the last minutes): SERVFAIL`);
    }
    this.writeLater(buildUdpPacket(d.dstAddr, d.dstPort, d.srcAddr, d.srcPort,
      exhausted ? buildAnswer(d.payload, q, [], 0, RCODE_SERVFAIL) : buildAnswer(d.payload, q, addrs)));
    return true;
  }

  private async dnsOverTcp(d: UdpDatagram): Promise<void> {
    if (this.dnsInFlight >= 256) { this.counters.dropped++; return; }
    this.dnsInFlight++;
    this.counters.dnsOverTcp++;
    const server = this.opts.dnsServer ?? formatIP(d.dstAddr);
    let sock: net.Socket | undefined;
    try {
      const up = this.upstreamFor(this.actionFor(server, 53));
      sock = await connectThrough(up, { host: server, port: 53 }, this.connectOptions(up, server));
      const len = Buffer.alloc(2);
      len.writeUInt16BE(d.payload.length);
      // No half-close: some proxies (microsocks) drop the whole connection on the first FIN.
      sock.write(Buffer.concat([len, d.payload]));
      const answer = await new Promise<Buffer>((resolve, reject) => {
        const chunks: Buffer[] = [];
        let total = 0;
        const timer = setTimeout(() => reject(new Error('no answer in 5 s')), 5000);
        sock!.on('data', (c: Buffer) => {
          chunks.push(c); total += c.length;
          if (total >= 2) {
            const all = Buffer.concat(chunks);
            const need = all.readUInt16BE(0) + 2;
            if (all.length >= need) { clearTimeout(timer); resolve(all.subarray(2, need)); }
          }
        });
        sock!.once('error', (e) => { clearTimeout(timer); reject(e); });
        sock!.once('end', () => { clearTimeout(timer); reject(new Error('closed before answering')); });
      });
      this.writeLater(buildUdpPacket(d.dstAddr, d.dstPort, d.srcAddr, d.srcPort, answer));
      this.counters.dnsOverTcpAnswered++;
    } catch (e) {
      this.failures.note('dns', failureCode(e), `dns over tcp to ${server}: ${(e as Error).message}`);
    } finally {
      sock?.destroy();
      this.dnsInFlight--;
    }
  }

  private upstreamFor(action: RuleAction): Upstream {
    if (action === 'direct') return { kind: 'direct', host: '', port: 0 };
    if (action === 'reject') return { kind: 'reject', host: '', port: 0 };
    return this.opts.upstream;
  }

  private connectOptions(up: Upstream, destHost: string): { localAddress?: string; timeoutMs?: number } {
    const target = up.kind === 'direct' ? destHost : up.host;
    const localAddress = net.isIPv6(target) ? this.opts.bindAddress6 : this.opts.bindAddress4;
    return { ...(localAddress ? { localAddress } : {}), timeoutMs: this.opts.connectTimeoutMs ?? 10_000 };
  }

  private accept(client: net.Socket): void {
    const entry = this.nat.lookup(client.remotePort ?? -1);
    const fake = client.remoteFamily === 'IPv6' ? this.opts.fake6 : this.opts.fake4;
    if (!entry || entry.state === 'closing' || entry.state === 'open' || client.remoteAddress !== fake || this.closed) {
      // Not one of ours (something connected to the listener directly).
      client.destroy();
      return;
    }
    this.nat.markOpen(entry.port);
    const name = this.fakeIps?.nameOf(entry.dstHost);
    if (name !== undefined) this.fakeIps!.hold(entry.dstHost);
    const destHost = name ?? entry.dstHost;
    const up = this.upstreamFor(this.actionFor(entry.dstHost, entry.dstPort));
    const session: Session = {
      id: this.nextId++, entry, destination: formatHostPort(destHost, entry.dstPort), destHost, upstream: up,
      via: describeUpstream(up), state: 'connecting', startedAt: Date.now(), holdsFakeIp: name !== undefined,
      relayId: undefined, active: false, idleSince: Date.now(),
    };
    this.sessions.set(entry.port, session);
    this.counters.connectionsTotal++;
    this.reclaimer.note();
    // The relay takes the application's side at once: a connection waiting for its upstream costs
    // a native half-pair, not a net.Socket.
    try {
      session.relayId = this.relays.begin(client);
    } catch (e) {
      this.failures.note('accept', failureCode(e), `${entry.srcHost} → ${session.destination}: ${(e as Error).message}`);
      client.resetAndDestroy();
      this.finish(session);
      return;
    }
    this.relayed.set(session.relayId, session);
    if (this.handshakes < MAX_HANDSHAKES) this.reach(session);
    else this.handshakeQueue.push(session);
  }

  /** Reaches the session's destination through its upstream, then relays. */
  private reach(session: Session): void {
    this.handshakes++;
    const { entry, upstream: up, destHost } = session;
    connectThrough(up, { host: destHost, port: entry.dstPort }, this.connectOptions(up, destHost)).then((upstream) => {
      this.handshakeDone();
      if (session.relayId === undefined) { upstream.destroy(); return; }
      session.state = 'open';
      this.relay(session, upstream);
    }, (e: unknown) => {
      this.handshakeDone();
      this.failures.note('connect', failureCode(e), `${entry.srcHost} → ${session.destination} via ${session.via}: ${(e as Error).message}`);
      this.emit('connect-error', session.destination, e);
      // The application sees a reset, as it would from a refusing host.
      this.end(session, true);
    });
  }

  private handshakeDone(): void {
    this.handshakes--;
    while (this.handshakes < MAX_HANDSHAKES && this.handshakeQueue.length > 0) {
      const next = this.handshakeQueue.shift()!;
      if (next.relayId !== undefined && !this.closed) this.reach(next);
    }
  }

  private relay(session: Session, upstream: net.Socket): void {
    upstream.on('error', () => { /* the relay or end() ends it */ });
    if (!SocketRelay.canTake(upstream)) {
      // Node still has handshake bytes to write: hand over once they are out.
      if (!upstream.destroyed) {
        upstream.once('drain', () => { if (session.relayId !== undefined) this.relay(session, upstream); else upstream.destroy(); });
        return;
      }
      this.end(session, true);
      return;
    }
    // The handshake's bytes: the relay counts only what it moves, the metrics count both.
    this.bytesUpDone += upstream.bytesWritten;
    this.bytesDownDone += upstream.bytesRead - upstream.readableLength;
    try {
      this.relays.complete(session.relayId!, upstream);
    } catch (e) {
      this.failures.note('connect', failureCode(e), `${session.destination}: ${(e as Error).message}`);
      upstream.destroy();
      this.end(session, true);
    }
  }

  private relayEnded(end: RelayEnd): void {
    const session = this.relayed.get(end.id);
    if (!session) return;
    this.relayed.delete(end.id);
    session.relayId = undefined;
    this.bytesUpDone += end.bytesAToB;
    this.bytesDownDone += end.bytesBToA;
    this.reclaimer.note();
    this.finish(session);
  }

  /** Closes a session's connections (idle, released by the NAT, the proxy closing; with `reset`, a failure). */
  private end(session: Session, reset = false): void {
    if (session.relayId !== undefined) {
      const counts = this.relays.drop(session.relayId, reset);
      this.relayed.delete(session.relayId);
      session.relayId = undefined;
      if (counts) { this.bytesUpDone += counts.bytesAToB; this.bytesDownDone += counts.bytesBToA; }
      this.reclaimer.note();
    }
    this.finish(session);
  }

  private finish(session: Session): void {
    if (this.sessions.get(session.entry.port) !== session) return;
    this.sessions.delete(session.entry.port);
    this.nat.close(session.entry.port);
    if (session.holdsFakeIp) this.fakeIps!.release(session.entry.dstHost);
  }

  connections(): ConnectionInfo[] {
    return [...this.sessions.values()].map((s) => {
      const counts = s.relayId === undefined ? undefined : this.relays.bytes(s.relayId);
      return {
        id: s.id, source: formatHostPort(s.entry.srcHost, s.entry.srcPort), destination: s.destination,
        via: s.via, state: s.state, startedAt: s.startedAt,
        bytesUp: counts?.bytesAToB ?? 0, bytesDown: counts?.bytesBToA ?? 0,
      };
    });
  }

  /** TCP sessions by state, counted without copying them (for metrics). */
  sessionStates(): Record<Session['state'], number> {
    const counts = { connecting: 0, open: 0 };
    for (const s of this.sessions.values()) counts[s.state]++;
    return counts;
  }

  stats(): ProxyStats {
    let up = this.bytesUpDone, down = this.bytesDownDone;
    for (const id of this.relayed.keys()) {
      const counts = this.relays.bytes(id);
      if (counts) { up += counts.bytesAToB; down += counts.bytesBToA; }
    }
    return {
      sessions: this.sessions.size, natEntries: this.nat.size, bytesUp: up, bytesDown: down,
      connectionsFailed: this.failures.count('accept', 'connect'), failures: this.failures.snapshot(),
      udpSessions: this.udp?.size ?? 0, udpSent: this.udp?.counters.sent ?? 0, udpReceived: this.udp?.counters.received ?? 0,
      udpUnsolicited: this.udp?.counters.unsolicited ?? 0, udpDropped: this.udp?.counters.dropped ?? 0,
      ...this.counters, nat: { ...this.nat.counters }, reclaims: this.reclaimer.collections,
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.abort.abort();
    clearInterval(this.sweepTimer);
    this.failures.close();
    this.udp?.close();
    for (const s of [...this.sessions.values()]) this.end(s);
    this.relays.close();
    await Promise.all(this.servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
    await this.writeChain;
  }
}
