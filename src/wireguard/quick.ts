// What wg-quick does, over our own layers: hooks, the interface, addresses, MTU, and the routes
// and rules routing.ts plans for every peer's AllowedIPs.
import { spawnSync } from 'node:child_process';
import { lookup } from 'node:dns/promises';
import { configureInterface } from '../netlink/index.js';
import { UserError } from '../errors.js';
import { WireGuardInterface } from './interface.js';
import { routingPlan, installRouting, removePolicy } from './routing.js';
import type { WgConfig } from './config.js';
import type { PeerConfig } from './peer.js';
import type { Timers } from './constants.js';

export interface QuickOptions {
  name: string;
  /** `ip netns` name to run everything in (hooks run there too). */
  netns?: string;
  log?: (line: string) => void;
  timers?: Partial<Timers>;
  /** false where IPv6 is disabled: IPv6 AllowedIPs then get no route and no rule (the kernel refuses them). */
  ipv6?: boolean;
}

export interface QuickInterface {
  readonly iface: WireGuardInterface;
  /** PreDown, remove rules, close the interface (routes and addresses go with it), PostDown. */
  down(): Promise<void>;
}

function runHooks(hooks: string[], name: string, netns: string | undefined, log: (l: string) => void): void {
  for (const hook of hooks) {
    const cmd = hook.replaceAll('%i', name);
    log(`[#] ${cmd}`);
    const args = netns ? ['ip', ['netns', 'exec', netns, 'sh', '-c', cmd]] as const : ['sh', ['-c', cmd]] as const;
    const r = spawnSync(args[0], [...args[1]], { stdio: 'inherit' });
    if (r.status !== 0) throw new UserError(`hook failed (exit ${r.status}): ${cmd}`);
  }
}

/** The config's peers as the engine takes them, endpoint host names resolved. */
export async function resolvePeers(cfg: WgConfig): Promise<PeerConfig[]> {
  const out: PeerConfig[] = [];
  for (const p of cfg.peers) {
    let endpoint: PeerConfig['endpoint'];
    if (p.endpoint) {
      const { address } = await lookup(p.endpoint.host).catch(() => {
        throw new UserError(`${cfg.file}:${p.line}: Endpoint: cannot resolve host "${p.endpoint!.host}"`);
      });
      endpoint = { address, port: p.endpoint.port };
    }
    out.push({ publicKey: p.publicKey, presharedKey: p.presharedKey, endpoint, allowedIps: p.allowedIps, persistentKeepalive: p.persistentKeepalive });
  }
  return out;
}

export async function quickUp(cfg: WgConfig, opts: QuickOptions): Promise<QuickInterface> {
  const log = opts.log ?? (() => {});
  const { name, netns } = opts;
  const i = cfg.interface;
  const peers = await resolvePeers(cfg);
  runHooks(i.preUp, name, netns, log);
  const plan = routingPlan(cfg, opts.ipv6 !== false);
  const iface = await WireGuardInterface.open({
    name, netns, privateKey: i.privateKey, listenPort: i.listenPort, mtu: i.mtu ?? 1420, timers: opts.timers,
    fwmark: plan.fwmark, peers,
  });
  try {
    log(`[#] addresses ${i.addresses.join(', ') || '(none)'}, mtu ${i.mtu ?? 1420}, up`);
    configureInterface(name, { mtu: i.mtu ?? 1420, addresses: i.addresses, up: true }, { netns });
    installRouting(name, plan, netns, log);
    runHooks(i.postUp, name, netns, log);
  } catch (e) {
    if (plan.policy) removePolicy(plan.policy.table, netns);
    await iface.close();
    throw e;
  }
  let downed = false;
  return {
    iface,
    async down() {
      if (downed) return;
      downed = true;
      try { runHooks(i.preDown, name, netns, log); } catch (e) { log(String(e)); }
      // The rules of the table the interface marks its packets with now: a reload may have
      // moved or dropped the ones made here.
      try { removePolicy(iface.fwmark, netns); } catch (e) { log(String(e)); }
      await iface.close();
      try { runHooks(i.postDown, name, netns, log); } catch (e) { log(String(e)); }
    },
  };
}
