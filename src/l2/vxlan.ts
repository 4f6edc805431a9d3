// A VXLAN tunnel as a switch port, speaking the same wire format as the kernel's `vxlan` device.
// Known unicast destinations go to the VTEP their MAC was learned from (or pinned to); broadcast,
// multicast and unknown unicast are replicated to every VTEP of the flood list (head-end
// replication, like `bridge fdb append 00:00:00:00:00:00 dst ...` on a kernel vxlan).
// The port takes a TAP's super-frames as they are: each is split once, straight into the batch
// of datagrams behind room for its VXLAN header (every segment's TCP checksum summed for the
// whole send in one native call), and the segments leave as one UDP GSO send; received
// datagrams come in GRO runs, and the TAP port coalesces them again before its write.
import { isIP } from 'node:net';
import type { NetnsRef } from '../netns.js';
import { Fdb } from './fdb.js';
import { isGroupAddress, macKey, parseMacKey } from './ethernet.js';
import type { Frame, FrameOffload, Port } from './port.js';
import { EthernetField } from '../packet/ethernet.js';
import { EndpointTable, UdpSocket, type DatagramBatch } from '../net/index.js';
import { PieceBuffer } from '../base/batch.js';
import { completePartialChecksum } from '../base/checksum.js';
import { checksumRanges } from '../native.js';
import { ipOffsetOfFrame, newSplitPlan, planSplit, splitPieces, type SplitPlan } from '../base/gso.js';
import { GsoType, VIRTIO_NET_HDR_F, isGso, needsCsum } from '../base/vnet.js';
import { VXLAN_HEADER_SIZE, VXLAN_UDP_PORT, checkVni, encodeVxlanHeader, vniAt } from '../packet/vxlan.js';

export interface VxlanPortOptions {
  vni: number;
  /** Local address to bind (the VTEP's underlay address). */
  local: string;
  /** UDP port to bind and to send to (default 4789). */
  port?: number;
  /** VTEPs that get broadcast, multicast and unknown unicast (the flood list). */
  remotes?: string[];
  /** MACs pinned to a VTEP; these are never re-learned. */
  staticMacs?: { mac: string; remote: string }[];
  /** Learn which VTEP each inner source MAC sits behind (default true). */
  learning?: boolean;
  /** Seconds a learned MAC → VTEP entry lives (default 300). */
  ageSeconds?: number;
  /**
   * MTU of the underlay path (default 1500). Batches whose datagrams fit leave as UDP GSO sends;
   * larger datagrams go one by one, so the kernel can fragment them as it would for a plain send.
   */
  underlayMtu?: number;
  /** Port name in the switch (default `vxlan<VNI>`). */
  name?: string;
  netns?: NetnsRef;
}

export interface VxlanStats {
  rxPackets: number;
  txPackets: number;
  /** Datagrams that are not VXLAN (too short, I flag clear). */
  malformed: number;
  /** Datagrams for another VNI. */
  otherVni: number;
  /** Frames with no VTEP to go to (unknown destination and an empty flood list). */
  noRemote: number;
  /** Datagrams the socket refused (unreachable VTEP, buffer full) or the reader dropped. */
  txErrors: number;
  /** Frames from an offload port whose virtio_net_hdr and bytes disagree (or that split too finely), dropped. */
  offloadDrops: number;
  rxOverruns: number;
}

export interface VxlanRemoteRow {
  mac: string;
  remote: string;
  age: number;
  static: boolean;
}

/** Most datagrams one super-frame may become (64 KiB at a 536-byte MSS is 123). */
const MAX_SEGMENTS_PER_FRAME = 256;

/** The offload header of a frame whose bytes a verified outer UDP checksum covered (DATA_VALID). */
const CHECKED_BY_OUTER_CHECKSUM: FrameOffload = Object.freeze({
  flags: VIRTIO_NET_HDR_F.DATA_VALID, gsoType: GsoType.NONE, hdrLen: 0, gsoSize: 0, csumStart: 0, csumOffset: 0,
});

