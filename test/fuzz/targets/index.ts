// Every fuzz target, grouped by layer in the order of the layers (ARCHITECTURE.md).
import type { Layer, Target } from '../framework.js';
import { packetTargets } from './packet.js';
import { filterTarget } from './filter.js';
import { netlinkTargets } from './netlink.js';
import { wireguardReceiveTarget } from './wireguard.js';
import { configTarget, uapiTarget } from './wireguard-text.js';
import { proxyPacketTargets } from './proxy.js';
import { httpReplyTarget, socks4aReplyTarget, socks5ReplyTarget } from './proxy-upstream.js';

export const targets: readonly Target[] = [
  ...packetTargets, filterTarget,
  ...netlinkTargets,
  wireguardReceiveTarget, uapiTarget, configTarget,
  ...proxyPacketTargets, socks5ReplyTarget, socks4aReplyTarget, httpReplyTarget,
];

export const layers: readonly Layer[] = ['packet', 'netlink', 'wireguard', 'proxy'];

export function targetByName(name: string): Target {
  const t = targets.find((x) => x.name === name);
  if (!t) throw new Error(`no fuzz target "${name}" (have: ${targets.map((x) => x.name).join(', ')})`);
  return t;
}

/** Targets named by `names` (target or layer names); all of them when none are given. */
export function selectTargets(names: readonly string[]): Target[] {
  if (names.length === 0) return [...targets];
  const unknown = names.filter((n) => !layers.includes(n as Layer) && !targets.some((t) => t.name === n));
  if (unknown.length > 0) throw new Error(`unknown fuzz target or layer: ${unknown.join(', ')} (layers: ${layers.join(', ')}; targets: ${targets.map((t) => t.name).join(', ')})`);
  return targets.filter((t) => names.includes(t.name) || names.includes(t.layer));
}
