// A VXLAN tunnel as a switch port, speaking the same wire format as the kernel's `vxlan` device.
// Known unicast destinations go to the VTEP their MAC was learned from (or pinned to); broadcast,
// multicast and unknown unicast are replicated to every VTEP of the flood list (head-end
// replication, like `bridge fdb append 00:00:00:00:00:00 dst ...` on a kernel vxlan).
import { isIP } from 'node:net';
import type { NetnsRef } from '../netns.js';
import { Fdb } from './fdb.js';
import { isGroupAddress, macKey, parseMacKey } from './ethernet.js';
import type { Frame, Port } from './port.js';
import { UdpTransport } from './udp-transport.js';
import { VXLAN_UDP_PORT, checkVni, decapsulate, encodeVxlanHeader } from './vxlan-codec.js';

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
  /** Datagrams from a VTEP that is neither on the flood list nor learnable (learning off). */
  unknownSource: number;
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
  private readonly header: Uint8Array;
  private readonly transport: UdpTransport;
  private readonly flood: string[];
  private readonly remotesByMac: Fdb<string>;
  private readonly learning: boolean;
  private readonly counters = { rxPackets: 0, txPackets: 0, malformed: 0, otherVni: 0, unknownSource: 0, noRemote: 0, txErrors: 0 };

  private constructor(opts: VxlanPortOptions, transport: UdpTransport) {
    this.vni = checkVni(opts.vni);
    this.udpPort = opts.port ?? VXLAN_UDP_PORT;
    this.name = opts.name ?? `vxlan${this.vni}`;
    this.header = encodeVxlanHeader(this.vni);
    this.transport = transport;
    this.flood = [...new Set((opts.remotes ?? []).map((r) => checkAddress(r, 'VXLAN remote')))];
    this.learning = opts.learning ?? true;
    this.remotesByMac = new Fdb((opts.ageSeconds ?? 300) * 1000);
    for (const s of opts.staticMacs ?? []) {
      this.remotesByMac.addStatic(0, parseMacKey(s.mac), checkAddress(s.remote, `VXLAN remote of ${s.mac}`));
    }
  }

  /** Binds the UDP socket (inside `netns` when given) and returns the port. */
  static async open(opts: VxlanPortOptions): Promise<VxlanPort> {
    checkAddress(opts.local, 'VXLAN local address');
    const transport = new UdpTransport({ address: opts.local, port: opts.port ?? VXLAN_UDP_PORT, netns: opts.netns });
    try {
      await transport.ready();
    } catch (e) {
      await transport.close();
      throw new Error(`VXLAN: cannot bind UDP ${opts.local}:${opts.port ?? VXLAN_UDP_PORT}: ${(e as Error).message}`, { cause: e });
    }
    return new VxlanPort(opts, transport);
  }

  stats(): VxlanStats {
    return { ...this.counters, rxOverruns: this.transport.overruns };
  }

  /** Inner MAC → VTEP entries, learned and static. */
  remoteTable(): VxlanRemoteRow[] {
    return this.remotesByMac.rows(performance.now())
      .map((r) => ({ mac: r.mac, remote: r.target, age: r.age, static: r.static }));
  }

  async *receive(signal: AbortSignal): AsyncGenerator<Frame[]> {
    const c = this.counters;
    for await (const datagrams of this.transport.batches(signal)) {
      const now = performance.now();
      const frames: Frame[] = [];
      for (const d of datagrams) {
        const decoded = decapsulate(d.data);
        if (typeof decoded === 'string') { c.malformed++; continue; }
        if (decoded.vni !== this.vni) { c.otherVni++; continue; }
        if (this.learning) {
          if (!isGroupAddress(decoded.frame, 6)) this.remotesByMac.learn(0, macKey(decoded.frame, 6), d.address, now);
        } else if (!this.flood.includes(d.address)) {
          c.unknownSource++;
          continue;
        }
        c.rxPackets++;
        frames.push({ data: decoded.frame });
      }
      if (frames.length > 0) yield frames;
    }
  }

  async send(frames: readonly Frame[]): Promise<void> {
    const now = performance.now();
    const out: { pieces: Uint8Array[]; address: string; port: number }[] = [];
    for (const f of frames) {
      const pieces = [this.header, f.data];
      const remote = isGroupAddress(f.data, 0) ? undefined : this.remotesByMac.lookup(0, macKey(f.data, 0), now);
      if (remote !== undefined) {
        out.push({ pieces, address: remote, port: this.udpPort });
      } else if (this.flood.length === 0) {
        this.counters.noRemote++;
      } else {
        for (const address of this.flood) out.push({ pieces, address, port: this.udpPort });
      }
    }
    try {
      await this.transport.send(out);
      this.counters.txPackets += out.length;
    } catch {
      // One unreachable VTEP must not take the tunnel down; the datagram is lost, as on a wire.
      this.counters.txErrors++;
    }
  }

  close(): Promise<void> {
    return this.transport.close();
  }
}