/**
 * One send's datagrams: pieces of `bytes` (source 0: VXLAN and rebuilt inner headers, frames
 * copied whole) and of the frames themselves (super-frames' payloads), `at` bytes of `bytes`
 * used, and each datagram's VTEP id.
 */
interface Outgoing { pieces: PieceBuffer; bytes: Uint8Array; at: number; ids: Uint32Array }

function newOutgoing(): Outgoing {
  return { pieces: new PieceBuffer(), bytes: Buffer.allocUnsafeSlow(64 * 1024), at: 0, ids: new Uint32Array(256) };
}

/** Room for `bytes` more bytes after d.at (what is written so far is kept, at the same offsets). */
function reserve(d: Outgoing, bytes: number): void {
  if (d.bytes.length - d.at >= bytes) return;
  const grown = Buffer.allocUnsafeSlow(Math.max(d.bytes.length * 2, d.at + bytes));
  grown.set(d.bytes.subarray(0, d.at));
  d.bytes = grown;
}

function growIds(ids: Uint32Array, n: number): Uint32Array {
  const grown = new Uint32Array(Math.max(n, ids.length * 2));
  grown.set(ids);
  return grown;
}

/** Buffers one gathered send takes pieces from (native/gather.h). */
const MAX_SOURCES = 16;

/** The index in `sources` of a view over all of `data`'s memory, added if new; -1 past MAX_SOURCES. */
function sourceIndex(sources: Uint8Array[], data: Uint8Array): number {
  for (let s = sources.length - 1; s >= 1; s--) if (sources[s]!.buffer === data.buffer) return s;
  if (sources.length >= MAX_SOURCES) return -1;
  sources.push(new Uint8Array(data.buffer));
  return sources.length - 1;
}

/** Views kept per receive message: a GRO message of 64 KiB holds at most 44 full-size datagrams. */
const VIEWS_PER_MESSAGE = 64;

/**
 * Views of received datagrams, kept per (message, place in message) from one batch to the next:
 * a bulk flow's batches lay their datagrams out alike (message m's k-th datagram at the same
 * offset and length), so the view made last time usually fits again. Making one costs a typed
 * array construction and garbage; checking one through its byteOffset getter costs ~20 ns in V8,
 * so each view's offset and length are kept beside it.
 */
class ReceiveViews {
  private views: (Uint8Array | undefined)[] = [];
  private starts = new Float64Array(0);
  private lengths = new Float64Array(0);
  private area: Uint8Array = new Uint8Array(0);
  private buffer: ArrayBufferLike | undefined;
  private base = 0;

  /** Starts a batch received into `area` (views of another area are dropped). */
  over(area: Uint8Array): void {
    if (area === this.area) return;
    this.area = area;
    const buffer = area.buffer;
    if (buffer !== this.buffer || area.byteOffset !== this.base) {
      this.buffer = buffer;
      this.base = area.byteOffset;
      this.views.fill(undefined);
    }
  }

  /** A view of area[at, at + length), datagram `k` of message `m`. */
  view(m: number, k: number, at: number, length: number): Uint8Array {
    if (k >= VIEWS_PER_MESSAGE) return new Uint8Array(this.buffer!, this.base + at, length);
    const slot = m * VIEWS_PER_MESSAGE + k;
    const v = this.views[slot];
    if (v !== undefined && this.starts[slot] === at && this.lengths[slot] === length) return v;
    if (this.starts.length <= slot) {
      const size = Math.max(slot + 1, this.starts.length * 2, 16 * VIEWS_PER_MESSAGE);
      const starts = new Float64Array(size); starts.set(this.starts); this.starts = starts;
      const lengths = new Float64Array(size); lengths.set(this.lengths); this.lengths = lengths;
      // Grown whole (not by a far index write), so the array stays dense.
      const views = new Array<Uint8Array | undefined>(size).fill(undefined);
      for (let i = 0; i < this.views.length; i++) views[i] = this.views[i];
      this.views = views;
    }
    const made = new Uint8Array(this.buffer!, this.base + at, length);
    this.views[slot] = made;
    this.starts[slot] = at;
    this.lengths[slot] = length;
    return made;
  }
}

