// What wg-quick does, over our own layers: hooks, the interface, addresses, MTU and routes for
// every peer's AllowedIPs (a default route goes into its own table behind fwmark rules, as
// wg-quick does it, so the tunnel's own UDP packets still leave by the main table).
import { spawnSync } from 'node:child_process';
import { lookup } from 'node:dns/promises';
import { configureInterface, replaceRoute, addRule, deleteRule, type RuleSpec } from '../netlink/index.js';
import { parseCidr } from '../addr.js';
import { UserError } from '../errors.js';
import { WireGuardInterface } from './interface.js';
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

const MAIN_TABLE = 254;

function runHooks(hooks: string[], name: string, netns: string | undefined, log: (l: string) => void): void {
  for (const hook of hooks) {
    const cmd = hook.replaceAll('%i', name);
    log(`[#] ${cmd}`);
    const args = netns ? ['ip', ['netns', 'exec', netns, 'sh', '-c', cmd]] as const : ['sh', ['-c', cmd]] as const;
    const r = spawnSync(args[0], [...args[1]], { stdio: 'inherit' });
    if (r.status !== 0) throw new UserError(`hook failed (exit ${r.status}): ${cmd}`);
  }
}

async function resolvePeers(cfg: WgConfig): Promise<PeerConfig[]> {
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
  const allowed = cfg.peers.flatMap((p) => p.allowedIps);
  const table = i.table ?? 'auto';
  const hasDefault = allowed.some((a) => parseCidr(a).prefixLength === 0);
  const policy = table === 'auto' && hasDefault;
  const policyTable = i.fwmark || 51820;
  const iface = await WireGuardInterface.open({
    name, netns, privateKey: i.privateKey, listenPort: i.listenPort, mtu: i.mtu ?? 1420, timers: opts.timers,
    fwmark: policy ? policyTable : i.fwmark, peers,
  });
  const target = { netns };
  const rules: RuleSpec[] = [];
  try {
    log(`[#] addresses ${i.addresses.join(', ') || '(none)'}, mtu ${i.mtu ?? 1420}, up`);
    configureInterface(name, { mtu: i.mtu ?? 1420, addresses: i.addresses, up: true }, target);
    if (table !== 'off') {
      const tableId = policy ? policyTable : table === 'auto' || table === 'main' ? MAIN_TABLE : Number(table);
      // Most specific first, as wg-quick does.
      const sorted = [...new Set(allowed)].filter((a) => opts.ipv6 !== false || parseCidr(a).family === 4)
        .sort((a, b) => parseCidr(b).prefixLength - parseCidr(a).prefixLength);
      for (const dst of sorted) {
        log(`[#] route ${dst} dev ${name}${tableId !== MAIN_TABLE ? ` table ${tableId}` : ''}`);
        replaceRoute({ dst, dev: name, table: tableId }, { netns });
      }
      if (policy) {
        for (const family of [4, 6] as const) {
          if (!sorted.some((a) => parseCidr(a).prefixLength === 0 && parseCidr(a).family === family)) continue;
          const viaTunnel: RuleSpec = { family, table: policyTable, fwmark: policyTable, invert: true };
          const keepMain: RuleSpec = { family, table: MAIN_TABLE, suppressPrefixLength: 0 };
          for (const r of [viaTunnel, keepMain]) {
            addRule(r, { netns });
            rules.push(r);
          }
          log(`[#] rules: not fwmark ${policyTable} table ${policyTable}; table main suppress_prefixlength 0 (IPv${family})`);
        }
      }
    }
    runHooks(i.postUp, name, netns, log);
  } catch (e) {
    for (const r of rules) { try { deleteRule(r, { netns }); } catch { /* gone */ } }
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
      for (const r of rules) { try { deleteRule(r, { netns }); } catch { /* already gone */ } }
      await iface.close();
      try { runHooks(i.postDown, name, netns, log); } catch (e) { log(String(e)); }
    },
  };
}
