// A WireGuard interface: a TUN device, UDP sockets (IPv4 and IPv6 on one port) and the engine
// between them, plus the UAPI socket for `wg`. Batches flow through whole: a TUN read batch is
// routed and sealed in one native call and sent with one sendmmsg per peer; a UDP receive batch
// is opened in one native call and written to the TUN in one batched write.
import { openTun, type TunDevice } from '../device/index.js';
import { openUdp, type UdpSocket } from '../net/udp.js';
import type { ResolvedEndpoint } from '../net/endpoint.js';
import type { NetnsRef } from '../netns.js';
import { WireGuardEngine, type Packed, type PeerConfig } from './engine.js';
import type { Timers } from './constants.js';
import { UapiServer, UAPI_DIR, type UapiDevice } from './uapi.js';

export interface InterfaceOptions {
  /** Interface name (unique per host: the UAPI socket path does not depend on the namespace). */
  name: string;
  privateKey?: Uint8Array;
  /** UDP port (0 or omitted: the kernel picks one). */
  listenPort?: number;
  fwmark?: number;
  /** Inner MTU (default 1420, as WireGuard). */
  mtu?: number;
  /** Create the TUN device and sockets inside this network namespace. */
  netns?: NetnsRef;
  /** Shortened timers (tests). */
  timers?: Partial<Timers>;
  /** Serve /var/run/wireguard/NAME.sock (default true). */
  uapi?: boolean;
  uapiDir?: string;
  peers?: PeerConfig[];
}

export interface InterfaceCounters {
  tunReadBatches: number;
  tunPacketsRead: number;
  udpReceiveBatches: number;
  sendErrors: number;
  tunWriteErrors: number;
}

export class WireGuardInterface implements UapiDevice {
  readonly name: string;
  readonly engine: WireGuardEngine;
  readonly tun: TunDevice;
  readonly counters: InterfaceCounters = { tunReadBatches: 0, tunPacketsRead: 0, udpReceiveBatches: 0, sendErrors: 0, tunWriteErrors: 0 };
  /** Resolves when the interface has closed (by close() or because the TUN device went away). */
  readonly closed: Promise<void>;
  private udp4: UdpSocket | undefined;
  private udp6: UdpSocket | undefined;
  private port = 0;
  private mark = 0;
  private readonly netns: NetnsRef | undefined;
  private uapi: UapiServer | undefined;
  private ticker: NodeJS.Timeout | undefined;
  private closing = false;
  private resolveClosed!: () => void;

  private constructor(opts: InterfaceOptions, tun: TunDevice) {
    this.name = tun.name;
    this.tun = tun;
    this.netns = opts.netns;
    this.mark = opts.fwmark ?? 0;
    this.closed = new Promise((resolve) => { this.resolveClosed = resolve; });
    this.engine = new WireGuardEngine({
      send: (to, d) => this.send(to, d),
      deliver: (packets) => {
        this.tun.writeBatch(packets).catch(() => { this.counters.tunWriteErrors++; });
      },
    }, { privateKey: opts.privateKey, timers: opts.timers, mtu: opts.mtu ?? 1420 });
  }

  /** Creates the TUN device, binds the UDP port, starts the loops and (by default) the UAPI socket. */
  static async open(opts: InterfaceOptions): Promise<WireGuardInterface> {
    const tun = openTun({ name: opts.name, netns: opts.netns, exclusive: true, batchSize: 64 });
    const wg = new WireGuardInterface(opts, tun);
    try {
      wg.bind(opts.listenPort ?? 0);
      for (const p of opts.peers ?? []) wg.engine.setPeer(p);
      if (opts.uapi !== false) {
        wg.uapi = new UapiServer(wg.name, wg, opts.uapiDir ?? UAPI_DIR);
        await wg.uapi.listen();
      }
    } catch (e) {
      await wg.close();
      throw e;
    }
    const t = wg.engine.timers;
    const tickMs = Math.max(20, Math.min(250, t.rekeyTimeout / 10, t.keepaliveTimeout / 10));
    wg.ticker = setInterval(() => wg.engine.tick(), tickMs);
    void wg.tunLoop();
    return wg;
  }

  get listenPort(): number { return this.port; }
  get fwmark(): number { return this.mark; }

  setListenPort(port: number): void {
    if (port === this.port && port !== 0) return;
    this.bind(port);
  }

  setFwmark(mark: number): void {
    this.mark = mark;
    for (const s of [this.udp4, this.udp6]) s?.setMark(mark);
  }

  private bind(port: number): void {
    const old = [this.udp4, this.udp6];
    this.udp4 = this.udp6 = undefined;
    for (const s of old) void s?.close();
    const common = { netns: this.netns, recvBufferSize: 4 << 20, sendBufferSize: 4 << 20, mark: this.mark || undefined };
    const v4 = openUdp({ ...common, bind: { address: '0.0.0.0', port } });
    this.port = v4.localEndpoint.port;
    this.udp4 = v4;
    try {
      this.udp6 = openUdp({ ...common, bind: { address: '::', port: this.port }, ipv6Only: true });
    } catch {
      this.udp6 = undefined; // no IPv6 in this namespace: IPv4 only
    }
    for (const s of [this.udp4, this.udp6]) if (s) void this.udpLoop(s);
  }

  private send(to: ResolvedEndpoint, d: Packed): void {
    const sock = to.family === 6 ? this.udp6 : this.udp4;
    if (!sock) { this.counters.sendErrors += d.count; return; }
    sock.sendPacked(d, to).catch(() => { this.counters.sendErrors += d.count; });
  }

  private async tunLoop(): Promise<void> {
    try {
      for await (const batch of this.tun.batches()) {
        this.counters.tunReadBatches++;
        this.counters.tunPacketsRead += batch.count;
        this.engine.sendPackets(batch.buffer, batch.offsets, batch.lengths, batch.count);
      }
    } catch {
      // the device went away (deleted) or was closed
    }
    if (!this.closing) await this.close();
  }

  private async udpLoop(sock: UdpSocket): Promise<void> {
    try {
      for await (const batch of sock) {
        this.counters.udpReceiveBatches++;
        this.engine.receive(batch);
      }
    } catch {
      // socket closed
    }
  }

  async close(): Promise<void> {
    if (this.closing) return this.closed;
    this.closing = true;
    if (this.ticker) clearInterval(this.ticker);
    await this.uapi?.close();
    this.engine.close();
    await Promise.all([this.udp4?.close(), this.udp6?.close()]);
    await this.tun.close();
    this.resolveClosed();
  }

  async [Symbol.asyncDispose](): Promise<void> { await this.close(); }
}
