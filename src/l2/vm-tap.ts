// Persistent TAPs for virtual machines, like `tunctl -u USER` / `ip tuntap add ... user USER`:
// root creates the device once, hands it to an unprivileged user and lets go of it; QEMU,
// running as that user, later opens it by name (`-netdev tap,ifname=NAME,script=no,...`),
// one fd per queue, and negotiates the vnet header and offloads itself.
import { execFileSync } from 'node:child_process';
import { createPersistent } from '../device/index.js';
import { deleteTun, getLink } from '../netlink/index.js';
import type { NetnsRef } from '../netns.js';
import { UserError } from '../errors.js';

export interface VmTapOptions {
  /** Interface name QEMU will be given (ifname=...). */
  name: string;
  /** User (uid or name) allowed to attach without CAP_NET_ADMIN. */
  user?: number | string;
  /** Group (gid or name) allowed to attach. */
  group?: number | string;
  /** Queues QEMU will open (queues=N, mq=on); more than 1 creates an IFF_MULTI_QUEUE device. */
  queues?: number;
  /** Create with IFF_VNET_HDR (default true): QEMU's virtio-net then passes offloads through. */
  vnetHdr?: boolean;
  netns?: NetnsRef;
}

function resolveId(kind: 'user' | 'group', value: number | string): number {
  if (typeof value === 'number') return value;
  if (/^\d+$/.test(value)) return Number(value);
  try {
    return Number(execFileSync('id', [kind === 'user' ? '-u' : '-g', value], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
  } catch {
    if (kind === 'group') {
      try {
        const line = execFileSync('getent', ['group', value], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
        return Number(line.split(':')[2]);
      } catch { /* fall through */ }
    }
    throw new UserError(`no ${kind} named "${value}" on this system`);
  }
}

/** Creates the persistent TAP (EBUSY if the name exists) and returns its name. */
export function createVmTap(opts: VmTapOptions): string {
  const queues = opts.queues ?? 1;
  if (!Number.isInteger(queues) || queues < 1 || queues > 256) throw new RangeError(`queues must be 1..256, got ${queues}`);
  return createPersistent('tap', {
    name: opts.name, netns: opts.netns, multiQueue: queues > 1, vnetHdr: opts.vnetHdr ?? true,
    owner: opts.user === undefined ? undefined : resolveId('user', opts.user),
    group: opts.group === undefined ? undefined : resolveId('group', opts.group),
  });
}

/** Removes a persistent TAP made by createVmTap (refuses devices that are not TAPs). */
export function deleteVmTap(name: string, opts: { netns?: NetnsRef } = {}): void {
  const link = getLink(name, { netns: opts.netns });
  if (link.tun?.type !== 'tap') throw new Error(`${name} is not a TAP device`);
  deleteTun(name, { netns: opts.netns });
}
