// A TAP device as a switch port. With `offload` the device's queue runs in offload mode 'raw':
// the kernel hands us (and takes back) 64 KiB TCP super-frames with their virtio_net_hdr
// decoded by the device, one read and one write per 64 KiB instead of per 1500 bytes, which is
// what makes a bridge in JavaScript keep up with the kernel's. Super-frames pass between
// offload ports whole, like a kernel bridge forwarding GSO frames; ordinary frames (from a
// tunnel or a plain port) are coalesced by the base layer's GroCoalescer before the write.
import { openTap, type DeviceOptions, type PacketBatch, type Queue, type TunDevice } from '../device/index.js';
import { isGso, isDataValidOnly, needsCsum, type VirtioNetHdr } from '../base/vnet.js';
import { GroCoalescer, type GroResult } from '../base/gro.js';
import { ETHERNET_HEADER_LENGTH } from '../packet/ethernet.js';
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

export class TapPort implements Port {
  readonly name: string;
  readonly acceptsOffload: boolean;
  readonly device: TunDevice;
  private readonly queue: Queue;
  private readonly owned: boolean;
  private readonly gro: GroCoalescer | undefined;
  /** The coalescer's output; a write still pending on it makes the next batch take a fresh one. */
  private groOut = new Uint8Array(0);
  private groOutBusy = false;
  /** The frames' bytes and "checked on the way here" flags handed to the coalescer (reused). */
  private readonly groIn: Uint8Array[] = [];
  /** The rebuilt headers of a gathered write (used during the call only). */
  private groHeaders = new Uint8Array(0);
  private intact = new Uint8Array(64);
  /** Wire-size TCP segments joined into super-packets before they were written. */
  coalesced = 0;
  /** Frames dropped because the interface was down when they were written. */
  linkDownDrops = 0;

  /** Wraps an open TAP device; the port reads and writes its first queue. */
  constructor(device: TunDevice, opts: { owned?: boolean } = {}) {
    if (device.mode !== 'tap') throw new TypeError(`${device.name} is a TUN device; a switch port needs a TAP`);
    const queue = device.queues[0]!;
    if (queue.offload === 'split') throw new TypeError(`${device.name}: a switch port needs offload 'raw' (super-frames pass through it whole), not 'split'`);
    this.device = device;
    this.queue = queue;
    this.name = device.name;
    this.acceptsOffload = queue.offload === 'raw';
    this.gro = this.acceptsOffload
      ? new GroCoalescer({ linkHeader: ETHERNET_HEADER_LENGTH, headerSize: queue.vnetHdrSize, littleEndian: queue.vnetLittleEndian })
      : undefined;
    this.owned = opts.owned ?? true;
  }

