// A TUN queue over a packet pair instead of a TUN: two connected AF_UNIX SOCK_SEQPACKET sockets
// (native/packet_pair.cc), one message per packet as a TUN's reads and writes are. The queue's
// own code (batched read and write, split and coalesce) runs unchanged on one end, while the
// other end plays the kernel's side of the device; nothing reaches any network stack, no device
// or route is made. For warming up and testing that code only: not part of tuntap/device.
import { native } from './native.js';
import { Queue, type QueueHandle } from './queue.js';

export interface QueuePair {
  /** The queue as a TUN's would be, with the options given. */
  readonly device: Queue;
  /**
   * The kernel's side: a raw queue with the same vnet header, whose writes (header and packet,
   * `postRanges`) are what `device` reads, and whose reads are what `device` wrote.
   */
  readonly wire: Queue;
  /** Closes both ends (their fds and poll handles). */
  close(): Promise<void>;
}

export type QueuePairOptions = Omit<QueueHandle, 'fd' | 'index' | 'packetInfo'>;

/** Opens a pair; `opts` are the device end's queue options (packet information is not offered). */
export function openQueuePair(opts: QueuePairOptions): QueuePair {
  const [deviceFd, wireFd] = native.packetPairOpen();
  let device: Queue | undefined;
  try {
    device = new Queue({ ...opts, fd: deviceFd, index: 0, packetInfo: false });
    const wire = new Queue({
      fd: wireFd, name: `${opts.name}-wire`, mode: opts.mode, index: 0, packetInfo: false,
      vnetHdrSize: opts.vnetHdrSize, vnetLittleEndian: opts.vnetLittleEndian, batchSize: opts.batchSize, readSize: opts.readSize,
    });
    return { device, wire, close: async () => { await Promise.all([device!.close(), wire.close()]); } };
  } catch (e) {
    // A queue owns its fd only once constructed.
    if (device) void device.close();
    else native.closeFd(deviceFd);
    native.closeFd(wireFd);
    throw e;
  }
}
