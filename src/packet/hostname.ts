// Host names that may be handed to another protocol. A name read from the network (a DNS
// question) may end up in an HTTP CONNECT line or a SOCKS request, so only the letters, digits,
// hyphens and dots of a host name pass (IDNA A-labels, `xn--…`, are made of those): never CR,
// LF, spaces, NULs or other bytes a text protocol would take for syntax. Every codec here that
// reads or writes a name checks it with these.
import net from 'node:net';

// A label starts and ends with a letter or digit (RFC 952 as RFC 1123 relaxed it): `-` alone or at
// either end is no host name, whatever a DNS question may carry.
const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/i;

/** True for one label of a host name (a DNS label holding a '.' byte, say, is none). */
export function isHostLabel(label: string): boolean {
  return LABEL.test(label);
}

/** True for a host name of LDH labels (1..63 each, no hyphen first or last; 253 in all), an optional final dot aside. */
export function isHostName(name: string): boolean {
  const bare = name.endsWith('.') ? name.slice(0, -1) : name;
  if (bare.length === 0 || bare.length > 253) return false;
  for (const label of bare.split('.')) if (!LABEL.test(label)) return false;
  return true;
}

/** An IP address literal or a valid host name: what may be named as a destination. */
export function isDestinationHost(host: string): boolean {
  return net.isIP(host) !== 0 || isHostName(host);
}
