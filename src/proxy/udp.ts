// UDP through the proxy. There is no connection to terminate, so datagrams are taken out of the
// TUN here, sent through a SOCKS5 UDP association (or directly), and answers are built into IP
// packets and written back. One session per application source address and port; within it,
// one peer per remote address and port the application sent to. A datagram is answered only
// from a peer (so nobody else can answer a DNS query in the resolver's name), and through SOCKS5
// only when it came from the relay endpoint the proxy gave (the socket is connected to it).
import dgram from 'node:dgram';
import net from 'node:net';
import { buildUdpPacket, maxUdpPayload, type UdpDatagram } from '../packet/udp-packet.js';
import { formatIP } from '../addr.js';
import { socks5UdpUnwrap, socks5UdpWrap } from '../packet/socks.js';
import { socks5UdpAssociate, UpstreamError, type Upstream, type UdpAssociation } from './upstream.js';
import type { FailureLog } from './failures.js';
import { MAX_UDP_SESSIONS } from './limits.js';

export interface UdpRelayOptions {
  upstream: Upstream;
  /** Writes a built packet into the TUN. */
  write: (packet: Buffer) => void;
  localAddress4?: string;
  localAddress6?: string;
  idleMs?: number;
  maxSessions?: number;
  /** Remote endpoints per session (default 256; the least recently added one makes room). */
  maxPeers?: number;
  /** Host name to send to instead of a fake address (fake-IP mode). */
  nameOf?: (address: string) => string | undefined;
  /** A peer at a fake address began and ended (the fake-IP pool keeps its name meanwhile). */
  hold?: (address: string) => void;
  release?: (address: string) => void;
  log?: (line: string) => void;
  failures?: FailureLog;
}

/** A remote endpoint the application sent to. */
interface UdpPeer {
  /** What datagrams go to: an address as text, or a host name (fake-IP mode). */
  host: string;
  port: number;
  /** The destination as the application addressed it (a fake address stays fake). */
  appAddress: Uint8Array;
  appAddressText: string;
  named: boolean;
  /** For a host name: the address its first answer came from; later answers must match it. */
  pinned?: string;
}

interface UdpSession {
  key: string;
  family: 4 | 6;
  srcAddr: Buffer;
  srcPort: number;
  socket?: dgram.Socket;
  association?: UdpAssociation;
  /** The relay endpoint as the connected socket knows it. */
  relay?: { address: string; port: number };
  ready: boolean;
  queue: UdpDatagram[];
  /** By `host|port`, oldest first. */
  peers: Map<string, UdpPeer>;
  namedPeers: number;
  lastSeen: number;
}

/** An IPv4-mapped IPv6 address (as inet_ntop prints it) as plain IPv4; anything else unchanged. */
function unmapped(host: string): string {
  return host.startsWith('::ffff:') && host.includes('.') ? host.slice(7) : host;
}

export class UdpRelay {
  readonly counters = { sent: 0, received: 0, dropped: 0, failed: 0, sessionsOpened: 0, unsolicited: 0 };
  private readonly sessions = new Map<string, UdpSession>();
  private readonly sweepTimer: NodeJS.Timeout;
  /** After an association failure, when to try UDP through the upstream again. */
  private unavailableUntil = 0;
  private worked = false;

  constructor(private readonly opts: UdpRelayOptions) {
    this.sweepTimer = setInterval(() => this.sweep(), 1000);
    this.sweepTimer.unref();
  }

  get size(): number {
    return this.sessions.size;
  }

  /** False while the upstream recently failed to associate (callers fall back, e.g. DNS over TCP). */
  get available(): boolean {
    return this.opts.upstream.kind === 'direct' || (this.opts.upstream.kind === 'socks5' && Date.now() >= this.unavailableUntil);
  }

  /** True once an association succeeded (and none failed since): UDP through the upstream works. */
  get proven(): boolean {
    return this.opts.upstream.kind === 'direct' || (this.worked && this.available);
  }

