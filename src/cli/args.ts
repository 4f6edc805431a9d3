// A small argument parser shared by the subcommands: --flag, --key value, --key=value, -x value.
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export interface ArgSpec {
  /** Options that take a value, by long name (without --). Short aliases map to long names. */
  values?: string[];
  /** Options that are plain switches. */
  flags?: string[];
  /** Options that may be given several times (collected into arrays). */
  repeat?: string[];
  aliases?: Record<string, string>;
}

export interface ParsedArgs {
  positional: string[];
  options: Record<string, string | boolean | string[]>;
}

export function parseArgs(argv: string[], spec: ArgSpec): ParsedArgs {
  const values = new Set(spec.values ?? []);
  const flags = new Set([...(spec.flags ?? []), 'help', 'json']);
  const repeat = new Set(spec.repeat ?? []);
  const positional: string[] = [];
  const options: ParsedArgs['options'] = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') { positional.push(...argv.slice(i + 1)); break; }
    if (!arg.startsWith('-') || arg === '-') { positional.push(arg); continue; }
    let key = arg.replace(/^--?/, '');
    let value: string | undefined;
    const eq = key.indexOf('=');
    if (eq >= 0) { value = key.slice(eq + 1); key = key.slice(0, eq); }
    key = spec.aliases?.[key] ?? (key === 'h' ? 'help' : key);
    if (flags.has(key)) {
      if (value !== undefined) throw new UsageError(`--${key} takes no value`);
      options[key] = true;
    } else if (values.has(key) || repeat.has(key)) {
      if (value === undefined) {
        value = argv[++i];
        if (value === undefined) throw new UsageError(`--${key} needs a value`);
      }
      if (repeat.has(key)) ((options[key] ??= []) as string[]).push(value);
      else options[key] = value;
    } else {
      throw new UsageError(`unknown option ${arg}`);
    }
  }
  return { positional, options };
}

export function intOption(opts: ParsedArgs['options'], key: string, fallback?: number): number | undefined {
  const v = opts[key];
  if (v === undefined) return fallback;
  const n = Number(v);
  if (typeof v !== 'string' || !Number.isInteger(n)) throw new UsageError(`--${key} needs an integer, got "${String(v)}"`);
  return n;
}
