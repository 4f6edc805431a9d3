// The operations options the long-running commands (wg up, socks, http, bridge) share:
// --metrics, --log-level, --log-format; and their endpoints: the metrics server, started before
// the service (a taken port fails the command before anything is made), and the control socket
// `tuntap top` reads, started once the service runs (it is monitoring: failing to make it is a
// warning, never a reason to stop the service).
import { UsageError, optionName, type ParsedArgs } from './args.js';
import { createLogger, LOG_FORMATS, LOG_LEVELS, type LogFormat, type Logger, type LogLevel } from '../ops/log.js';
import { MetricsServer, isLoopback, parseMetricsAddress, type MetricsAddress } from '../ops/metrics-server.js';
import { processFamilies, type MetricFamily } from '../ops/prometheus.js';
import { ControlServer, type ControlKind } from '../ops/control.js';

/** The options that take a value, for each command's ArgSpec. */
export const OPS_VALUES = ['metrics', 'log-level', 'log-format'];

const OPTION_LINES: Array<[string, string[]]> = [
  ['--metrics [ADDR:]PORT', ['serve Prometheus metrics on http://ADDR:PORT/metrics (ADDR: 127.0.0.1',
    'when not given; it listens in the namespace the command started in)']],
  ['--log-level LEVEL', ['error | warn | info | debug [info]']],
  ['--log-format FORMAT', ['text | json [text]; no timestamps under systemd (journald adds them)']],
];

/** Their lines in a command's --help, descriptions starting at `column`. */
export function opsHelp(column: number): string {
  return OPTION_LINES.flatMap(([option, text]) => {
    const head = `  ${option}`;
    const first = head.length + 1 < column ? [`${head.padEnd(column)}${text[0]}`] : [head, `${''.padEnd(column)}${text[0]}`];
    return [...first, ...text.slice(1).map((t) => `${''.padEnd(column)}${t}`)];
  }).join('\n');
}

/**
 * Logs a line of the older `log(line)` callbacks (the proxy's, wg-quick's) at the level its
 * prefix names: "warning: " and "fatal: " lines are warnings and errors, the rest information.
 */
export function logLine(log: Logger, line: string): void {
  const m = /^(warning|fatal): (.*)$/s.exec(line);
  if (!m) log.info(line);
  else if (m[1] === 'warning') log.warn(m[2]!);
  else log.error(m[2]!);
}

export interface OpsOptions {
  /** The logger --log-level and --log-format ask for. */
  logger: Logger;
  /** Where --metrics asks to listen (undefined without it). */
  metrics: MetricsAddress | undefined;
}

/** Checks --log-level, --log-format and --metrics (a UsageError names the one that is wrong). */
export function opsOptions(o: ParsedArgs['options'], extra: { redact?: (s: string) => string } = {}): OpsOptions {
  const level = o['log-level'] ?? 'info';
  const format = o['log-format'] ?? 'text';
  if (typeof level !== 'string' || !(LOG_LEVELS as readonly string[]).includes(level)) {
    throw new UsageError(`${optionName(o, 'log-level')} must be ${LOG_LEVELS.join(', ')}, not "${String(level)}"`);
  }
  if (typeof format !== 'string' || !(LOG_FORMATS as readonly string[]).includes(format)) {
    throw new UsageError(`${optionName(o, 'log-format')} must be ${LOG_FORMATS.join(' or ')}, not "${String(format)}"`);
  }
  let metrics: MetricsAddress | undefined;
  try {
    metrics = o.metrics === undefined ? undefined : parseMetricsAddress(String(o.metrics));
  } catch (e) {
    throw new UsageError(`${optionName(o, 'metrics')}: ${(e as Error).message}`);
  }
  return { logger: createLogger({ level: level as LogLevel, format: format as LogFormat, ...extra }), metrics };
}

/**
 * Starts the metrics server --metrics asked for (undefined without it), serving only the
 * process's own figures until serveMetrics() hands it the service's.
 */
export async function startMetrics({ metrics: address, logger: log }: OpsOptions): Promise<MetricsServer | undefined> {
  if (address === undefined) return undefined;
  const server = await MetricsServer.listen(address, {
    collect: () => processFamilies(),
    onError: (e) => log.error(`metrics: collecting failed: ${(e as Error).message}`),
  });
  const where = `${address.host.includes(':') ? `[${address.host}]` : address.host}:${server.address.port}`;
  if (!isLoopback(address.host)) log.warn(`metrics on ${where} can be read by anyone who reaches that address`);
  log.info(`metrics on http://${where}/metrics`);
  return server;
}

/** Hands the metrics server the service's families (with the process's own). */
export function serveMetrics(server: MetricsServer | undefined, collect: () => MetricFamily[]): void {
  server?.serve(() => [...collect(), ...processFamilies()]);
}

/** Starts the control socket for `tuntap top`; on failure logs a warning and returns undefined. */
export async function startControl(kind: ControlKind, name: string, status: () => unknown, log: Logger): Promise<ControlServer | undefined> {
  try {
    const server = await ControlServer.listen({ kind, name, status });
    log.debug(`control socket ${server.path}`);
    return server;
  } catch (e) {
    log.warn(`no control socket, so tuntap top will not show this process: ${(e as Error).message}`);
    return undefined;
  }
}
