// `tuntap socks`: tun2socks. Carries every TCP connection (and with --udp every UDP flow) that
// enters a TUN through a SOCKS5/SOCKS4a proxy. `tuntap http` (http.ts) is the same with an HTTP
// CONNECT upstream. Shows a live view of connections and rates, or JSON lines with --json.
import { parseArgs, intOption, UsageError, type ParsedArgs } from './args.js';
import { parseUpstream, describeUpstream, type Upstream } from '../proxy/upstream.js';
import { PASSWORD_ENV, redactor, resolvePassword } from '../proxy/credentials.js';
import { parseCidr } from '../addr.js';
import { parseRule, readRulesFile, type Rule } from '../proxy/rules.js';
import { startService, type Service } from '../proxy/service.js';
import type { ProxyStats, TunProxy } from '../proxy/engine.js';
import { tellManager, reloadOnHangup } from './service-manager.js';
import { ipv6Unavailable } from './ipv6.js';
import { opsHelp, OPS_VALUES, opsOptions, logLine, serveMetrics, startControl, startMetrics } from './ops.js';
import { proxyFamilies } from '../ops/proxy-metrics.js';
import { proxySnapshot } from '../ops/snapshot.js';

// Each command takes its own kind of proxy (and direct or reject, which need none).
const schemes = {
  socks: 'socks5://[user:pass@]host[:1080] (socks5h too), socks4a://host[:1080]\n' +
    '                       (socks4 too), direct, or reject; an HTTP proxy is tuntap http\'s',
  http: 'http://[user:pass@]host[:8080], direct, or reject; a SOCKS proxy is tuntap socks\'s',
};

const help = (command: 'socks' | 'http', example: string): string => `usage: tuntap ${command} --proxy ${example} [options]

  --proxy URL          upstream: ${schemes[command]}
  --proxy-password-file FILE
                       the proxy password, read from FILE (or set ${PASSWORD_ENV}): unlike
                       one in the URL, not visible to other users in ps
  --route              install policy routing so this host's traffic enters the TUN (removed on exit)
  --gateway CIDR       gateway mode: also carry traffic this host forwards from CIDR (repeatable;
                       needs ip_forward=1); without it, other hosts' traffic is never carried
  --udp                relay UDP too (SOCKS5 UDP ASSOCIATE, or directly with --proxy direct)
  --dns MODE           auto (UDP when it works, else over TCP) | tcp | fake-ip | off   [auto]
  --dns-server ADDR    send DNS-over-TCP queries to ADDR instead of the address asked
  --fake-ip CIDR       fake-IP pool (repeatable) [198.19.128.0/17, fd00:fa4e::/96]
  --rule RULE          "proxy|direct|reject [cidr=…] [domain=…] [port=…]" (repeatable, first match wins)
  --rules-file FILE    more rules, one a line (# comments), after the --rule ones; read again on
                       SIGHUP (systemctl reload): new connections follow them, live ones stay
  --name NAME          TUN name or pattern [tunproxy%d]
  --mtu N              TUN MTU [65000]: the TUN carries no real link, and larger means fewer packets through the NAT
  --offload MODE       raw (TSO super-packets, translated once each) | split (the device splits
                       and coalesces) | none (full checksums, one packet per MTU)   [raw]
  --no-offload         the same as --offload none
  --address4 ADDR      TUN IPv4 address; the next one is the NAT's fake peer [198.19.0.1]
  --address6 ADDR      TUN IPv6 address [fd00:7475::1]; --no-ipv6 to skip IPv6
  --bind4/--bind6 ADDR source address for upstream sockets (with --route: detected)
  --max-sessions N     concurrent TCP sessions [20000, or what the open-files limit holds]
  --idle-timeout SEC   close idle connections [300]
  --interval SEC       status interval [1]
  --json               one JSON stats line per interval on stdout
  --quiet              no status output (errors still go to stderr)
${opsHelp(23)}`;

function fmtRate(bytesPerSec: number): string {
  const bits = bytesPerSec * 8;
  if (bits >= 1e9) return `${(bits / 1e9).toFixed(2)} Gbit/s`;
  if (bits >= 1e6) return `${(bits / 1e6).toFixed(1)} Mbit/s`;
  if (bits >= 1e3) return `${(bits / 1e3).toFixed(1)} kbit/s`;
  return `${bits.toFixed(0)} bit/s`;
}

function fmtBytes(n: number): string {
  if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(2)} GiB`;
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(1)} MiB`;
  if (n >= 2 ** 10) return `${(n / 2 ** 10).toFixed(1)} KiB`;
  return `${n} B`;
}

