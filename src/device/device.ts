// TUN/TAP devices: open or attach (TUNSETIFF), every control ioctl, and single-queue I/O
// conveniences that delegate to queues[0].
import { readFileSync } from 'node:fs';
import { constants } from 'node:os';
import { call, toTuntapError, TuntapError } from '../errors.js';
import { formatMac, parseMac as parseMacText } from '../addr.js';
import { inNetns, type NetnsRef } from '../netns.js';
import { encodeBpf, decodeBpf, type BpfInstruction } from './bpf.js';
import { IFF, TUN_F, TUN_FLT_ALLMULTI } from './constants.js';
import { explainControl, explainOpen } from './explain.js';
import { native } from './native.js';
import { Queue, type OffloadMode, type PacketBatch, type WriteBatchOptions, type WriteOptions } from './queue.js';
import type { Batch } from '../base/batch.js';
import { parseNetDev, type InterfaceStats } from './stats.js';

export interface OffloadOptions {
  csum?: boolean; tso4?: boolean; tso6?: boolean; tsoEcn?: boolean; ufo?: boolean; uso4?: boolean; uso6?: boolean;
}

export interface DeviceOptions {
  /** Interface name, or a pattern such as 'vpn%d'; default 'tun%d' / 'tap%d'. */
  name?: string;
  /** Keep the 4-byte packet information header (default false: IFF_NO_PI). */
  packetInfo?: boolean;
  /** IFF_VNET_HDR: a virtio_net_hdr before every packet. */
  vnetHdr?: boolean;
  /** TUNSETVNETHDRSZ (default 10; 12 for the num_buffers layout). Implies vnetHdr. */
  vnetHdrSize?: number;
  /** TUNSETVNETLE: little-endian vnet header fields regardless of the host. */
  vnetLittleEndian?: boolean;
  /**
   * Offloads: the kernel hands over TCP (and, where it knows USO, UDP) super-packets of up to
   * 64 KiB and takes them back, one packet per ~45 on the wire. Implies a vnet header.
   *  - 'split': each queue splits what it reads into ordinary MTU-sized packets with complete
   *    checksums and coalesces what it is given to write into super-packets: the program sees
   *    ordinary packets, batch in and batch out, and never a virtio_net_hdr (not with packetInfo).
   *  - 'raw': the same offloads, packets as the kernel delivered them: batch.vnet(i) decodes
   *    each one's header, and writes carry one (write's `vnet` option, or raw ranges).
   *  - an OffloadOptions object: TUNSETOFFLOAD with exactly these bits, raw (needs vnetHdr).
   */
  offload?: 'split' | 'raw' | OffloadOptions;
  /**
   * offload 'split': verify each written packet's transport checksum before merging it into a
   * super-packet (default true). The kernel completes a super-packet's checksum itself, so a
   * corrupted packet merged unverified would arrive as good: turn this off only when the packets'
   * integrity was checked on their way here (an outer UDP checksum, an AEAD tag).
   */
  verifyChecksums?: boolean;
  /** Number of queue fds; more than 1 implies IFF_MULTI_QUEUE. */
  queues?: number;
  /** IFF_MULTI_QUEUE even with one queue (to add queues later). */
  multiQueue?: boolean;
  /** IFF_TUN_EXCL: fail with EBUSY when the name already exists. */
  exclusive?: boolean;
  /** TUNSETPERSIST: the device outlives the fds. */
  persist?: boolean;
  /** TUNSETOWNER / TUNSETGROUP: who may attach without CAP_NET_ADMIN. */
  owner?: number;
  group?: number;
  /** TUNSETIFINDEX: the interface index to create the device with. */
  ifindex?: number;
  /** Create (or find) the device inside this network namespace. */
  netns?: NetnsRef;
  /** Max packets per read batch (default 64). */
  batchSize?: number;
  /** Read buffer per packet (default 64 KiB + headers: nothing is ever cut). */
  readSize?: number;
}

