// The UDP socket under a tunnel port: node:dgram, bound synchronously inside the requested
// network namespace. Datagrams that arrive between two reads are handed over as one batch.
import dgram from 'node:dgram';
import { isIPv6 } from 'node:net';
import { inNetns, type NetnsRef } from '../netns.js';

export interface Datagram {
  data: Uint8Array;
  address: string;
  port: number;
}

export interface UdpTransportOptions {
  address: string;
  port: number;
  netns?: NetnsRef;
  /** Datagrams held while the reader is busy; beyond this they are dropped (counted). */
  maxQueued?: number;
}

export class UdpTransport {
  private readonly socket: dgram.Socket;
  private queue: Datagram[] = [];
  private wake?: () => void;
  private closed = false;
  private readonly maxQueued: number;
  /** Datagrams dropped because the reader fell behind. */
  overruns = 0;

  constructor(opts: UdpTransportOptions) {
    this.maxQueued = opts.maxQueued ?? 8192;
    const type = isIPv6(opts.address) ? 'udp6' : 'udp4';
    // An IP literal needs no resolver; answering synchronously makes bind() create the socket
    // right now, inside the namespace, rather than on a later tick outside it.
    const lookup = (host: string, _o: unknown, cb: (e: Error | null, a: string, f: number) => void) =>
      cb(null, host, type === 'udp6' ? 6 : 4);
    this.socket = dgram.createSocket({ type, reuseAddr: false, lookup: lookup as never,
      recvBufferSize: 4 << 20, sendBufferSize: 4 << 20 } as dgram.SocketOptions);
    const bind = () => this.socket.bind({ address: opts.address, port: opts.port, exclusive: true });
    if (opts.netns !== undefined) inNetns(opts.netns, bind); else bind();
    this.socket.on('message', (msg, rinfo) => {
      if (this.queue.length >= this.maxQueued) { this.overruns++; return; }
      this.queue.push({ data: msg, address: rinfo.address, port: rinfo.port });
      const w = this.wake;
      if (w) { this.wake = undefined; w(); }
    });
    this.socket.on('error', () => { /* reported per send; a receive error ends nothing */ });
  }

  /** Resolves once the socket is bound (errors such as EADDRINUSE reject). */
  ready(): Promise<void> {
    return new Promise((resolve, reject) => {
      try { this.socket.address(); resolve(); return; } catch { /* not yet bound */ }
      const onError = (e: Error) => { this.socket.off('listening', onListening); reject(e); };
      const onListening = () => { this.socket.off('error', onError); resolve(); };
      this.socket.once('listening', onListening);
      this.socket.once('error', onError);
    });
  }

  async *batches(signal: AbortSignal): AsyncGenerator<Datagram[]> {
    const onAbort = () => { const w = this.wake; this.wake = undefined; w?.(); };
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      while (!signal.aborted && !this.closed) {
        if (this.queue.length === 0) {
          await new Promise<void>((resolve) => { this.wake = resolve; });
          continue;
        }
        const batch = this.queue;
        this.queue = [];
        yield batch;
      }
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }

  /** Sends every datagram (payload given as pieces, sent without joining them first). */
  send(items: readonly { pieces: Uint8Array[]; address: string; port: number }[]): Promise<void> {
    if (items.length === 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      let left = items.length;
      let failure: Error | undefined;
      const done = (e: Error | null) => {
        if (e && !failure) failure = e;
        if (--left === 0) { if (failure) reject(failure); else resolve(); }
      };
      for (const it of items) this.socket.send(it.pieces, it.port, it.address, done);
    });
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    const w = this.wake; this.wake = undefined; w?.();
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }
}
