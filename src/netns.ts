// Running code inside a network namespace. setns() changes only the calling thread, so the body
// runs synchronously on the JS thread: devices and sockets opened there belong to the namespace
// and keep belonging to it after we switch back.
import { addon } from './native.js';
import { call } from './errors.js';

interface NetnsNative {
  openPath(path: string): number;
  setns(fd: number): void;
  closeFd(fd: number): void;
  unshareNet(): void;
}
const native = addon as NetnsNative;

/** A namespace given by `ip netns` name, a path (/proc/PID/ns/net), a pid, or an open fd. */
export type NetnsRef = string | number | { fd: number };

function nsPath(ref: string | number): string {
  if (typeof ref === 'number') return `/proc/${ref}/ns/net`;
  return ref.includes('/') ? ref : `/var/run/netns/${ref}`;
}

/** Opens a namespace fd (caller closes it with closeNetns). */
export function openNetns(ref: string | number): number {
  return call(`opening network namespace ${ref}`, () => native.openPath(nsPath(ref)),
    (code) => (code === 'ENOENT' ? 'no such namespace' : undefined));
}

export function closeNetns(fd: number): void {
  native.closeFd(fd);
}

/**
 * Runs `fn` with the JS thread inside namespace `ref`, then returns to the original namespace.
 * `fn` must be synchronous: an await would let other code run in the wrong namespace.
 */
export function inNetns<T>(ref: NetnsRef, fn: () => T): T {
  if (ref === undefined || ref === null) return fn();
  const target = typeof ref === 'object' ? ref.fd : openNetns(ref);
  const home = native.openPath('/proc/thread-self/ns/net');
  try {
    call('entering network namespace', () => native.setns(target));
    try {
      const result = fn();
      if (result instanceof Promise) throw new TypeError('inNetns: the body must be synchronous');
      return result;
    } finally {
      native.setns(home);
    }
  } finally {
    native.closeFd(home);
    if (typeof ref !== 'object') native.closeFd(target);
  }
}

/** A private network namespace held open by an fd; it vanishes when closed (unless bind-mounted). */
export class Netns {
  private constructor(readonly fd: number) {}

  /** Creates a new, empty network namespace without touching the caller's own. */
  static create(): Netns {
    const home = native.openPath('/proc/thread-self/ns/net');
    try {
      call('creating a network namespace', () => native.unshareNet());
      try {
        return new Netns(native.openPath('/proc/thread-self/ns/net'));
      } finally {
        native.setns(home);
      }
    } finally {
      native.closeFd(home);
    }
  }

  /** Runs a synchronous body inside this namespace (spawned children stay inside it). */
  run<T>(fn: () => T): T {
    return inNetns({ fd: this.fd }, fn);
  }

  /** A path other programs can open while this object lives (e.g. `nsenter --net=PATH`). */
  get path(): string {
    return `/proc/${process.pid}/fd/${this.fd}`;
  }

  close(): void {
    native.closeFd(this.fd);
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