export interface TxFilterOptions {
  /** Destination MACs to accept (the first 8 exactly, further multicast ones by hash). */
  addresses: readonly (string | Uint8Array)[];
  /** Accept every multicast frame. */
  allMulticast?: boolean;
}

/** A MAC as 6 bytes: text is parsed (see src/addr.ts), bytes are checked for length. */
export function parseMac(mac: string | Uint8Array): Uint8Array {
  if (typeof mac === 'string') return parseMacText(mac);
  if (mac.length !== 6) throw new RangeError('a MAC address has 6 bytes');
  return mac;
}

export { formatMac };

function offloadBits(o: OffloadOptions): number {
  return (o.csum ? TUN_F.CSUM : 0) | (o.tso4 ? TUN_F.TSO4 : 0) | (o.tso6 ? TUN_F.TSO6 : 0)
    | (o.tsoEcn ? TUN_F.TSO_ECN : 0) | (o.ufo ? TUN_F.UFO : 0) | (o.uso4 ? TUN_F.USO4 : 0) | (o.uso6 ? TUN_F.USO6 : 0);
}

const TCP_OFFLOADS = TUN_F.CSUM | TUN_F.TSO4 | TUN_F.TSO6 | TUN_F.TSO_ECN;
const UDP_OFFLOADS = TUN_F.USO4 | TUN_F.USO6;

/**
 * The offloads of 'split' and 'raw': checksums and TSO, plus USO where the kernel knows it
 * (6.2 and later; older ones refuse the bits with EINVAL). Returns whether USO was taken.
 */
function enableOffloads(fd: number, name: string): boolean {
  try {
    native.tunIoctlValue(fd, 'TUNSETOFFLOAD', TCP_OFFLOADS | UDP_OFFLOADS);
    return true;
  } catch (e) {
    if ((e as { errno?: number }).errno !== constants.errno.EINVAL) {
      throw toTuntapError(e, `setting offloads of ${name}`, explainControl(name, 'TUNSETOFFLOAD'));
    }
  }
  call(`setting offloads of ${name}`, () => native.tunIoctlValue(fd, 'TUNSETOFFLOAD', TCP_OFFLOADS), explainControl(name, 'TUNSETOFFLOAD'));
  return false;
}

const IFF_UP = 0x1;

export class TunDevice implements AsyncIterable<Buffer>, AsyncDisposable {
  readonly name: string;
  readonly mode: 'tun' | 'tap';
  readonly queues: Queue[] = [];
  /** The TUNSETIFF flags this device was opened with. */
  readonly flags: number;

  #netns: number;
  #sock = -1;
  #filter: Buffer | null = null;
  #closed = false;
  #options: DeviceOptions;
  /** The kernel took USO: split mode coalesces UDP too. */
  #uso = false;

  private constructor(name: string, mode: 'tun' | 'tap', flags: number, netnsFd: number, options: DeviceOptions) {
    this.name = name;
    this.mode = mode;
    this.flags = flags;
    this.#netns = netnsFd;
    this.#options = options;
  }

