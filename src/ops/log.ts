// The long-running commands' logger: one line per event on stderr, as text or JSON, filtered by
// level. Under systemd (INVOCATION_ID or JOURNAL_STREAM set) it writes no timestamps, since
// journald stamps every line itself; when stderr is the journal's own stream, each line starts
// with its syslog priority (`<4>`), which journald takes as the line's level and strips.
import { fstatSync } from 'node:fs';

export const LOG_LEVELS = ['error', 'warn', 'info', 'debug'] as const;
export type LogLevel = typeof LOG_LEVELS[number];
export const LOG_FORMATS = ['text', 'json'] as const;
export type LogFormat = typeof LOG_FORMATS[number];

/** Extra facts about an event: printed as key=value in text, as members in JSON. */
export type LogFields = Record<string, string | number | boolean | undefined>;

export interface Logger {
  error(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  debug(message: string, fields?: LogFields): void;
  /** Whether a line of `level` would be written (to skip building costly messages). */
  enabled(level: LogLevel): boolean;
}

export interface LoggerOptions {
  /** The least severe level written (default info). */
  level?: LogLevel;
  format?: LogFormat;
  /** Default: not under systemd. */
  timestamps?: boolean;
  /** Prefix lines with `<N>` syslog priorities (default: when stderr is the journal's stream). */
  priorities?: boolean;
  /** Applied to every message and field value before it is written (e.g. hides a password). */
  redact?: (text: string) => string;
  /** Where each finished line goes (default stderr). */
  write?: (line: string) => void;
  now?: () => Date;
}

const severity: Record<LogLevel, number> = { error: 0, warn: 1, info: 2, debug: 3 };
// syslog(3) priorities: LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG.
const syslogPriority: Record<LogLevel, number> = { error: 3, warn: 4, info: 6, debug: 7 };

/** Whether this process runs as a systemd unit (which sets both for its services). */
export function underSystemd(env: NodeJS.ProcessEnv = process.env): boolean {
  return Boolean(env.INVOCATION_ID || env.JOURNAL_STREAM);
}

/**
 * Whether stderr is connected to the journal: JOURNAL_STREAM names the device and inode of the
 * stream systemd connected, which stays set in children whose stderr went elsewhere.
 */
export function stderrIsJournal(env: NodeJS.ProcessEnv = process.env, fd = 2): boolean {
  const m = /^(\d+):(\d+)$/.exec(env.JOURNAL_STREAM ?? '');
  if (!m) return false;
  try {
    const st = fstatSync(fd, { bigint: true });
    return st.dev === BigInt(m[1]!) && st.ino === BigInt(m[2]!);
  } catch {
    return false;
  }
}

/**
 * Makes `text` one line of printable characters: line breaks become spaces and other control
 * characters `\xNN`, so no message (a host name from the network, an error from a peer) can
 * start a forged line or send escape sequences to a terminal.
 */
export function oneLine(text: string): string {
  return text.replace(/\s*[\r\n]+\s*/g, ' ').replace(/[\x00-\x08\x0b-\x1f\x7f-\x9f]/g,
    (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

function textValue(v: string | number | boolean): string {
  const s = String(v);
  return /^[^\s"=\\]+$/.test(s) ? s : JSON.stringify(s);
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const threshold = severity[opts.level ?? 'info'];
  const format = opts.format ?? 'text';
  const timestamps = opts.timestamps ?? !underSystemd();
  const priorities = opts.priorities ?? stderrIsJournal();
  const redact = opts.redact ?? ((s: string) => s);
  const now = opts.now ?? (() => new Date());
  const write = opts.write ?? ((line: string) => {
    // A reader of stderr that went away must not stop the service.
    try { process.stderr.write(`${line}\n`); } catch { /* nowhere to report it */ }
  });
  const emit = (level: LogLevel, message: string, fields?: LogFields): void => {
    if (severity[level] > threshold) return;
    const entries = Object.entries(fields ?? {}).filter((e): e is [string, string | number | boolean] => e[1] !== undefined)
      .map(([k, v]) => [k, typeof v === 'string' ? redact(v) : v] as const);
    const msg = redact(message);
    if (format === 'json') {
      const record: Record<string, unknown> = timestamps ? { time: now().toISOString() } : {};
      record.level = level;
      record.msg = msg;
      for (const [k, v] of entries) if (!(k in record)) record[k] = v;
      // journald strips the priority, leaving the JSON as the message.
      write(`${priorities ? `<${syslogPriority[level]}>` : ''}${JSON.stringify(record)}`);
      return;
    }
    const parts = [
      ...(priorities ? [`<${syslogPriority[level]}>`] : []),
      ...(timestamps ? [now().toISOString()] : []),
      level.padEnd(5),
      oneLine(msg),
      ...entries.map(([k, v]) => `${oneLine(k)}=${oneLine(textValue(v))}`),
    ];
    write(priorities ? `${parts[0]}${parts.slice(1).join(' ')}` : parts.join(' '));
  };
  return {
    error: (m, f) => emit('error', m, f),
    warn: (m, f) => emit('warn', m, f),
    info: (m, f) => emit('info', m, f),
    debug: (m, f) => emit('debug', m, f),
    enabled: (level) => severity[level] <= threshold,
  };
}
