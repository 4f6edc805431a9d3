// UDP through the proxy. There is no connection to terminate, so datagrams are taken out of the
// TUN here, sent through a SOCKS5 UDP association (or directly), and answers are built into IP
// packets and written back. One session per application source address and port.
import dgram from 'node:dgram';
import net from 'node:net';
import { pseudoHeaderSum, sum16, finish } from '../packet/checksum.js';
import { formatIP, parseIP } from '../addr.js';
import {
  socks5UdpAssociate, socks5UdpUnwrap, socks5UdpWrap, type Upstream, type UdpAssociation,
} from './upstream.js';

const UDP = 17;

export interface UdpDatagram {
  family: 4 | 6;
  srcAddr: Buffer;
  srcPort: number;
  dstAddr: Buffer;
  dstPort: number;
  payload: Buffer;
}

/** Parses an IPv4/IPv6 UDP packet (copying its payload); undefined when not UDP or malformed. */
export function parseUdp(b: Uint8Array): UdpDatagram | undefined {
  const version = b.length > 0 ? b[0]! >> 4 : 0;
  let l4: number, family: 4 | 6, addrOff: number, addrLen: number, end: number;
  if (version === 4) {
    if (b.length < 28 || b[9] !== UDP) return undefined;
    if ((((b[6]! << 8) | b[7]!) & 0x3fff) !== 0) return undefined;
    l4 = (b[0]! & 15) * 4; end = (b[2]! << 8) | b[3]!; family = 4; addrOff = 12; addrLen = 4;
  } else if (version === 6) {
    if (b.length < 48 || b[6] !== UDP) return undefined;
    l4 = 40; end = 40 + ((b[4]! << 8) | b[5]!); family = 6; addrOff = 8; addrLen = 16;
  } else return undefined;
  if (end > b.length || l4 + 8 > end) return undefined;
  const udpLen = (b[l4 + 4]! << 8) | b[l4 + 5]!;
  if (udpLen < 8 || l4 + udpLen > end) return undefined;
  return {
    family,
    srcAddr: Buffer.from(b.subarray(addrOff, addrOff + addrLen)),
    dstAddr: Buffer.from(b.subarray(addrOff + addrLen, addrOff + 2 * addrLen)),
    srcPort: (b[l4]! << 8) | b[l4 + 1]!,
    dstPort: (b[l4 + 2]! << 8) | b[l4 + 3]!,
    payload: Buffer.from(b.subarray(l4 + 8, l4 + udpLen)),
  };
}

/** Builds an IP/UDP packet from src to dst carrying payload, with both checksums. */
export function buildUdp(src: Uint8Array, srcPort: number, dst: Uint8Array, dstPort: number, payload: Uint8Array): Buffer {
  const v4 = src.length === 4;
  const ipLen = v4 ? 20 : 40;
  const udpLen = 8 + payload.length;
  const out = Buffer.alloc(ipLen + udpLen);
  if (v4) {
    out[0] = 0x45;
    out.writeUInt16BE(ipLen + udpLen, 2);
    out.writeUInt16BE(0x4000, 6);
    out[8] = 64;
    out[9] = UDP;
    out.set(src, 12);
    out.set(dst, 16);
    out.writeUInt16BE(finish(sum16(out, 0, 20)), 10);
  } else {
    out[0] = 0x60;
    out.writeUInt16BE(udpLen, 4);
    out[6] = UDP;
    out[7] = 64;
    out.set(src, 8);
    out.set(dst, 24);
  }
  out.writeUInt16BE(srcPort, ipLen);
  out.writeUInt16BE(dstPort, ipLen + 2);
  out.writeUInt16BE(udpLen, ipLen + 4);
  out.set(payload, ipLen + 8);
  const c = finish(sum16(out, ipLen, ipLen + udpLen, pseudoHeaderSum(out, 0, UDP, udpLen)));
  out.writeUInt16BE(c === 0 ? 0xffff : c, ipLen + 6);
  return out;
}

export interface UdpRelayOptions {
  upstream: Upstream;
  /** Writes a built packet into the TUN. */
  write: (packet: Buffer) => void;
  localAddress4?: string;
  localAddress6?: string;
  idleMs?: number;
  maxSessions?: number;
  /** Host name to send to instead of a fake address (fake-IP mode). */
  nameOf?: (address: string) => string | undefined;
  log?: (line: string) => void;
}