  /** Opens (creates, or attaches to) a device; synchronous. */
  static open(mode: 'tun' | 'tap', opts: DeviceOptions = {}): TunDevice {
    return inNetns(opts.netns as NetnsRef, () => TunDevice.#openHere(mode, opts));
  }

  static #openHere(mode: 'tun' | 'tap', opts: DeviceOptions): TunDevice {
    const count = Math.max(1, opts.queues ?? 1);
    const multiQueue = opts.multiQueue === true || count > 1;
    const offloadMode = typeof opts.offload === 'string' ? opts.offload : undefined;
    if (offloadMode !== undefined && offloadMode !== 'split' && offloadMode !== 'raw') {
      throw new TypeError(`offload must be 'split', 'raw' or an object of offload flags, not ${JSON.stringify(opts.offload)}`);
    }
    if (offloadMode === 'split' && opts.packetInfo) throw new TypeError("offload 'split' cannot be combined with packetInfo");
    const vnetHdrSize = offloadMode || opts.vnetHdr || opts.vnetHdrSize ? (opts.vnetHdrSize ?? 10) : 0;
    const flags = (mode === 'tun' ? IFF.TUN : IFF.TAP) | (opts.packetInfo ? 0 : IFF.NO_PI)
      | (vnetHdrSize ? IFF.VNET_HDR : 0) | (multiQueue ? IFF.MULTI_QUEUE : 0) | (opts.exclusive ? IFF.TUN_EXCL : 0);
    const requested = opts.name ?? `${mode}%d`;
    const explain = explainOpen(requested.includes('%') ? '' : requested, { exclusive: !!opts.exclusive, multiQueue, mode });
    const first = call(`opening ${requested}`, () => native.tunOpen(requested, flags, opts.ifindex ?? 0), explain);
    const fds = [first.fd];
    let nsFd = -1;
    try {
      for (let i = 1; i < count; i++) {
        fds.push(call(`opening queue ${i} of ${first.name}`,
          () => native.tunOpen(first.name, flags & ~IFF.TUN_EXCL, 0).fd, explainOpen(first.name, { exclusive: false, multiQueue, mode })));
      }
      nsFd = native.openPath('/proc/thread-self/ns/net');
    } catch (e) {
      for (const fd of fds) native.closeFd(fd);
      throw e;
    }
    const dev = new TunDevice(first.name, mode, flags, nsFd, opts);
    try {
      if (offloadMode) dev.#uso = enableOffloads(first.fd, first.name);
      for (const [index, fd] of fds.entries()) dev.queues.push(dev.#makeQueue(fd, index, vnetHdrSize));
      if (vnetHdrSize && vnetHdrSize !== 10) dev.setVnetHdrSize(vnetHdrSize);
      if (opts.vnetLittleEndian !== undefined) dev.setVnetLittleEndian(opts.vnetLittleEndian);
      if (opts.offload && !offloadMode) dev.setOffload(opts.offload as OffloadOptions);
      if (opts.owner !== undefined) dev.setOwner(opts.owner);
      if (opts.group !== undefined) dev.setGroup(opts.group);
      if (opts.persist !== undefined) dev.setPersist(opts.persist);
    } catch (e) {
      // The fds that did not become queues are still ours; the device closes the rest.
      for (const fd of fds.slice(dev.queues.length)) native.closeFd(fd);
      dev.#closeNow();
      throw e;
    }
    return dev;
  }

  #makeQueue(fd: number, index: number, vnetHdrSize: number): Queue {
    const o = this.#options;
    return new Queue({
      fd, name: this.name, mode: this.mode, index, packetInfo: !!o.packetInfo, vnetHdrSize,
      vnetLittleEndian: this.queues[0]?.vnetLittleEndian ?? o.vnetLittleEndian ?? true, batchSize: o.batchSize, readSize: o.readSize,
      ...(o.offload === 'split' ? { offload: 'split', verifyChecksums: o.verifyChecksums ?? true, coalesceUdp: this.#uso } : {}),
    });
  }

  get closed(): boolean { return this.#closed; }

  /** What the queues do with offloaded packets: 'split', 'raw' (a vnet header), or 'none'. */
  get offload(): OffloadMode { return this.queues[0]?.offload ?? 'none'; }

  /** An fd attached to the device, for control ioctls. */
  #controlFd(request: string): number {
    if (this.#closed) throw new TuntapError(`ioctl(${request})`, constants.errno.EBADF, `${this.name}: the device is closed (ioctl(${request}): EBADF)`);
    const q = this.queues.find((x) => !x.closed && x.attached) ?? this.queues.find((x) => !x.closed);
    if (!q) throw new TuntapError(`ioctl(${request})`, constants.errno.EBADF, `${this.name}: no open queue is left (ioctl(${request}): EBADF)`);
    return q.fd;
  }

  #ioctlValue(request: string, value: number, what: string): void {
    const fd = this.#controlFd(request);
    call(`${what} of ${this.name}`, () => native.tunIoctlValue(fd, request, value), explainControl(this.name, request));
  }

  #ioctlInt(request: string, what: string, value?: number): number {
    const fd = this.#controlFd(request);
    return call(`${what} of ${this.name}`, () => native.tunIoctlInt(fd, request, value), explainControl(this.name, request));
  }

  #socket(): number {
    if (this.#sock < 0) this.#sock = inNetns({ fd: this.#netns }, () => native.tunControlSocket());
    return this.#sock;
  }

  #ifGet(field: 'mtu' | 'flags' | 'index' | 'txqlen', request: string): number {
    const sock = this.#socket();
    return call(`reading the ${field} of ${this.name}`, () => native.tunIfGet(sock, this.name, field), explainControl(this.name, request));
  }