export async function runProxyCommand(argv: string[], command: 'socks' | 'http'): Promise<number> {
  const example = command === 'socks' ? 'socks5://user:pass@host:1080' : 'http://user:pass@host:3128';
  const args: ParsedArgs = parseArgs(argv, {
    values: ['proxy', 'proxy-password-file', 'rules-file', 'dns', 'dns-server', 'offload', 'name', 'mtu', 'address4', 'address6', 'bind4', 'bind6',
      'max-sessions', 'idle-timeout', 'interval', ...OPS_VALUES],
    flags: ['route', 'udp', 'no-ipv6', 'no-offload', 'quiet', 'json'],
    repeat: ['fake-ip', 'rule', 'gateway'],
  });
  const o = args.options;
  if (o.help) { console.log(help(command, example)); return 0; }
  if (typeof o.proxy !== 'string') throw new UsageError(`--proxy is required (e.g. --proxy ${example})`);
  let upstream: Upstream;
  let passwordFrom: string | undefined;
  const early: string[] = [];
  try {
    const resolved = resolvePassword(parseUpstream(o.proxy),
      typeof o['proxy-password-file'] === 'string' ? { file: o['proxy-password-file'] } : {});
    upstream = resolved.upstream;
    passwordFrom = resolved.passwordFrom;
    if (resolved.warning) early.push(`warning: ${resolved.warning}`);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  if (passwordFrom === 'url') {
    // Overwrites the argv that /proc/PID/cmdline (ps) shows; it was visible until now.
    process.title = `tuntap ${command}`;
    early.push(`warning: a password in --proxy is visible to other users while the command starts; use --proxy-password-file or ${PASSWORD_ENV}`);
  }
  const gateway = (o.gateway ?? []) as string[];
  for (const cidr of gateway) {
    try { parseCidr(cidr); } catch (e) { throw new UsageError(`--gateway: ${(e as Error).message}`); }
  }
  if (command === 'http' && upstream.kind !== 'http' && upstream.kind !== 'direct' && upstream.kind !== 'reject') {
    throw new UsageError('tuntap http takes an http:// proxy, direct or reject (tuntap socks carries SOCKS)');
  }
  if (command === 'socks' && upstream.kind === 'http') throw new UsageError('tuntap socks takes a socks5:// or socks4a:// proxy, direct or reject (tuntap http carries HTTP CONNECT)');
  const dns = (o.dns ?? 'auto') as string;
  if (!['auto', 'tcp', 'fake-ip', 'off'].includes(dns)) throw new UsageError(`--dns must be auto, tcp, fake-ip or off, not "${dns}"`);
  const offload = o['no-offload'] === true ? 'none' : (o.offload ?? 'raw') as string;
  if (!['raw', 'split', 'none'].includes(offload)) throw new UsageError(`--offload must be raw, split or none, not "${offload}"`);
  let commandRules: Rule[];
  try {
    commandRules = ((o.rule ?? []) as string[]).map(parseRule);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const rulesFile = typeof o['rules-file'] === 'string' ? o['rules-file'] : undefined;
  const rules = [...commandRules, ...(rulesFile ? readRulesFile(rulesFile) : [])];
  const json = o.json === true;
  const quiet = o.quiet === true;
  const redact = redactor([upstream.password]);
  const ops = opsOptions(o, { redact });
  const logger = ops.logger;
  const log = (line: string): void => logLine(logger, line);
  for (const line of early) log(line);
  // A reader of --json that goes away must not stop the service.
  process.stdout.on('error', () => { /* nothing to report it to */ });
  // IPv6 is on by default; where it is disabled go on without it, unless it was asked for.
  const noIpv6 = o['no-ipv6'] || typeof o.address6 === 'string' ? undefined : ipv6Unavailable();
  if (noIpv6) logger.warn(`${noIpv6}, so the TUN gets IPv4 only (--no-ipv6 says so without this warning)`);

  const metrics = await startMetrics(ops);
  const service: Service = await startService({
    upstream, rules, log,
    udp: o.udp === true,
    dns: dns as 'auto' | 'tcp' | 'fake-ip' | 'off',
    ...(typeof o['dns-server'] === 'string' ? { dnsServer: o['dns-server'] } : {}),
    ...(o['fake-ip'] ? { fakeIpRanges: o['fake-ip'] as string[] } : {}),
    ...(typeof o.name === 'string' ? { name: o.name } : {}),
    mtu: intOption(o, 'mtu', 65000),
    ...(typeof o.address4 === 'string' ? { address4: o.address4 } : {}),
    address6: o['no-ipv6'] || noIpv6 ? false : (typeof o.address6 === 'string' ? o.address6 : undefined),
    ...(typeof o.bind4 === 'string' ? { bindAddress4: o.bind4 } : {}),
    ...(typeof o.bind6 === 'string' ? { bindAddress6: o.bind6 } : {}),
    maxSessions: intOption(o, 'max-sessions'),
    idleTimeoutMs: intOption(o, 'idle-timeout', 300)! * 1000,
    route: o.route === true,
    rulesMayChange: rulesFile !== undefined,
    ...(gateway.length ? { gateway } : {}),
    offload: offload as 'raw' | 'split' | 'none',
  }).catch(async (e: unknown) => { await metrics?.close(); throw e; });
  const { proxy, device } = service;
  serveMetrics(metrics, () => proxyFamilies(proxy, device.name));
  const control = await startControl(command, device.name, () => proxySnapshot(command, device.name, describeUpstream(upstream), proxy), logger);
  const ready = { event: 'ready', device: device.name, upstream: describeUpstream(upstream), route: service.routing !== undefined, pid: process.pid };

  let previous: ProxyStats = proxy.stats();
  let previousAt = Date.now();
  const intervalMs = Math.max(100, (intOption(o, 'interval', 1)! * 1000));
  const tty = process.stdout.isTTY === true;
  const tick = (): void => {
    const now = Date.now();
    const s = proxy.stats();
    const dt = Math.max(1, now - previousAt) / 1000;
    const rateUp = (s.bytesUp - previous.bytesUp) / dt;
    const rateDown = (s.bytesDown - previous.bytesDown) / dt;
    previous = s;
    previousAt = now;
    if (json) {
      // memoryUsage() reads /proc/self: with every descriptor in use it throws EMFILE, which
      // must cost this line its memory figures, not the service.
      let mem: { rss: number | null; heapUsed: number | null; external: number | null } = { rss: null, heapUsed: null, external: null };
      try { mem = process.memoryUsage(); } catch { /* reported as null */ }
      console.log(JSON.stringify({ event: 'stats', time: new Date(now).toISOString(), rateUp, rateDown, rss: mem.rss, heapUsed: mem.heapUsed, external: mem.external, ...s }));
    } else if (!quiet) {
      const head = `${device.name} ${describeUpstream(upstream)}  sessions ${s.sessions}  nat ${s.natEntries}  ` +
        `up ${fmtRate(rateUp)} (${fmtBytes(s.bytesUp)})  down ${fmtRate(rateDown)} (${fmtBytes(s.bytesDown)})  ` +
        `failed ${s.connectionsFailed}  udp ${s.udpSessions}  dns ${s.dnsQueries}`;
      if (tty) {
        const rows = proxy.connections().sort((a, b) => (b.bytesUp + b.bytesDown) - (a.bytesUp + a.bytesDown)).slice(0, Math.max(5, (process.stdout.rows ?? 24) - 4));
        const lines = rows.map((c) => `  ${c.source.padEnd(26)} → ${c.destination.padEnd(30)} ${c.state.padEnd(10)} ↑${fmtBytes(c.bytesUp).padStart(10)} ↓${fmtBytes(c.bytesDown).padStart(10)}`);
        process.stdout.write(`\x1b[H\x1b[2J${head}\n${lines.join('\n')}\n`);
      } else {
        console.log(head);
      }
    }
  };
  const timer = setInterval(() => {
    try { tick(); } catch (e) { log(`status: ${(e as Error).message}`); }
  }, intervalMs);

  const stopped = new Promise<number>((resolve) => {
    let stopping = false;
    const stopReloading = reloadRulesOnHangup(proxy, commandRules, rulesFile, log);
    const stop = (code: number): void => {
      if (stopping) return;
      stopping = true;
      tellManager({ STOPPING: 1 });
      stopReloading();
      clearInterval(timer);
      Promise.all([metrics?.close(), control?.close()]).then(() => service.stop())
        .then(() => resolve(code), (e: unknown) => { log(`stopping: ${(e as Error).message}`); resolve(1); });
    };
    process.once('SIGINT', () => stop(0));
    process.once('SIGTERM', () => stop(0));
    // A crash still removes the routing (stop() first; service's exit hook as the last resort).
    process.once('uncaughtException', (e) => { log(`fatal: ${e.stack ?? e.message}`); stop(1); });
    process.once('unhandledRejection', (e) => { log(`fatal: ${(e as Error)?.stack ?? String(e)}`); stop(1); });
    proxy.once('error', (e: Error) => { log(`fatal: ${e.message}`); stop(1); });
    // Ready only now: a SIGTERM sent as soon as it reads this must find the handler in place.
    if (json) console.log(JSON.stringify(ready));
    else if (!quiet) log(`${device.name}: proxying through ${ready.upstream}${ready.route ? ' (policy routing installed)' : ''}`);
    tellManager({ READY: 1, STATUS: `${device.name}: proxying through ${ready.upstream}, ${rules.length} rules` });
  });
  return stopped;
}

/** On SIGHUP, reads the rules file again: the --rule rules, then its rules, for new connections. */
function reloadRulesOnHangup(proxy: TunProxy, commandRules: Rule[], file: string | undefined, log: (line: string) => void): () => void {
  return reloadOnHangup(async () => {
    if (!file) return 'no --rules-file: nothing to reload';
    const rules = [...commandRules, ...readRulesFile(file)];
    proxy.setRules(rules);
    return `rules reloaded from ${file}: ${rules.length} rules`;
  }, (line) => log(line));
}

export function run(argv: string[]): Promise<number> {
  return runProxyCommand(argv, 'socks');
}