  static open(opts: TapPortOptions = {}): TapPort {
    const device = openTap({
      name: opts.name, netns: opts.netns, batchSize: opts.batchSize ?? 64, offload: opts.offload ?? true ? 'raw' : undefined,
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
    const raw = this.acceptsOffload;
    for await (const batch of this.queue.batches({ signal })) {
      frames.length = batch.count;
      for (let i = 0; i < batch.count; i++) frames[i] = { data: batch.packet(i), offload: raw ? offloadOf(batch, i) : undefined };
      yield frames;
    }
  }

  /** Resolves with how many of `frames` the device took (none while its link is down). */
  async send(frames: readonly Frame[]): Promise<number> {
    const given = frames.length;
    try {
      if (this.gro !== undefined && given > 1 && this.plan(frames)) {
        const gathered = this.writeGathered();
        if (gathered === true) return given;
        const merged = this.emitMerged();
        this.groOutBusy = true;
        try {
          // What the kernel did not take at once is written from a copy (the frames' memory
          // is the sender's again once this returns to the switch).
          const rest = merged.count - gathered;
          const written = gathered + await this.queue.writeRanges(merged.buffer, merged.offsets.subarray(gathered),
            merged.lengths.subarray(gathered), rest, { raw: true });
          // Super-frames stand for several frames: report in the caller's frames.
          return written === merged.count ? given : Math.min(written, given);
        } finally {
          if (merged.buffer === this.groOut) this.groOutBusy = false;
        }
      }
      const data = frames.map((f) => f.data);
      return this.acceptsOffload ? await this.queue.writeBatch(data, { vnet: frames.map((f) => f.offload) })
        : await this.queue.writeBatch(data);
    } catch (e) {
      // A TAP whose interface is down (or moving to another namespace) refuses writes with EIO:
      // like a switch port without carrier, drop what was for it and keep the port.
      if ((e as { code?: string }).code === 'EIO') { this.linkDownDrops += given; return 0; }
      throw e;
    }
  }

  /**
   * Plans joining consecutive TCP segments of one flow (from a tunnel or a plain port) into
   * super-frames with their virtio_net_hdr in front, so the kernel behind this TAP receives
   * 64 KiB at a time, as from a NIC with GRO. Only batches of ordinary frames are joined
   * (super-frames already are what the kernel wants); false when nothing merges.
   */
  private plan(frames: readonly Frame[]): boolean {
    const n = frames.length;
    const data = this.groIn;
    data.length = 0;
    if (this.intact.length < n) this.intact = new Uint8Array(Math.max(n, this.intact.length * 2));
    const intact = this.intact;
    for (let i = 0; i < n; i++) {
      const f = frames[i]!;
      const o = f.offload;
      // Only ordinary frames merge; a tunnel's frames may say their bytes were checked (DATA_VALID).
      if (o !== undefined && !isDataValidOnly(o)) { data.length = 0; return false; }
      intact[i] = o === undefined ? 0 : 1;
      data.push(f.data);
    }
    const merged = this.gro!.planViews(data, intact);
    if (merged === 0) data.length = 0;
    return merged > 0;
  }

  /**
   * Writes the planned super-frames gathered: their rebuilt headers from a small buffer, the
   * payloads straight from where the frames lie (no copy into one buffer). True when the kernel
   * took them all; otherwise how many it took (the rest go through emitMerged's copy).
   */
  private writeGathered(): true | number {
    const bound = GroCoalescer.piecesHeaderBound(this.groIn.length, this.queue.vnetHdrSize);
    if (this.groHeaders.length < bound) this.groHeaders = new Uint8Array(Math.max(bound, this.groHeaders.length * 2));
    const p = this.gro!.emitPieces(this.groHeaders);
    if (p === null) return 0;
    const written = this.queue.writePieces(p.sources, p.pieces, p.ends, p.count);
    if (written < p.count) return written;
    this.coalesced += p.merged;
    this.groIn.length = 0;
    return true;
  }

  /** The planned super-frames copied into one buffer (see plan). */
  private emitMerged(): GroResult {
    const data = this.groIn;
    const bound = GroCoalescer.outputBound(data, this.queue.vnetHdrSize);
    let out = this.groOut;
    if (this.groOutBusy || out.length < bound) {
      out = new Uint8Array(Math.max(bound, out.length * 2, 1 << 16));
      if (!this.groOutBusy) this.groOut = out;
    }
    const r = this.gro!.emit(out);
    data.length = 0;
    this.coalesced += r.merged;
    return r;
  }

  async close(): Promise<void> {
    if (this.owned) await this.device.close();
  }
}

// Each frame's header is read into this one object; only a frame whose header asks for
// something (GSO or a partial checksum, the fewer: super-frames) gets a copy of its own.
const scratchHeader: VirtioNetHdr = { flags: 0, gsoType: 0, hdrLen: 0, gsoSize: 0, csumStart: 0, csumOffset: 0 };

/** The frame's offload header, only when it asks for something (GSO or a partial checksum). */
function offloadOf(batch: PacketBatch, i: number): FrameOffload | undefined {
  const h = batch.vnetInto(i, scratchHeader);
  return h !== undefined && (isGso(h) || needsCsum(h)) ? { ...h } : undefined;
}
