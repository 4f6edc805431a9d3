// A WireGuard interface: a TUN device, UDP sockets (IPv4 and IPv6 on one port) and the engine
// between them, plus the UAPI socket for `wg`. Batches flow through whole: a TUN read batch is
// routed and sealed in one native call and sent with one sendmmsg per peer; a UDP receive batch
// is opened in one native call and written to the TUN in one batched write. With offloads the
// TUN queue runs in split mode: it hands over ordinary packets split from the kernel's TSO
// super-packets and coalesces what is written back into super-packets, so the interface never
// sees a virtio_net_hdr.
import { openTun, type TunDevice, type PacketBatch, type Queue } from '../device/index.js';
import { openUdp, type UdpSocket, type DatagramBatch, type SendOptions } from '../net/udp.js';
import type { ResolvedEndpoint } from '../net/endpoint.js';
import type { NetnsRef } from '../netns.js';
import { WireGuardEngine } from './engine.js';
import type { Packed } from './batch.js';
import type { PeerConfig } from './peer.js';
import type { Timers } from './constants.js';
import { UapiServer, UAPI_DIR, type UapiDevice } from './uapi.js';
import { warmDataPath } from './warmup.js';

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
  /**
   * Offloads (default true): the TUN takes TCP super-packets from the kernel and gives them back
   * (its queue splits and coalesces them: offload 'split'); UDP sends use GSO and receives GRO.
   * Fewer system calls per byte on both sides.
   */
  offload?: boolean;
}

/** What the interface did, for metrics (tuntap_wireguard_interface_events_total) and tests. */
export interface InterfaceCounters {
  tunReadBatches: number;
  tunPacketsRead: number;
  udpReceiveBatches: number;
  /** Super-packets the TUN queue split before encryption. */
  gsoSplits: number;
  /** Packets the TUN handed over that could not be split (counted and dropped by the queue). */
  gsoErrors: number;
  /** Super-packets written to the TUN, and the packets merged into them (beyond each one's first). */
  groSuperPackets: number;
  groMerged: number;
  /** Datagrams not sent for want of a socket of the endpoint's family (send failures: the sockets' stats). */
  sendErrors: number;
  /** Packets the TUN refused or that could not be written. */
  tunWriteErrors: number;
}

export class WireGuardInterface implements UapiDevice {
  readonly name: string;
  readonly engine: WireGuardEngine;
  /** The TUN device (none for the warm-up's interface, whose queue is a packet pair's end). */
  readonly #device: TunDevice | undefined;
  readonly offload: boolean;
  /** The TUN's one queue: reads, writes and their counters. */
  private readonly queue: Queue;
  private udpReceiveBatches = 0;
  private sendErrors = 0;
  /** Options of every UDP send (one object, not one per send). */
  private readonly sendOptions: SendOptions;
  /**
   * Resolves when the interface has closed: by close(), or on its own when its TUN device went
   * away or a UDP socket failed (then `failure` says why).
   */
  readonly closed: Promise<void>;
  private failed: Error | undefined;
  private udp4: UdpSocket | undefined;
  private udp6: UdpSocket | undefined;
  private port = 0;
  private mark = 0;
  private readonly netns: NetnsRef | undefined;
  private uapi: UapiServer | undefined;
  private ticker: NodeJS.Timeout | undefined;
  private closing = false;
  private resolveClosed!: () => void;

  private constructor(opts: InterfaceOptions, name: string, queue: Queue, device: TunDevice | undefined) {
    this.name = name;
    this.#device = device;
    this.queue = queue;
    this.netns = opts.netns;
    this.mark = opts.fwmark ?? 0;
    this.offload = opts.offload ?? true;
    this.sendOptions = this.offload ? { gsoSize: 'auto' } : {};
    const mtu = opts.mtu ?? 1420;
    this.closed = new Promise((resolve) => { this.resolveClosed = resolve; });
    this.engine = new WireGuardEngine({
      send: (to, d) => this.send(to, d),
      deliver: (packets) => this.deliver(packets),
    }, { privateKey: opts.privateKey, timers: opts.timers, mtu });
  }

  /** Creates the TUN device, binds the UDP port, starts the loops and (by default) the UAPI socket. */
  static async open(opts: InterfaceOptions): Promise<WireGuardInterface> {
    const offload = opts.offload ?? true;
    await warmDataPath(opts.netns);
    const tun = openTun({
      name: opts.name, netns: opts.netns, exclusive: true, batchSize: 64,
      // Checksums are not re-verified before merging: every packet written was just authenticated
      // by Poly1305, which protects the bytes far better than the Internet checksum.
      ...(offload ? { offload: 'split', verifyChecksums: false } as const : {}),
    });
    const wg = new WireGuardInterface(opts, tun.name, tun.queues[0]!, tun);
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
    wg.start();
    return wg;
  }

  /**
   * For the warm-up only (warmup.ts), not for programs: an interface whose TUN queue is `queue`
   * (a packet pair's device end, device/packet-pair.ts) and whose one UDP socket is bound to
   * 127.0.0.1 in `netns`; no UAPI socket. Its data path is this class's own code, so what the
   * warm-up runs through it is compiled for the real interfaces too. Closing it closes `queue`.
   */
  static openForWarmup(queue: Queue, opts: { netns?: NetnsRef; privateKey: Uint8Array }): WireGuardInterface {
    const wg = new WireGuardInterface({ name: queue.name, netns: opts.netns, privateKey: opts.privateKey, uapi: false },
      queue.name, queue, undefined);
    try {
      wg.bind(0, '127.0.0.1');
    } catch (e) {
      void wg.close();
      throw e;
    }
    wg.start();
    return wg;
  }

