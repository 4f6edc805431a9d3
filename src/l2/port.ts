// What the switch needs from a port: batches of Ethernet frames in, batches of frames out.
// TAP devices and tunnels (VXLAN) implement it; tests can implement it with arrays.
import { isGso, type VirtioNetHdr } from '../device/index.js';

/** virtio_net_hdr fields carried beside a frame when it is a GSO super-packet or needs a checksum. */
export type FrameOffload = Omit<VirtioNetHdr, 'numBuffers'>;

/** One Ethernet frame (from the destination MAC on, no FCS) with optional offload metadata. */
export interface Frame {
  data: Uint8Array;
  offload?: FrameOffload;
}

export interface Port {
  /** A short label for statistics and the CLI (the device name, "vxlan42", ...). */
  readonly name: string;
  /**
   * True when the port accepts super-packets (GSO) and partial checksums as they are, as a TAP
   * with vnet header and offloads does. Other ports get super-packets cut to wire size and
   * partial checksums finished by the switch.
   */
  readonly acceptsOffload: boolean;
  /**
   * Batches of received frames. A batch (and the bytes it points into) stays valid until the
   * iterator is advanced, so the switch forwards it before asking for the next one.
   */
  receive(signal: AbortSignal): AsyncIterable<readonly Frame[]>;
  /**
   * Sends a batch of frames; resolves when the port has taken them (backpressure), optionally
   * with how many it accepted (the rest were dropped, e.g. while the link is down). A rejection
   * means the port is broken and takes it off the switch. The array is the caller's again once
   * the promise settles (the switch refills it for its next batch): keep copies, not the array.
   */
  send(frames: readonly Frame[]): Promise<number | void>;
  close(): Promise<void>;
}

/** Frames with a GSO type other than NONE are super-packets only offload-capable ports take. */
export function isSuperPacket(frame: Frame): boolean {
  return frame.offload !== undefined && isGso(frame.offload);
}
