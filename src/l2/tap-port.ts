// A TAP device as a switch port. With `offload` the device carries a virtio_net_hdr and accepts
// TSO/checksum offload, so the kernel hands us (and takes back) 64 KiB TCP super-packets: one
// read and one write per 64 KiB instead of per 1500 bytes, which is what makes a bridge in
// JavaScript keep up with the kernel's.
import { openTap, type DeviceOptions, type PacketBatch, type TunDevice } from '../device/index.js';
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
  private readonly vnetSize: number;
  private readonly owned: boolean;

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

  async send(frames: readonly Frame[]): Promise<void> {
    const data = frames.map((f) => f.data);
    if (this.vnetSize === 0) await this.device.writeBatch(data);
    else await this.device.writeBatch(data, { vnet: frames.map((f) => f.offload) });
  }

  async close(): Promise<void> {
    if (this.owned) await this.device.close();
  }
}