function checkAddress(a: string, what: string): string {
  if (isIP(a) === 0) throw new TypeError(`${what}: not an IP address: ${JSON.stringify(a)}`);
  return a;
}

export class VxlanPort implements Port {
  readonly name: string;
  /** Super-frames and partial checksums are taken as they are: split and finished here. */
  readonly acceptsOffload = true;
  readonly vni: number;
  readonly udpPort: number;
  readonly socket: UdpSocket;
  /** Every VTEP we send to, interned once; MAC entries and the flood list hold their ids. */
  private readonly vteps = new EndpointTable();
  /** Datagram source (address and source port) → VTEP id (same address, our UDP port). */
  private readonly sourceIds = new Map<number | string, number>();
  private readonly flood: number[];
  private readonly remotesByMac: Fdb<number>;
  private readonly learning: boolean;
  /** Largest datagram a UDP GSO send may carry per segment without exceeding the underlay MTU. */
  private readonly gsoLimit: number;
  private lastSweep = 0;
  /** The datagrams of one send, as pieces, and each one's VTEP id. */
  private readonly out: Outgoing = newOutgoing();
  /** A send still pending on `out` makes the next one build in fresh lists. */
  private outBusy = false;
  private readonly plan: SplitPlan = newSplitPlan();
  /** This VNI's VXLAN header, copied in front of every datagram. */
  private readonly header: Uint8Array;
  private readonly counters = { rxPackets: 0, txPackets: 0, malformed: 0, otherVni: 0, noRemote: 0, txErrors: 0, offloadDrops: 0 };

  private constructor(opts: VxlanPortOptions, socket: UdpSocket) {
    this.vni = checkVni(opts.vni);
    this.header = encodeVxlanHeader(this.vni);
    this.udpPort = opts.port ?? VXLAN_UDP_PORT;
    this.name = opts.name ?? `vxlan${this.vni}`;
    this.socket = socket;
    this.gsoLimit = (opts.underlayMtu ?? 1500) - (socket.family === 6 ? 48 : 28);
    this.flood = [...new Set((opts.remotes ?? []).map((r) => this.vteps.add(checkAddress(r, 'VXLAN remote'), this.udpPort)))];
    this.learning = opts.learning ?? true;
    this.remotesByMac = new Fdb((opts.ageSeconds ?? 300) * 1000);
    for (const s of opts.staticMacs ?? []) {
      const id = this.vteps.add(checkAddress(s.remote, `VXLAN remote of ${s.mac}`), this.udpPort);
      this.remotesByMac.addStatic(0, parseMacKey(s.mac), id);
    }
  }

  /** Binds the UDP socket (inside `netns` when given) and returns the port. */
  static async open(opts: VxlanPortOptions): Promise<VxlanPort> {
    checkAddress(opts.local, 'VXLAN local address');
    // UDP GSO on send (a cut super-packet leaves as one message) and GRO on receive (the
    // kernel hands over runs of datagrams at once); the kernel's vxlan sees plain datagrams.
    const socket = UdpSocket.open({
      bind: { address: opts.local, port: opts.port ?? VXLAN_UDP_PORT }, netns: opts.netns,
      recvBufferSize: 4 << 20, sendBufferSize: 4 << 20, gro: true, batchSize: 64,
    });
    try {
      return new VxlanPort(opts, socket);
    } catch (e) {
      await socket.close();
      throw e;
    }
  }

  stats(): VxlanStats {
    return { ...this.counters, txErrors: this.counters.txErrors + this.socket.stats.sendErrors, rxOverruns: this.socket.stats.kernelDrops };
  }

  /** Inner MAC → VTEP entries, learned and static. */
  remoteTable(): VxlanRemoteRow[] {
    return this.remotesByMac.rows(performance.now())
      .map((r) => ({ mac: r.mac, remote: this.vteps.get(r.target).address, age: r.age, static: r.static }));
  }