  /** Tries one association in the background so `proven` is known before the first query. */
  probe(): void {
    if (this.opts.upstream.kind !== 'socks5') return;
    socks5UdpAssociate(this.opts.upstream, { localAddress: net.isIPv6(this.opts.upstream.host) ? this.opts.localAddress6 : this.opts.localAddress4 })
      .then((a) => { this.worked = true; a.control.destroy(); }, (e: Error) => {
        this.unavailableUntil = Date.now() + 10_000;
        this.opts.log?.(`udp: ${e.message}; UDP is not relayed and DNS goes over TCP`);
      });
  }

  handle(d: UdpDatagram): void {
    const key = `${formatIP(d.srcAddr)}|${d.srcPort}`;
    let s = this.sessions.get(key);
    if (!s) {
      if (this.sessions.size >= (this.opts.maxSessions ?? MAX_UDP_SESSIONS)) { this.counters.dropped++; return; }
      s = {
        key, family: d.family, srcAddr: d.srcAddr, srcPort: d.srcPort, ready: false, queue: [],
        peers: new Map(), namedPeers: 0, lastSeen: Date.now(),
      };
      this.sessions.set(key, s);
      this.counters.sessionsOpened++;
      void this.open(s);
    }
    s.lastSeen = Date.now();
    const peer = this.peerFor(s, d);
    if (!s.ready) {
      if (s.queue.length < 64) s.queue.push(d); else this.counters.dropped++;
      return;
    }
    this.send(s, peer, d);
  }

  private peerFor(s: UdpSession, d: UdpDatagram): UdpPeer {
    const appAddressText = formatIP(d.dstAddr);
    const name = this.opts.nameOf?.(appAddressText);
    const host = name ?? appAddressText;
    const peerKey = `${host}|${d.dstPort}`;
    let peer = s.peers.get(peerKey);
    if (peer) return peer;
    if (s.peers.size >= (this.opts.maxPeers ?? 256)) this.dropPeer(s, s.peers.keys().next().value!);
    peer = { host, port: d.dstPort, appAddress: d.dstAddr, appAddressText, named: name !== undefined };
    s.peers.set(peerKey, peer);
    if (peer.named) { s.namedPeers++; this.opts.hold?.(appAddressText); }
    return peer;
  }

  private dropPeer(s: UdpSession, peerKey: string): void {
    const peer = s.peers.get(peerKey);
    if (!peer) return;
    s.peers.delete(peerKey);
    if (peer.named) { s.namedPeers--; this.opts.release?.(peer.appAddressText); }
  }

  private async open(s: UdpSession): Promise<void> {
    const up = this.opts.upstream;
    try {
      let family: 4 | 6 = s.family;
      if (up.kind === 'socks5') {
        s.association = await socks5UdpAssociate(up, { localAddress: net.isIPv6(up.host) ? this.opts.localAddress6 : this.opts.localAddress4 });
        s.association.control.on('error', () => { /* reported through close */ });
        s.association.control.once('close', () => this.end(s));
        // The control connection carries nothing more; reading keeps its close observable.
        s.association.control.resume();
        family = net.isIPv6(s.association.relay.host) ? 6 : 4;
        this.worked = true;
      } else if (up.kind !== 'direct') {
        throw new UpstreamError(`${up.kind} upstreams cannot relay UDP`, 'protocol');
      }
      if (this.sessions.get(s.key) !== s) { s.association?.control.destroy(); return; }
      const sock = dgram.createSocket({ type: family === 6 ? 'udp6' : 'udp4' });
      s.socket = sock;
      const local = family === 6 ? this.opts.localAddress6 : this.opts.localAddress4;
      await new Promise<void>((resolve, reject) => {
        sock.once('error', reject);
        sock.bind({ port: 0, ...(local ? { address: local } : {}) }, () => { sock.off('error', reject); resolve(); });
      });
      if (s.association) {
        // Connected to the relay: the kernel drops datagrams from any other address or port.
        const relay = s.association.relay;
        await new Promise<void>((resolve, reject) => {
          sock.once('error', reject);
          sock.connect(relay.port, relay.host, () => { sock.off('error', reject); resolve(); });
        });
        const remote = sock.remoteAddress();
        s.relay = { address: remote.address, port: remote.port };
      }
      sock.on('message', (msg, rinfo) => this.receive(s, msg, rinfo));
      sock.on('error', (e: NodeJS.ErrnoException) => {
        this.opts.failures?.note('udp', e.code ?? 'error', `udp session ${s.key}: ${e.message}`);
        this.end(s);
      });
      if (this.sessions.get(s.key) !== s) { this.end(s); return; }
      s.ready = true;
      for (const d of s.queue.splice(0)) this.send(s, this.peerFor(s, d), d);
    } catch (e) {
      this.counters.failed++;
      const code = (e as NodeJS.ErrnoException).code ?? (e instanceof UpstreamError ? e.reason : 'error');
      // A proxy that refuses or lacks UDP is asked again only after a pause.
      if (e instanceof UpstreamError) this.unavailableUntil = Date.now() + 10_000;
      this.opts.failures?.note('udp', code, `udp: ${(e as Error).message}`);
      this.end(s);
    }
  }

