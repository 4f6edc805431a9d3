// A TAP device as a switch port. With `offload` the device carries a virtio_net_hdr and accepts
// TSO/checksum offload, so the kernel hands us (and takes back) 64 KiB TCP super-packets: one
// read and one write per 64 KiB instead of per 1500 bytes, which is what makes a bridge in
// JavaScript keep up with the kernel's.
import { decodeVnetHdr, openTap, type DeviceOptions, type PacketBatch, type TunDevice } from '../device/index.js';
import { EtherType } from '../packet/ethernet.js';
import { GroCoalescer } from '../packet/index.js';
import { ETH_HEADER } from './ethernet.js';
import type { Frame, FrameOffload, Port } from './port.js';

export interface TapPortOptions {
  /** Device name or pattern (default 'tap%d'); an existing persistent TAP is attached to. */
  name?: string;
  /** Open with a vnet header and TSO/checksum offloads (default true). */
  offload?: boolean;
  netns?: DeviceOptions['netns'];
  /** Frames per read batch (default 64). */
  batchSize?: number;
  /** Set the interface up after opening (default true). */
  up?: boolean;
}

const VNET_LEN = 10;

function sameEthernetHeader(a: Uint8Array, b: Uint8Array): boolean {
  for (let i = 0; i < ETH_HEADER; i++) if (a[i] !== b[i]) return false;
  return true;
}

export class TapPort implements Port {
  readonly name: string;
  readonly acceptsOffload: boolean;
  readonly device: TunDevice;
  private readonly vnetSize: number;
  private readonly owned: boolean;
  private readonly gro = new GroCoalescer();
  private groOut = new Uint8Array(0);
  /** Wire-size TCP segments joined into super-packets before they were written. */
  coalesced = 0;
  /** Frames dropped because the interface was down when they were written. */
  linkDownDrops = 0;

  /** Wraps an open TAP device; the port reads and writes its first queue. */
  constructor(device: TunDevice, opts: { owned?: boolean } = {}) {
    if (device.mode !== 'tap') throw new TypeError(`${device.name} is a TUN device; a switch port needs a TAP`);
    this.device = device;
    this.name = device.name;
    this.vnetSize = device.queues[0]!.vnetHdrSize;
    this.acceptsOffload = this.vnetSize > 0;
    this.owned = opts.owned ?? true;
  }

  static open(opts: TapPortOptions = {}): TapPort {
    const offload = opts.offload ?? true;
    const device = openTap({
      name: opts.name, netns: opts.netns, batchSize: opts.batchSize ?? 64,
      vnetHdr: offload, offload: offload ? { csum: true, tso4: true, tso6: true, tsoEcn: true } : undefined,
    });
    try {
      if (opts.up ?? true) device.setUp(true);
    } catch (e) {
      void device.close();
      throw e;
    }
    return new TapPort(device);
  }

  async *receive(signal: AbortSignal): AsyncGenerator<Frame[]> {
    const frames: Frame[] = [];
    for await (const batch of this.device.batches({ signal })) {
      frames.length = batch.count;
      for (let i = 0; i < batch.count; i++) frames[i] = { data: batch.packet(i), offload: this.offloadOf(batch, i) };
      yield frames;
    }
  }

  /** The frame's vnet header, only when it asks for something (GSO or a partial checksum). */
  private offloadOf(batch: PacketBatch, i: number): FrameOffload | undefined {
    if (this.vnetSize === 0) return undefined;
    const at = batch.offsets[i]! - this.vnetSize;
    const b = batch.buffer;
    if ((b[at]! & 1) === 0 && b[at + 1] === 0) return undefined;
    return batch.vnet(i);
  }

  /** Resolves with how many of `frames` the device took (none while its link is down). */
  async send(frames: readonly Frame[]): Promise<number> {
    const given = frames.length;
    if (this.vnetSize > 0 && frames.length > 1) frames = this.coalesce(frames) ?? frames;
    const data = frames.map((f) => f.data);
    try {
      const written = this.vnetSize === 0 ? await this.device.writeBatch(data)
        : await this.device.writeBatch(data, { vnet: frames.map((f) => f.offload) });
      // Coalesced super-packets stand for several frames: report in the caller's frames.
      return written === frames.length ? given : Math.min(written, given);
    } catch (e) {
      // A TAP whose interface is down (or moving to another namespace) refuses writes with EIO:
      // like a switch port without carrier, drop what was for it and keep the port.
      if ((e as { code?: string }).code === 'EIO') { this.linkDownDrops += given; return 0; }
      throw e;
    }
  }

  /**
   * Joins consecutive TCP segments of one flow (from a tunnel or a plain port) into super-packets,
   * so the kernel behind this TAP receives 64 KiB at a time, as from a NIC with GRO. Only batches
   * whose frames all carry the same Ethernet header (one MAC pair, untagged IP) are joined, which
   * is the shape of a bulk transfer; everything else is written as it came.
   */
  private coalesce(frames: readonly Frame[]): Frame[] | undefined {
    const first = frames[0]!.data;
    if (first.length < ETH_HEADER + 20) return undefined;
    const type = (first[12]! << 8) | first[13]!;
    if (type !== EtherType.IPv4 && type !== EtherType.IPv6) return undefined;
    for (const f of frames) {
      if (f.offload !== undefined || f.data.length < ETH_HEADER + 20 || !sameEthernetHeader(first, f.data)) return undefined;
    }
    const packets = frames.map((f) => f.data.subarray(ETH_HEADER));
    const bound = GroCoalescer.outputBound(packets);
    if (this.groOut.length < bound) this.groOut = new Uint8Array(bound * 2);
    const out = this.groOut;
    const r = this.gro.coalesce(packets, out);
    if (r.merged === 0) return undefined;
    this.coalesced += r.merged;
    const result: Frame[] = [];
    for (let k = 0; k < r.count; k++) {
      const at = r.offsets[k]!;
      const end = at + r.lengths[k]!;
      const data = new Uint8Array(ETH_HEADER + end - at - VNET_LEN);
      data.set(first.subarray(0, ETH_HEADER), 0);
      data.set(out.subarray(at + VNET_LEN, end), ETH_HEADER);
      const h = decodeVnetHdr(out, at, VNET_LEN);
      // The coalescer counts offsets from the IP header; the TAP's frames start at the MAC.
      const offload = h.gsoType !== 0 || (h.flags & 1) !== 0
        ? { ...h, hdrLen: h.hdrLen + ETH_HEADER, csumStart: h.csumStart + ETH_HEADER } : undefined;
      result.push({ data, offload });
    }
    return result;
  }

  async close(): Promise<void> {
    if (this.owned) await this.device.close();
  }
}
