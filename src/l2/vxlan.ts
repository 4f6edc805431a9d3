// A VXLAN tunnel as a switch port, speaking the same wire format as the kernel's `vxlan` device.
// Known unicast destinations go to the VTEP their MAC was learned from (or pinned to); broadcast,
// multicast and unknown unicast are replicated to every VTEP of the flood list (head-end
// replication, like `bridge fdb append 00:00:00:00:00:00 dst ...` on a kernel vxlan).
import { isIP } from 'node:net';
import type { NetnsRef } from '../netns.js';
import { Fdb } from './fdb.js';
import { isGroupAddress, macKey, parseMacKey } from './ethernet.js';
import type { Frame, Port } from './port.js';
import { EthernetField } from '../packet/ethernet.js';
import { EndpointTable, UdpSocket, type DatagramBatch } from '../net/index.js';
import { VXLAN_HEADER_SIZE, VXLAN_UDP_PORT, checkVni, decapsulate, encodeVxlanHeader } from '../packet/vxlan.js';

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
  rxOverruns: number;
}

export interface VxlanRemoteRow {
  mac: string;
  remote: string;
  age: number;
  static: boolean;
}

function checkAddress(a: string, what: string): string {
  if (isIP(a) === 0) throw new TypeError(`${what}: not an IP address: ${JSON.stringify(a)}`);
  return a;
}

export class VxlanPort implements Port {
  readonly name: string;
  readonly acceptsOffload = false;
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
  private pack = new Uint8Array(64 * 1024);
  private packBusy = false;
  private readonly counters = { rxPackets: 0, txPackets: 0, malformed: 0, otherVni: 0, noRemote: 0, txErrors: 0 };

  private constructor(opts: VxlanPortOptions, socket: UdpSocket) {
    this.vni = checkVni(opts.vni);
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
  private vtepOf(batch: DatagramBatch, i: number): number {
    const key = batch.endpointKey(i);
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
    for await (const batch of this.socket.batches({ signal })) {
      const now = performance.now();
      if (now - this.lastSweep > this.remotesByMac.ageMs / 4) { this.remotesByMac.sweep(now); this.lastSweep = now; }
      frames.length = 0;
      for (let i = 0; i < batch.count; i++) {
        const decoded = decapsulate(batch.datagram(i));
        if (typeof decoded === 'string') { c.malformed++; continue; }
        if (decoded.vni !== this.vni) { c.otherVni++; continue; }
        // Like the kernel's `nolearning`: frames from any VTEP are taken, just not remembered.
        if (this.learning && !isGroupAddress(decoded.frame, EthernetField.src)) {
          this.remotesByMac.learn(0, macKey(decoded.frame, EthernetField.src), this.vtepOf(batch, i), now);
        }
        c.rxPackets++;
        frames.push({ data: decoded.frame });
      }
      if (frames.length > 0) yield frames;
    }
  }

  async send(frames: readonly Frame[]): Promise<number> {
    const now = performance.now();
    let bytes = 0;
    for (const f of frames) bytes += VXLAN_HEADER_SIZE + f.data.length;
    // Encapsulate the batch into one buffer; a flooded frame is written once and named once per VTEP.
    const pack = this.packBusy || this.pack.length < bytes ? new Uint8Array(Math.max(bytes, this.pack.length)) : this.pack;
    const usePack = pack === this.pack;
    if (usePack) this.packBusy = true;
    const offsets: number[] = [];
    const lengths: number[] = [];
    const ids: number[] = [];
    let at = 0;
    let largest = 0;
    let routed = 0;
    for (const f of frames) {
      const remote = isGroupAddress(f.data, EthernetField.dst) ? undefined : this.remotesByMac.lookup(0, macKey(f.data, EthernetField.dst), now);
      if (remote === undefined && this.flood.length === 0) { this.counters.noRemote++; continue; }
      routed++;
      encodeVxlanHeader(this.vni, pack, at);
      pack.set(f.data, at + VXLAN_HEADER_SIZE);
      const len = VXLAN_HEADER_SIZE + f.data.length;
      if (len > largest) largest = len;
      if (remote !== undefined) { offsets.push(at); lengths.push(len); ids.push(remote); }
      else for (const id of this.flood) { offsets.push(at); lengths.push(len); ids.push(id); }
      at += len;
    }
    try {
      if (ids.length === 0) return 0;
      await this.socket.sendPacked({ buffer: pack, offsets: Uint32Array.from(offsets), lengths: Uint32Array.from(lengths), count: ids.length },
        { table: this.vteps, ids: Uint32Array.from(ids) }, largest <= this.gsoLimit ? { gsoSize: 'auto' } : {});
      this.counters.txPackets += ids.length;
      return routed;
    } catch {
      // A closed socket or a hard error: the datagrams are lost, as on a wire; per-VTEP errors
      // (unreachable, refused) are counted by the socket and never get here.
      this.counters.txErrors += ids.length;
      return 0;
    } finally {
      if (usePack) this.packBusy = false;
    }
  }

  close(): Promise<void> {
    return this.socket.close();
  }
}
