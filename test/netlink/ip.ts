// iproute2 as the independent reader and writer for the netlink tests.
import { nsExec } from '../helpers/netns.js';

/** `ip -j ...` inside `ns`, parsed. */
export function ipJson<T = any>(ns: string, ...args: string[]): T {  // eslint-disable-line @typescript-eslint/no-explicit-any
  const out = nsExec(ns, 'ip', '-j', ...args).trim();
  return (out ? JSON.parse(out) : []) as T;
}

/** `ip ...` inside `ns` (throws on failure). */
export function ip(ns: string, ...args: string[]): string {
  return nsExec(ns, 'ip', ...args);
}

/** ip prints host routes and prefixes without "/32" / "/128"; tuntap always gives the length. */
export function withLength(dst: string, family: 4 | 6): string {
  if (dst === 'default' || dst.includes('/')) return dst;
  return `${dst}/${family === 4 ? 32 : 128}`;
}