  /** The TUN device. */
  get tun(): TunDevice {
    if (!this.#device) throw new Error(`${this.name} is the warm-up's interface: it has no TUN device`);
    return this.#device;
  }

  // The timer tick and the TUN loop (the UDP loops start with bind()).
  private start(): void {
    const t = this.engine.timers;
    const tickMs = Math.max(20, Math.min(250, t.rekeyTimeout / 10, t.keepaliveTimeout / 10));
    this.ticker = setInterval(() => this.engine.tick(), tickMs);
    this.tunLoop();
  }

  /** Counters of the interface, the TUN queue's among them (read when asked: the data path keeps none twice). */
  get counters(): InterfaceCounters {
    const q = this.queue.counters;
    return {
      tunReadBatches: q.batchesRead, tunPacketsRead: q.packetsRead, udpReceiveBatches: this.udpReceiveBatches,
      gsoSplits: q.superPacketsRead, gsoErrors: q.offloadDrops, groSuperPackets: q.superPacketsWritten, groMerged: q.packetsCoalesced,
      sendErrors: this.sendErrors, tunWriteErrors: q.writesRejected,
    };
  }

  /** Why the interface closed on its own (undefined while it runs, or after close()). */
  get failure(): Error | undefined { return this.failed; }

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

  /**
   * Binds the port on IPv4 and IPv6 (only `loopback`, an IPv4 address, for the warm-up); the old
   * sockets close only once the new ones are open.
   */
  private bind(port: number, loopback?: string): void {
    const common = { netns: this.netns, recvBufferSize: 4 << 20, sendBufferSize: 4 << 20, mark: this.mark || undefined, gro: this.offload };
    const old = [this.udp4, this.udp6];
    // Rebinding to the port we hold would collide with ourselves: release it first then. (A
    // socket is let go of before it is closed, so its loop's end is not taken for a failure.)
    if (port !== 0 && port === this.port) {
      this.udp4 = this.udp6 = undefined;
      for (const s of old) void s?.close();
      old.length = 0;
    }
    const v4 = openUdp({ ...common, bind: { address: loopback ?? '0.0.0.0', port } });
    let v6: UdpSocket | undefined;
    try {
      if (loopback === undefined) v6 = openUdp({ ...common, bind: { address: '::', port: v4.localEndpoint.port }, ipv6Only: true });
    } catch (e) {
      // No IPv6 in this namespace: IPv4 only. A taken port is an error, though.
      if ((e as { code?: string }).code === 'EADDRINUSE') { void v4.close(); throw e; }
    }
    this.udp4 = v4;
    this.udp6 = v6;
    this.port = v4.localEndpoint.port;
    for (const s of old) void s?.close();
    for (const s of [v4, v6]) if (s) this.udpLoop(s);
  }

  private send(to: ResolvedEndpoint, d: Packed): boolean {
    const sock = to.family === 6 ? this.udp6 : this.udp4;
    if (!sock) { this.sendErrors += d.count; return true; }
    return sock.post(d, to, this.sendOptions);
  }

  // Writes what the peer sent to the TUN (in split mode the queue coalesces TCP segments of a
  // flow into super-packets), then reads the TUN at once: the kernel answers local traffic (an
  // echo reply, TCP ACKs) during the write, so the answer is already queued and goes out now
  // rather than after another trip through the event loop (measured: about 0.05 ms less per
  // ping round trip). Returns true when the engine's buffer is free again.
  private deliver(d: Packed): boolean {
    const done = this.queue.post(d);
    this.queue.poke();
    return done;
  }

  // Both loops are callback-driven (readEach/receiveEach): an idle ping's wake-up goes from the
  // native poll callback straight to the engine, with no promise or generator step in between.
  private tunLoop(): void {
    this.queue.readEach((batch) => this.onTunBatch(batch), (err) => {
      // Ends when we close the device, or else because it went away (deleted: reads fail) or failed.
      const gone = `the TUN device ${this.name} went away`;
      this.fail(err instanceof Error ? new Error(`${gone} (${err.message})`, { cause: err }) : undefined, gone);
    });
  }

  /** Closes the interface because a loop ended on its own, recording why (the first reason). */
  private fail(err: unknown, otherwise: string): void {
    if (this.closing) return;
    this.failed = err instanceof Error ? err : new Error(otherwise);
    void this.close();
  }

  private onTunBatch(batch: PacketBatch): void {
    this.engine.sendPackets(batch.buffer, batch.offsets, batch.lengths, batch.count);
  }

  private udpLoop(sock: UdpSocket): void {
    // Ends when we close the socket (rebind or close), or else because a receive failed: the
    // interface could no longer hear its peers, so it closes and says why.
    sock.receiveEach((batch) => this.onUdpBatch(batch), (err) => {
      if (sock !== this.udp4 && sock !== this.udp6) return; // replaced by a rebind
      this.fail(err, `the UDP socket on port ${this.port} closed`);
    });
  }

  private onUdpBatch(batch: DatagramBatch): void {
    this.udpReceiveBatches++;
    this.engine.receive(batch);
  }

  async close(): Promise<void> {
    if (this.closing) return this.closed;
    this.closing = true;
    if (this.ticker) clearInterval(this.ticker);
    await this.uapi?.close();
    this.engine.close();
    await Promise.all([this.udp4?.close(), this.udp6?.close()]);
    await (this.#device ?? this.queue).close();
    this.resolveClosed();
  }

  async [Symbol.asyncDispose](): Promise<void> { await this.close(); }
}