interface UdpSession {
  key: string;
  family: 4 | 6;
  srcAddr: Buffer;
  srcPort: number;
  socket?: dgram.Socket;
  association?: UdpAssociation;
  ready: boolean;
  queue: UdpDatagram[];
  /** Original destination address by destination port, to address answers the way they were asked. */
  peers: Map<number, Uint8Array>;
  lastSeen: number;
}

export class UdpRelay {
  readonly counters = { sent: 0, received: 0, dropped: 0, failed: 0, sessionsOpened: 0 };
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
        this.opts.log?.(`udp: ${e.message}; DNS goes over TCP`);
      });
  }

  handle(d: UdpDatagram): void {
    const key = `${formatIP(d.srcAddr)}|${d.srcPort}`;
    let s = this.sessions.get(key);
    if (!s) {
      if (this.sessions.size >= (this.opts.maxSessions ?? 4096)) { this.counters.dropped++; return; }
      s = { key, family: d.family, srcAddr: d.srcAddr, srcPort: d.srcPort, ready: false, queue: [], peers: new Map(), lastSeen: Date.now() };
      this.sessions.set(key, s);
      this.counters.sessionsOpened++;
      void this.open(s);
    }
    s.lastSeen = Date.now();
    s.peers.set(d.dstPort, d.dstAddr);
    if (!s.ready) {
      if (s.queue.length < 64) s.queue.push(d); else this.counters.dropped++;
      return;
    }
    this.send(s, d);
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
        throw new Error(`${up.kind} upstreams cannot relay UDP`);
      }
      if (!this.sessions.has(s.key)) { s.association?.control.destroy(); return; }
      const sock = dgram.createSocket({ type: family === 6 ? 'udp6' : 'udp4' });
      s.socket = sock;
      sock.on('message', (msg, rinfo) => this.receive(s, msg, rinfo));
      sock.on('error', (e) => { this.opts.log?.(`udp session ${s.key}: ${e.message}`); this.end(s); });
      const local = family === 6 ? this.opts.localAddress6 : this.opts.localAddress4;
      await new Promise<void>((resolve) => sock.bind({ port: 0, ...(local ? { address: local } : {}) }, resolve));
      s.ready = true;
      for (const d of s.queue.splice(0)) this.send(s, d);
    } catch (e) {
      this.counters.failed++;
      this.unavailableUntil = Date.now() + 10_000;
      this.opts.log?.(`udp: ${(e as Error).message}`);
      this.end(s);
    }
  }

  private send(s: UdpSession, d: UdpDatagram): void {
    const dstText = formatIP(d.dstAddr);
    const host = this.opts.nameOf?.(dstText) ?? dstText;
    try {
      if (s.association) {
        const msg = socks5UdpWrap({ host, port: d.dstPort }, d.payload);
        s.socket!.send(msg, s.association.relay.port, s.association.relay.host);
      } else {
        s.socket!.send(d.payload, d.dstPort, host);
      }
      this.counters.sent++;
    } catch {
      this.counters.dropped++;
    }
  }

  private receive(s: UdpSession, msg: Buffer, rinfo: dgram.RemoteInfo): void {
    let fromPort: number, fromHost: string, payload: Buffer;
    if (s.association) {
      const u = socks5UdpUnwrap(msg);
      if (!u) { this.counters.dropped++; return; }
      fromPort = u.from.port; fromHost = u.from.host; payload = u.payload;
    } else {
      fromPort = rinfo.port; fromHost = rinfo.address; payload = msg;
    }
    // Answer from the address the application sent to (a fake address stays fake).
    let from = s.peers.get(fromPort);
    if (!from) {
      if (!net.isIP(fromHost)) { this.counters.dropped++; return; }
      from = parseIP(fromHost);
    }
    if (from.length !== s.srcAddr.length) { this.counters.dropped++; return; }
    s.lastSeen = Date.now();
    this.counters.received++;
    this.opts.write(buildUdp(from, fromPort, s.srcAddr, s.srcPort, payload));
  }

  private end(s: UdpSession): void {
    if (this.sessions.get(s.key) !== s) return;
    this.sessions.delete(s.key);
    s.ready = false;
    try { s.socket?.close(); } catch { /* already closed */ }
    s.association?.control.destroy();
  }

  private sweep(): void {
    const limit = Date.now() - (this.opts.idleMs ?? 60_000);
    for (const s of this.sessions.values()) if (s.lastSeen < limit) this.end(s);
  }

  close(): void {
    clearInterval(this.sweepTimer);
    for (const s of [...this.sessions.values()]) this.end(s);
  }
}
