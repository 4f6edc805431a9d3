// Hosts with IPv6 turned off: the commands that add IPv6 by default (socks, http, demo, wg up)
// ask here first, then go on with IPv4 and one warning line instead of failing.
import { readFileSync } from 'node:fs';
import { inNetns, Netns, type NetnsRef } from '../netns.js';

function disableIpv6(which: 'all' | 'default'): string | undefined {
  try {
    return readFileSync(`/proc/sys/net/ipv6/conf/${which}/disable_ipv6`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/**
 * Why a device created in namespace `netns` (ours by default) could not have IPv6 addresses, or
 * undefined when it could. New devices take `default`; writing `all` sets it too, and a host
 * where `all` is 1 has said it wants no IPv6 either way.
 */
export function ipv6Unavailable(netns?: NetnsRef): string | undefined {
  const read = () => [disableIpv6('all'), disableIpv6('default')] as const;
  // /proc/sys/net shows the namespace of the thread that opens it.
  const [all, dflt] = netns === undefined ? read() : inNetns(netns, read);
  if (all === undefined && dflt === undefined) return 'this kernel runs without IPv6';
  if (all === '1') return 'IPv6 is disabled here (net.ipv6.conf.all.disable_ipv6 = 1)';
  if (dflt === '1') return 'IPv6 is disabled for new devices here (net.ipv6.conf.default.disable_ipv6 = 1)';
  return undefined;
}

/**
 * Whether the demos use IPv6 in the private namespaces they create (saying so when not): not if
 * it is disabled here (the host said so), or in a new namespace (whose defaults the kernel may
 * copy from this one or the initial one, net.core.devconf_inherit_init_net).
 */
export function demoUsesIpv6(): boolean {
  let why = ipv6Unavailable();
  if (!why) {
    using probe = Netns.create();
    why = ipv6Unavailable({ fd: probe.fd });
  }
  if (why) console.error(`tuntap: warning: ${why}, so the demo uses IPv4 only`);
  return !why;
}
