// One call to bring an interface to a wanted state: MTU, MAC, addresses, up, routes. Used by the
// demo, tests and applications instead of `ip`. Re-running it with the same settings is harmless.
import type { NetnsRef } from '../netns.js';
import { addAddress, type AddressSpec } from './addresses.js';
import { setLink, type LinkRef } from './links.js';
import { replaceRoute, type RouteSpec } from './routes.js';
import { withNetlink, type Netlink } from './socket.js';

export interface InterfaceConfig {
  mtu?: number;
  /** MAC address (TAP/veth). */
  mac?: string;
  addresses?: (string | AddressSpec)[];
  up?: boolean;
  /** Routes; `dev` defaults to this interface. Added with replace semantics. */
  routes?: (Omit<RouteSpec, 'dev'> & { dev?: LinkRef })[];
  txqueuelen?: number;
}

export function configureInterface(name: LinkRef, config: InterfaceConfig, opts: { netns?: NetnsRef; netlink?: Netlink } = {}): void {
  withNetlink(opts, (nl) => {
    const target = { netlink: nl };
    if (config.mtu !== undefined || config.mac !== undefined || config.txqueuelen !== undefined) {
      setLink(name, { mtu: config.mtu, address: config.mac, txqueuelen: config.txqueuelen }, target);
    }
    for (const address of config.addresses ?? []) addAddress(name, address, { ...target, replace: true });
    if (config.up !== undefined) setLink(name, { up: config.up }, target);
    for (const route of config.routes ?? []) replaceRoute({ ...route, dev: route.dev ?? name }, target);
  });
}