  /** The VTEP id a datagram came from: its source address at our UDP port (VTEPs vary the source port). */
  private vtepOf(batch: DatagramBatch, i: number, key: number | string): number {
    let id = this.sourceIds.get(key);
    if (id === undefined) {
      if (this.sourceIds.size >= 4096) this.sourceIds.clear();
      id = this.vteps.add(batch.endpoint(i).address, this.udpPort);
      this.sourceIds.set(key, id);
    }
    return id;
  }

  async *receive(signal: AbortSignal): AsyncGenerator<Frame[]> {
    const c = this.counters;
    const frames: Frame[] = [];
    // The switch is done with a batch's frames before it asks for the next (Port's contract),
    // so the frame objects and their views are reused from one batch to the next.
    const pool: Frame[] = [];
    const views = new ReceiveViews();
    for await (const batch of this.socket.batches({ signal })) {
      const now = performance.now();
      if (now - this.lastSweep > this.remotesByMac.ageMs / 4) { this.remotesByMac.sweep(now); this.lastSweep = now; }
      const buf = batch.buffer;
      const sources = batch.sources;
      views.over(buf);
      // A GRO run is one sender's datagrams of one flow: learn each (source, MAC) pair once, and
      // read a datagram's source only when its message or MAC differs from the one before.
      let learnedMac = -1;
      let learnedFrom: number | string = -1;
      let learnedMessage = -1;
      let n = 0;
      let message = -1;
      let inMessage = 0;
      for (let i = 0; i < batch.count; i++) {
        const at = batch.offsets[i]!;
        const len = batch.lengths[i]!;
        const m = sources[i]!;
        if (m !== message) { message = m; inMessage = 0; } else inMessage++;
        const vni = vniAt(buf, at, len);
        if (vni < 0) { c.malformed++; continue; }
        if (vni !== this.vni) { c.otherVni++; continue; }
        const data = views.view(m, inMessage, at + VXLAN_HEADER_SIZE, len - VXLAN_HEADER_SIZE);
        // Like the kernel's `nolearning`: frames from any VTEP are taken, just not remembered.
        if (this.learning && !isGroupAddress(data, EthernetField.src)) {
          const mac = macKey(data, EthernetField.src);
          if (mac !== learnedMac || m !== learnedMessage) {
            const from = batch.endpointKey(i);
            if (mac !== learnedMac || from !== learnedFrom) this.remotesByMac.learn(0, mac, this.vtepOf(batch, i, from), now);
            learnedMac = mac;
            learnedFrom = from;
            learnedMessage = m;
          }
        }
        c.rxPackets++;
        const f = pool[n] ??= { data, offload: undefined };
        f.data = data;
        // Datagrams that share one receive message came as a UDP GRO run. The kernel merges only
        // datagrams with a non-zero UDP checksum and verifies it first (udp_gro_receive_segment);
        // a local UDP GSO send always carries one. That checksum covers the whole inner frame,
        // so the TAP port need not verify the inner one again. A lone datagram (possibly with a
        // zero outer checksum, the kernel vxlan's default on IPv4) is verified as before.
        const run = (i > 0 && sources[i - 1] === m) || (i + 1 < batch.count && sources[i + 1] === m);
        const offload = run ? CHECKED_BY_OUTER_CHECKSUM : undefined;
        f.offload = offload;
        // Written in place, the length set once: emptying the array (length = 0) would give up
        // its storage and make every batch grow it again.
        frames[n++] = f;
      }
      if (n === 0) continue;
      if (frames.length !== n) frames.length = n;
      yield frames;
    }
  }

