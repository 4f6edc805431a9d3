// Host names that may be handed to another protocol. A name comes from a DNS query the
// application sent (fake-IP mode) and ends up inside an HTTP CONNECT line or a SOCKS request, so
// only the letters, digits, hyphens and dots of a host name are let through (IDNA A-labels,
// `xn--…`, are made of those): never CR, LF, spaces, NULs or other bytes a text protocol
// would take for syntax.
import net from 'node:net';

const LABEL = /^[a-z0-9-]{1,63}$/i;

/** True for a host name of LDH labels (1..63 each, 253 in all), an optional final dot aside. */
export function isHostName(name: string): boolean {
  const bare = name.endsWith('.') ? name.slice(0, -1) : name;
  if (bare.length === 0 || bare.length > 253) return false;
  for (const label of bare.split('.')) if (!LABEL.test(label)) return false;
  return true;
}

/** An IP address literal or a valid host name: what may be named as a destination upstream. */
export function isDestinationHost(host: string): boolean {
  return net.isIP(host) !== 0 || isHostName(host);
}

/** The text with control characters escaped, so a refused name can be logged on one line. */
export function printable(text: string, max = 80): string {
  const shown = text.length > max ? `${text.slice(0, max)}…` : text;
  return JSON.stringify(shown);
}
