// The slice of the addon the device layer uses (native/tun.cc, native/queue.cc).
import { addon } from '../native.js';
import type { NativePoller } from '../readiness.js';

/** A queue fd: the shared poller calls (read drains into the read buffers) plus its writes. */
export interface NativeQueue extends NativePoller {
  setReadBuffers(buffer: Buffer, offsets: Uint32Array, lengths: Uint32Array, headerLength: number, readSize: number): void;
  write(packets: readonly Uint8Array[], start: number, heads?: Uint8Array, headLength?: number): number;
  /** Writes packets start..end-1 of the ranges. */
  writeRanges(buffer: Uint8Array, offsets: Uint32Array, lengths: Uint32Array, start: number, end: number, heads?: Uint8Array, headLength?: number): number;
  /**
   * Writes packets start..count-1, each gathered with one writev from (source, offset, length)
   * triples in `pieces` (packet i is pieces [ends[i - 1], ends[i])); returns how many went out.
   */
  writePieces(sources: readonly Uint8Array[], pieces: Uint32Array, ends: Uint32Array, start: number, count: number): number;
  /** Stops polling and forgets the fd without closing it (handed to another thread). */
  release(): void;
}

export interface DeviceNative {
  tunOpen(name: string, flags: number, ifindex: number): { fd: number; name: string };
  tunIoctlValue(fd: number, request: string, value: number): void;
  tunIoctlInt(fd: number, request: string, value?: number): number;
  tunGetIff(fd: number): { name: string; flags: number };
  tunSetQueue(fd: number, attach: boolean): void;
  tunGetHwaddr(fd: number): Buffer;
  tunSetHwaddr(fd: number, mac: Uint8Array): void;
  tunSetTxFilter(fd: number, flags: number, addresses: Uint8Array): void;
  tunAttachFilter(fd: number, program: Buffer): void;
  tunDetachFilter(fd: number): void;
  tunGetFilter(fd: number, ours?: Buffer): { length: number; ours: boolean };
  tunControlSocket(): number;
  tunIfGet(sock: number, ifname: string, field: 'mtu' | 'flags' | 'index' | 'txqlen'): number;
  tunIfSet(sock: number, ifname: string, field: 'mtu' | 'flags' | 'txqlen', value: number): void;
  TunQueue: new (fd: number) => NativeQueue;
  /** Two connected AF_UNIX SOCK_SEQPACKET ends a TunQueue may run over instead of a TUN (packet-pair.ts). */
  packetPairOpen(): [number, number];
  openPath(path: string): number;
  closeFd(fd: number): void;
}

export const native = addon as DeviceNative;
