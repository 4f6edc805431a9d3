// Prometheus's text exposition format (version 0.0.4): metric families with HELP and TYPE,
// samples with escaped label values. Names are checked when a family is made, so a typo fails
// the first scrape in the tests rather than a user's dashboard.

export type MetricType = 'counter' | 'gauge';
export type Labels = Record<string, string>;

export interface Sample {
  labels: Labels;
  value: number;
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

export class MetricFamily {
  readonly samples: Sample[] = [];

  constructor(readonly name: string, readonly type: MetricType, readonly help: string) {
    if (!METRIC_NAME.test(name)) throw new RangeError(`not a metric name: ${name}`);
    if (type === 'counter' && !name.endsWith('_total')) throw new RangeError(`a counter's name ends in _total: ${name}`);
  }

  add(labels: Labels, value: number): this {
    for (const k of Object.keys(labels)) {
      if (!LABEL_NAME.test(k) || k.startsWith('__')) throw new RangeError(`${this.name}: not a label name: ${k}`);
    }
    this.samples.push({ labels, value });
    return this;
  }
}

/** A label value as the format quotes it: backslash, double quote and newline escaped. */
function labelValue(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

export function renderFamilies(families: readonly MetricFamily[]): string {
  const out: string[] = [];
  for (const f of families) {
    out.push(`# HELP ${f.name} ${f.help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`, `# TYPE ${f.name} ${f.type}`);
    for (const s of f.samples) {
      const labels = Object.entries(s.labels).map(([k, v]) => `${k}="${labelValue(v)}"`).join(',');
      out.push(`${f.name}${labels ? `{${labels}}` : ''} ${formatValue(s.value)}`);
    }
  }
  return out.length ? `${out.join('\n')}\n` : '';
}

/** camelCase → snake_case, for counter keys that become label values or name parts. */
export function snakeCase(key: string): string {
  return key.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase();
}

const processStartSeconds = Math.round(Date.now() / 1000 - process.uptime());

/** The process's own families, under the names every Prometheus client library uses. */
export function processFamilies(startedAt = processStartSeconds): MetricFamily[] {
  const cpu = process.cpuUsage();
  const families = [
    new MetricFamily('process_cpu_seconds_total', 'counter', 'Total user and system CPU time spent in seconds.')
      .add({}, (cpu.user + cpu.system) / 1e6),
    new MetricFamily('process_start_time_seconds', 'gauge', 'Start time of the process since unix epoch in seconds.')
      .add({}, startedAt),
  ];
  // memoryUsage reads /proc/self, which fails when every descriptor is in use: the scrape then
  // lacks the figure rather than failing.
  try {
    families.push(new MetricFamily('process_resident_memory_bytes', 'gauge', 'Resident memory size in bytes.')
      .add({}, process.memoryUsage.rss()));
  } catch { /* left out */ }
  return families;
}
