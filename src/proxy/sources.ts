// Whose traffic the proxy serves. By default only this host's own: packets whose source is one of
// its addresses. Gateway mode adds the networks of other hosts that route through this one
// (containers, VMs, a LAN), each named explicitly; anything else that reaches the TUN (a
// neighbour on a host with ip_forward=1 and a route someone else installed) is not carried, so
// it never rides the upstream proxy and its credentials.
import { parseCidr } from '../addr.js';
import { listAddresses } from '../netlink/index.js';
import { inCidr } from './rules.js';

export interface SourcePolicyOptions {
  /** CIDRs whose forwarded traffic is served too (gateway mode). */
  gateway?: readonly string[];
  /** This host's addresses (default: asked from the kernel over rtnetlink). */
  localAddresses?: () => Uint8Array[];
  /** Least time between two refreshes of the local addresses (default 1 s). */
  refreshMs?: number;
}

function kernelAddresses(): Uint8Array[] {
  return listAddresses().map((a) => parseCidr(a.address).bytes);
}

export class SourcePolicy {
  private readonly gateway: { base: Buffer; bits: number }[];
  private readonly localAddresses: () => Uint8Array[];
  private readonly refreshMs: number;
  /** Local addresses as latin1 strings of their bytes. */
  private local = new Set<string>();
  private refreshedAt = -Infinity;

  constructor(opts: SourcePolicyOptions = {}) {
    this.gateway = (opts.gateway ?? []).map((c) => {
      const { bytes, prefixLength } = parseCidr(c);
      return { base: bytes, bits: prefixLength };
    });
    this.localAddresses = opts.localAddresses ?? kernelAddresses;
    this.refreshMs = opts.refreshMs ?? 1000;
    this.load();
  }

  /**
   * Whose packets come from `address` (4 or 16 bytes): this host's ('local'), a gateway
   * network's ('gateway'), or nobody served (false). An address not known as local refreshes
   * the list, at most once per refreshMs, so a flood of strangers costs one lookup a second.
   */
  classify(address: Uint8Array, now = Date.now()): 'local' | 'gateway' | false {
    const key = Buffer.from(address.buffer, address.byteOffset, address.length).toString('latin1');
    if (this.local.has(key)) return 'local';
    for (const g of this.gateway) if (inCidr(address, g)) return 'gateway';
    if (now - this.refreshedAt < this.refreshMs) return false;
    this.refresh(now);
    return this.local.has(key) ? 'local' : false;
  }

  /** True when packets from `address` are served at all. */
  allows(address: Uint8Array, now = Date.now()): boolean {
    return this.classify(address, now) !== false;
  }

  private refresh(now: number): void {
    this.refreshedAt = now;
    this.load();
  }

  private load(): void {
    try {
      this.local = new Set(this.localAddresses().map((a) => Buffer.from(a).toString('latin1')));
    } catch {
      // Out of descriptors for the netlink socket, say: keep the last list.
    }
  }
}