  async send(frames: readonly Frame[]): Promise<number> {
    const now = performance.now();
    // A send still pending on the port's own lists makes this one build in fresh ones.
    const d = this.outBusy ? newOutgoing() : this.out;
    d.pieces.reset();
    d.at = 0;
    d.pieces.sources.push(d.bytes);
    let largest = 0;
    let routed = 0;
    for (const f of frames) {
      const data = f.data;
      const remote = isGroupAddress(data, EthernetField.dst) ? undefined : this.remotesByMac.lookup(0, macKey(data, EthernetField.dst), now);
      if (remote === undefined && this.flood.length === 0) { this.counters.noRemote++; continue; }
      const first = d.pieces.count;
      const longest = this.encapsulate(f, d);
      if (longest < 0) { this.counters.offloadDrops++; continue; }
      routed++;
      if (longest > largest) largest = longest;
      const n = d.pieces.count - first;
      // A flooded frame is built once and listed once per VTEP, each VTEP's segments in a run
      // (a GSO send joins consecutive datagrams to one destination).
      const vteps = remote === undefined ? this.flood : [remote];
      for (let v = 1; v < vteps.length; v++) d.pieces.repeat(first, n);
      if (d.ids.length < d.pieces.count) d.ids = growIds(d.ids, d.pieces.count);
      for (let v = 0; v < vteps.length; v++) d.ids.fill(vteps[v]!, first + v * n, first + (v + 1) * n);
    }
    // The bytes may have moved to a larger buffer meanwhile (the offsets stay).
    d.pieces.sources[0] = d.bytes;
    const count = d.pieces.count;
    if (count === 0) return 0;
    const mine = d === this.out;
    if (mine) this.outBusy = true;
    try {
      await this.socket.sendGathered(d.pieces, { table: this.vteps, ids: d.ids }, largest <= this.gsoLimit ? { gsoSize: 'auto' } : {});
      this.counters.txPackets += count;
      return routed;
    } catch {
      // A closed socket or a hard error: the datagrams are lost, as on a wire; per-VTEP errors
      // (unreachable, refused) are counted by the socket and never get here.
      this.counters.txErrors += count;
      return 0;
    } finally {
      if (mine) this.outBusy = false;
    }
  }

  /**
   * Appends frame `f` to the datagrams as VXLAN payloads and returns the longest datagram, or -1
   * when its offload header and bytes disagree. A super-frame is split as pieces: each segment's
   * VXLAN and rebuilt inner headers in the port's bytes, its payload left in the frame (its
   * checksum finished as the kernel would before a plain NIC). Anything else is copied whole
   * behind its VXLAN header, a partial checksum finished.
   */
  private encapsulate(f: Frame, d: Outgoing): number {
    const data = f.data;
    const o = f.offload;
    if (o !== undefined && isGso(o)) {
      const ipOffset = ipOffsetOfFrame(data);
      let plan: SplitPlan;
      try {
        plan = planSplit(data, o, ipOffset, this.plan);
      } catch {
        return -1;
      }
      // A gso_size far below any MTU would turn one frame into thousands of datagrams.
      if (plan.count > MAX_SEGMENTS_PER_FRAME) return -1;
      const headerBytes = plan.count * (VXLAN_HEADER_SIZE + plan.hdrLen);
      let source = sourceIndex(d.pieces.sources, data);
      let pkt = data;
      let at = data.byteOffset;
      if (source < 0) {
        // More buffers than one send takes: this frame is copied into the port's bytes first.
        reserve(d, data.length + headerBytes);
        d.bytes.set(data, d.at);
        pkt = d.bytes.subarray(d.at, d.at + data.length);
        source = 0;
        at = d.at;
        d.at += data.length;
      } else {
        reserve(d, headerBytes);
      }
      d.at += splitPieces(pkt, plan, d.pieces, source, at, d.bytes, d.at, this.header, checksumRanges);
      return VXLAN_HEADER_SIZE + Math.min(plan.hdrLen + plan.mss, data.length);
    }
    const len = VXLAN_HEADER_SIZE + data.length;
    if (o !== undefined && needsCsum(o) && o.csumStart + o.csumOffset + 2 > data.length) return -1;
    reserve(d, len);
    const buf = d.bytes;
    buf.set(this.header, d.at);
    buf.set(data, d.at + VXLAN_HEADER_SIZE);
    if (o !== undefined && needsCsum(o)) completePartialChecksum(buf, o.csumStart, o.csumOffset, d.at + VXLAN_HEADER_SIZE, d.at + len);
    d.pieces.add(0, d.at, len);
    d.pieces.end();
    d.at += len;
    return len;
  }

  close(): Promise<void> {
    return this.socket.close();
  }
}
