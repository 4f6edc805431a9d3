// A small argument parser shared by the subcommands: --flag, --key value, --key=value, -x value.
import { UserError } from '../errors.js';

/** The command line itself is wrong (unknown option, missing or malformed value): exit code 2. */
export class UsageError extends UserError {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export interface ArgSpec {
  /** Options that take a value, by long name (without --). Short aliases map to long names. */
  values?: string[];
  /** Options that are plain switches (--help is one everywhere). */
  flags?: string[];
  /** Options that may be given several times (collected into arrays). */
  repeat?: string[];
  aliases?: Record<string, string>;
}

export interface ParsedArgs {
  positional: string[];
  options: Record<string, string | boolean | string[]>;
}

// How each option was typed ("-c" or "--count"), so messages name it as the user wrote it.
const typedNames = new WeakMap<ParsedArgs['options'], Map<string, string>>();

/** The option `key` as the user typed it (`--key` when it was not given). */
export function optionName(opts: ParsedArgs['options'], key: string): string {
  return typedNames.get(opts)?.get(key) ?? `--${key}`;
}

export function parseArgs(argv: string[], spec: ArgSpec): ParsedArgs {
  const values = new Set(spec.values ?? []);
  const flags = new Set([...(spec.flags ?? []), 'help']);
  const repeat = new Set(spec.repeat ?? []);
  const positional: string[] = [];
  const options: ParsedArgs['options'] = {};
  const typed = new Map<string, string>();
  typedNames.set(options, typed);
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') { positional.push(...argv.slice(i + 1)); break; }
    if (!arg.startsWith('-') || arg === '-') { positional.push(arg); continue; }
    const eq = arg.indexOf('=');
    const name = eq >= 0 ? arg.slice(0, eq) : arg;
    let value = eq >= 0 ? arg.slice(eq + 1) : undefined;
    let key = name.replace(/^--?/, '');
    key = spec.aliases?.[key] ?? (key === 'h' ? 'help' : key);
    typed.set(key, name);
    if (flags.has(key)) {
      if (value !== undefined) throw new UsageError(`${name} takes no value`);
      options[key] = true;
    } else if (values.has(key) || repeat.has(key)) {
      if (value === undefined) {
        value = argv[++i];
        if (value === undefined) throw new UsageError(`${name} needs a value`);
      }
      if (repeat.has(key)) ((options[key] ??= []) as string[]).push(value);
      else options[key] = value;
    } else {
      throw new UsageError(`unknown option ${name}`);
    }
  }
  return { positional, options };
}

export function intOption(opts: ParsedArgs['options'], key: string, fallback?: number): number | undefined {
  const v = opts[key];
  if (v === undefined) return fallback;
  const n = Number(v);
  if (typeof v !== 'string' || !/^\s*-?\d+\s*$/.test(v) || !Number.isSafeInteger(n)) {
    throw new UsageError(`${optionName(opts, key)} needs an integer, got "${String(v)}"`);
  }
  return n;
}

/** intOption for counts and durations: 1 or more. */
export function positiveIntOption(opts: ParsedArgs['options'], key: string, fallback: number): number {
  const n = intOption(opts, key, fallback)!;
  if (n < 1) throw new UsageError(`${optionName(opts, key)} needs a positive number, got "${String(opts[key])}"`);
  return n;
}

/** Rejects positional arguments beyond the `expected` ones. */
export function noExtraArguments(args: ParsedArgs, expected = 0): void {
  const extra = args.positional[expected];
  if (extra !== undefined) throw new UsageError(`unexpected argument "${extra}"`);
}