  #ifSet(field: 'mtu' | 'flags' | 'txqlen', value: number, request: string): void {
    const sock = this.#socket();
    call(`setting the ${field} of ${this.name}`, () => native.tunIfSet(sock, this.name, field, value), explainControl(this.name, request));
  }

  // ---- interface (SIOC*) ----
  get ifindex(): number { return this.#ifGet('index', 'SIOCGIFINDEX'); }
  get mtu(): number { return this.#ifGet('mtu', 'SIOCGIFMTU'); }
  setMtu(mtu: number): void { this.#ifSet('mtu', mtu, 'SIOCSIFMTU'); }
  get txQueueLength(): number { return this.#ifGet('txqlen', 'SIOCGIFTXQLEN'); }
  setTxQueueLength(length: number): void { this.#ifSet('txqlen', length, 'SIOCSIFTXQLEN'); }
  get isUp(): boolean { return (this.#ifGet('flags', 'SIOCGIFFLAGS') & IFF_UP) !== 0; }
  /** Sets the interface up or down (SIOCSIFFLAGS). */
  setUp(up = true): void {
    const flags = this.#ifGet('flags', 'SIOCGIFFLAGS');
    this.#ifSet('flags', up ? flags | IFF_UP : flags & ~IFF_UP, 'SIOCSIFFLAGS');
  }

  /** Interface counters (from /proc/net/dev inside the device's namespace). */
  stats(): InterfaceStats {
    if (this.#closed) throw new TuntapError('read', constants.errno.EBADF, `${this.name}: the device is closed (read: EBADF)`);
    const text = inNetns({ fd: this.#netns }, () => readFileSync('/proc/thread-self/net/dev', 'utf8'));
    const stats = parseNetDev(text, this.name);
    if (!stats) throw new TuntapError('read', constants.errno.ENODEV, `reading the statistics of ${this.name}: the device no longer exists (read(/proc/net/dev): ENODEV)`);
    return stats;
  }

  // ---- TUN ioctls ----
  /** TUNGETIFF: the device's name and current flags (IFF_PERSIST, IFF_NOFILTER, ...). */
  iff(): { name: string; flags: number } {
    const fd = this.#controlFd('TUNGETIFF');
    return call(`reading the flags of ${this.name}`, () => native.tunGetIff(fd), explainControl(this.name, 'TUNGETIFF'));
  }
  get persistent(): boolean { return (this.iff().flags & IFF.PERSIST) !== 0; }
  /** TUNGETFEATURES: the IFF_* flags this kernel accepts. */
  features(): number { return this.#ioctlInt('TUNGETFEATURES', 'reading the features'); }
  setPersist(on: boolean): void { this.#ioctlValue('TUNSETPERSIST', on ? 1 : 0, 'setting persistence'); }
  setOwner(uid: number): void { this.#ioctlValue('TUNSETOWNER', uid, 'setting the owner'); }
  setGroup(gid: number): void { this.#ioctlValue('TUNSETGROUP', gid, 'setting the group'); }
  /** TUNSETLINK: the ARPHRD_* link type (only while the interface is down). */
  setLinkType(type: number): void { this.#ioctlValue('TUNSETLINK', type, 'setting the link type'); }
  /** TUNSETOFFLOAD: which offloaded packets we accept (CSUM, TSO4/6, ECN, USO4/6). */
  setOffload(o: OffloadOptions | number): void {
    this.#ioctlValue('TUNSETOFFLOAD', typeof o === 'number' ? o : offloadBits(o), 'setting offloads');
  }
  /** TUNSETCARRIER: carrier on or off. */
  setCarrier(on: boolean): void { this.#ioctlInt('TUNSETCARRIER', 'setting the carrier', on ? 1 : 0); }
  get sndbuf(): number { return this.#ioctlInt('TUNGETSNDBUF', 'reading the send buffer'); }
  setSndbuf(bytes: number): void { this.#ioctlInt('TUNSETSNDBUF', 'setting the send buffer', bytes); }
  get vnetHdrSize(): number { return this.#ioctlInt('TUNGETVNETHDRSZ', 'reading the vnet header size'); }
  setVnetHdrSize(size: number): void {
    this.#ioctlInt('TUNSETVNETHDRSZ', 'setting the vnet header size', size);
    if (this.flags & IFF.VNET_HDR) for (const q of this.queues) q.setVnetHdrSize(size);
  }
  get vnetLittleEndian(): boolean { return this.#ioctlInt('TUNGETVNETLE', 'reading the vnet endianness') !== 0; }
  setVnetLittleEndian(on: boolean): void {
    this.#ioctlInt('TUNSETVNETLE', 'setting the vnet endianness', on ? 1 : 0);
    for (const q of this.queues) q.setVnetLittleEndian(on);
  }

  /** MAC address (SIOCGIFHWADDR on the device fd). */
  get mac(): string {
    const fd = this.#controlFd('SIOCGIFHWADDR');
    return formatMac(call(`reading the MAC address of ${this.name}`, () => native.tunGetHwaddr(fd), explainControl(this.name, 'SIOCGIFHWADDR')));
  }
  setMac(mac: string | Uint8Array): void {
    const bytes = parseMac(mac);
    const fd = this.#controlFd('SIOCSIFHWADDR');
    call(`setting the MAC address of ${this.name}`, () => native.tunSetHwaddr(fd, bytes), explainControl(this.name, 'SIOCSIFHWADDR'));
  }

  /** TUNSETTXFILTER (TAP): accept only frames to these MACs. */
  setTxFilter(f: TxFilterOptions): void {
    const raw = new Uint8Array(f.addresses.length * 6);
    f.addresses.forEach((a, i) => raw.set(parseMac(a), i * 6));
    const fd = this.#controlFd('TUNSETTXFILTER');
    call(`setting the TX filter of ${this.name}`, () => native.tunSetTxFilter(fd, f.allMulticast ? TUN_FLT_ALLMULTI : 0, raw),
      explainControl(this.name, 'TUNSETTXFILTER'));
  }
  /** Removes the TX filter (every frame passes). */
  clearTxFilter(): void { this.setTxFilter({ addresses: [] }); }

  /** TUNATTACHFILTER (TAP): a classic BPF program run on every frame sent to us. */
  attachFilter(program: readonly BpfInstruction[]): void {
    const buf = encodeBpf(program);
    const fd = this.#controlFd('TUNATTACHFILTER');
    call(`attaching a BPF filter to ${this.name}`, () => native.tunAttachFilter(fd, buf), explainControl(this.name, 'TUNATTACHFILTER'));
    this.#filter = buf; // the kernel re-reads it when a queue attaches later
  }
  detachFilter(): void {
    const fd = this.#controlFd('TUNDETACHFILTER');
    call(`detaching the BPF filter of ${this.name}`, () => native.tunDetachFilter(fd), explainControl(this.name, 'TUNDETACHFILTER'));
    this.#filter = null;
  }
  /** TUNGETFILTER: the attached program's length, and the program when this object attached it. */
  getFilter(): { length: number; program?: BpfInstruction[] } {
    const fd = this.#controlFd('TUNGETFILTER');
    const r = call(`reading the BPF filter of ${this.name}`, () => native.tunGetFilter(fd, this.#filter ?? undefined), explainControl(this.name, 'TUNGETFILTER'));
    return r.ours && this.#filter ? { length: r.length, program: decodeBpf(this.#filter) } : { length: r.length };
  }

  /** Opens one more queue on a multi-queue device. */
  addQueue(): Queue {
    if (this.#closed) throw new TuntapError('open', constants.errno.EBADF, `${this.name}: the device is closed (open: EBADF)`);
    const mq = (this.flags & IFF.MULTI_QUEUE) !== 0;
    const opened = inNetns({ fd: this.#netns }, () => call(`adding a queue to ${this.name}`,
      () => native.tunOpen(this.name, this.flags & ~IFF.TUN_EXCL, 0), explainOpen(this.name, { exclusive: false, multiQueue: mq, mode: this.mode })));
    const vnet = this.queues[0]?.vnetHdrSize ?? ((this.flags & IFF.VNET_HDR) ? 10 : 0);
    let q: Queue;
    try {
      q = this.#makeQueue(opened.fd, this.queues.length, vnet);
    } catch (e) {
      native.closeFd(opened.fd);
      throw e;
    }
    this.queues.push(q);
    return q;
  }

  // ---- single-queue conveniences (queues[0]) ----
  [Symbol.asyncIterator](): AsyncIterator<Buffer> { return this.queues[0]!.packets(); }
  packets(opts?: { signal?: AbortSignal }): AsyncGenerator<Buffer, void, undefined> { return this.queues[0]!.packets(opts); }
  batches(opts?: { signal?: AbortSignal }): AsyncGenerator<PacketBatch, void, undefined> { return this.queues[0]!.batches(opts); }
  readBatch(opts?: { signal?: AbortSignal }): Promise<PacketBatch | null> { return this.queues[0]!.readBatch(opts); }
  write(packet: Uint8Array, opts?: WriteOptions): Promise<void> { return this.queues[0]!.write(packet, opts); }
  writeBatch(packets: readonly Uint8Array[], opts?: WriteBatchOptions): Promise<number> { return this.queues[0]!.writeBatch(packets, opts); }
  writeRanges(buffer: Uint8Array, offsets: Uint32Array, lengths: Uint32Array, count: number, opts?: WriteBatchOptions & { raw?: boolean }): Promise<number> {
    return this.queues[0]!.writeRanges(buffer, offsets, lengths, count, opts);
  }
  writePacked(batch: Batch, opts?: WriteBatchOptions): Promise<number> { return this.queues[0]!.writePacked(batch, opts); }
  post(batch: Batch): boolean { return this.queues[0]!.post(batch); }

  #closeNow(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const q of this.queues) void q.close();
    if (this.#sock >= 0) native.closeFd(this.#sock);
    this.#sock = -1;
    native.closeFd(this.#netns);
    this.#filter = null;
  }

  /** Closes every queue this thread owns; a device that is not persistent disappears. */
  async close(): Promise<void> {
    this.#closeNow();
  }

  /** close(), synchronously: every fd and poll handle is released before it returns. */
  closeSync(): void {
    this.#closeNow();
  }

  [Symbol.dispose](): void { this.#closeNow(); }

  async [Symbol.asyncDispose](): Promise<void> { await this.close(); }
}

export function openTun(opts?: DeviceOptions): TunDevice { return TunDevice.open('tun', opts); }

export type PersistentOptions = Pick<DeviceOptions, 'name' | 'packetInfo' | 'vnetHdr' | 'multiQueue' | 'owner' | 'group' | 'netns'>;

/**
 * Creates a persistent device and lets go of it, as `ip tuntap add` does (the kernel refuses to
 * create tun/tap over rtnetlink). Fails with EBUSY if the name exists. Returns the kernel's name.
 */
export function createPersistent(mode: 'tun' | 'tap', opts: PersistentOptions = {}): string {
  using dev = TunDevice.open(mode, { ...opts, persist: true, exclusive: true, batchSize: 1, readSize: 64 });
  return dev.name;
}
export function openTap(opts?: DeviceOptions): TunDevice { return TunDevice.open('tap', opts); }
