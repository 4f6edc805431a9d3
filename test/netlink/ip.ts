// iproute2 as the independent reader and writer for the netlink tests.
import { spawnSync } from 'node:child_process';
import { nsExec } from '../helpers/netns.js';
import { asUser } from '../helpers/user.js';

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

// Attaches to a tun/tap device as an unprivileged user: TUNSETIFF with the device's flags.
const attachScript = `
import fcntl, struct, sys
name, flags = sys.argv[1], int(sys.argv[2])
try:
    fd = open('/dev/net/tun', 'r+b', buffering=0)
    fcntl.ioctl(fd, 0x400454ca, struct.pack('16sH', name.encode(), flags))
    print('attached')
except OSError as e:
    print('error', e.errno)
`;

/** Runs the attach in `ns` as uid/gid (no supplementary groups); "attached" or "error ERRNO". */
export function attachAs(ns: string, uid: number, gid: number, name: string, flags: number): string {
  const r = spawnSync('ip', ['netns', 'exec', ns, ...asUser(uid, gid, ['/usr/bin/python3', '-c', attachScript, name, String(flags)])],
    { encoding: 'utf8' });
  return `${r.stdout}${r.stderr}`.trim();
}