  private send(s: UdpSession, peer: UdpPeer, d: UdpDatagram): void {
    try {
      if (s.association) s.socket!.send(socks5UdpWrap({ host: peer.host, port: peer.port }, d.payload));
      else s.socket!.send(d.payload, peer.port, peer.host);
      this.counters.sent++;
    } catch {
      this.counters.dropped++;
    }
  }

  private receive(s: UdpSession, msg: Buffer, rinfo: dgram.RemoteInfo): void {
    let fromPort: number, fromHost: string, payload: Buffer;
    if (s.association) {
      // The connected socket already filters; this holds even if it did not.
      if (rinfo.port !== s.relay?.port || rinfo.address !== s.relay.address) { this.counters.unsolicited++; return; }
      const u = socks5UdpUnwrap(msg);
      if (!u) { this.counters.dropped++; return; }
      fromPort = u.from.port; fromHost = unmapped(u.from.host); payload = u.payload;
    } else {
      fromPort = rinfo.port; fromHost = unmapped(rinfo.address); payload = msg;
    }
    const peer = s.peers.get(`${fromHost}|${fromPort}`) ?? (s.namedPeers > 0 ? this.namedPeerFor(s, fromHost, fromPort) : undefined);
    if (!peer) { this.counters.unsolicited++; return; }
    s.lastSeen = Date.now();
    this.counters.received++;
    // An IPv6 relay can hand over more than one IPv4 packet carries.
    if (payload.length > maxUdpPayload(s.srcAddr.length)) { this.counters.dropped++; return; }
    this.opts.write(buildUdpPacket(peer.appAddress, fromPort, s.srcAddr, s.srcPort, payload));
  }

  /**
   * The peer a datagram from `host` (an address) answers when the application sent to a host
   * name: whoever resolved it (the proxy) knows the address, so the first answer on the port
   * pins it and later ones must come from the same address.
   */
  private namedPeerFor(s: UdpSession, host: string, port: number): UdpPeer | undefined {
    let unpinned: UdpPeer | undefined;
    for (const p of s.peers.values()) {
      if (!p.named || p.port !== port) continue;
      if (p.pinned === host) return p;
      if (p.pinned === undefined) unpinned ??= p;
    }
    if (unpinned) unpinned.pinned = host;
    return unpinned;
  }

  private end(s: UdpSession): void {
    if (this.sessions.get(s.key) === s) this.sessions.delete(s.key);
    s.ready = false;
    for (const k of [...s.peers.keys()]) this.dropPeer(s, k);
    try { s.socket?.close(); } catch { /* already closed */ }
    s.socket = undefined;
    s.association?.control.destroy();
  }

  private sweep(): void {
    const limit = Date.now() - (this.opts.idleMs ?? 60_000);
    for (const s of [...this.sessions.values()]) if (s.lastSeen < limit) this.end(s);
  }

  close(): void {
    clearInterval(this.sweepTimer);
    for (const s of [...this.sessions.values()]) this.end(s);
  }
}
