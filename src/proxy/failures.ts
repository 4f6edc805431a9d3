// Failures on the proxy's side paths (accepting, connecting upstream, UDP, DNS), counted by
// errno name (or by reason when there is none) for the stats, and logged without flooding:
// a few lines a second, then one summary of what was left out.

export type FailureKind = 'accept' | 'connect' | 'udp' | 'dns';

const hints: Record<string, string> = {
  EMFILE: 'out of file descriptors: raise the open-files limit (ulimit -n) or lower --max-sessions',
  ENFILE: 'the system is out of file descriptors',
  ENOBUFS: 'the kernel is out of buffer space',
  ENOMEM: 'out of memory',
};

/** A sentence for errno names that ask for a change on this host, else undefined. */
export function hintFor(code: string): string | undefined {
  return hints[code];
}

export interface FailureLogOptions {
  log?: (line: string) => void;
  /** Lines logged per second before the rest is only summarized (default 5). */
  linesPerSecond?: number;
}

export class FailureLog {
  readonly counts: Record<FailureKind, Record<string, number>> = { accept: {}, connect: {}, udp: {}, dns: {} };
  private readonly log?: (line: string) => void;
  private readonly linesPerSecond: number;
  private windowStart = 0;
  private linesInWindow = 0;
  private readonly suppressed: Record<string, number> = {};
  private suppressedTotal = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(opts: FailureLogOptions = {}) {
    this.log = opts.log;
    this.linesPerSecond = opts.linesPerSecond ?? 5;
    this.timer = setInterval(() => this.summarize(), 1000);
    this.timer.unref();
  }

  /** Failures of the kinds given (of every kind when none is). */
  count(...kinds: FailureKind[]): number {
    let n = 0;
    for (const kind of kinds.length ? kinds : (Object.keys(this.counts) as FailureKind[])) {
      for (const c of Object.values(this.counts[kind])) n += c;
    }
    return n;
  }

  /** A copy of the counts, for stats. */
  snapshot(): Record<FailureKind, Record<string, number>> {
    return { accept: { ...this.counts.accept }, connect: { ...this.counts.connect }, udp: { ...this.counts.udp }, dns: { ...this.counts.dns } };
  }

  /** Counts one failure of `kind` with errno name (or reason) `code`, and logs `line` if the rate allows. */
  note(kind: FailureKind, code: string, line: string): void {
    const byCode = this.counts[kind];
    byCode[code] = (byCode[code] ?? 0) + 1;
    if (!this.log) return;
    const now = Date.now();
    if (now - this.windowStart >= 1000) { this.windowStart = now; this.linesInWindow = 0; }
    if (this.linesInWindow < this.linesPerSecond) {
      this.linesInWindow++;
      const hint = hintFor(code);
      this.log(hint && !line.includes(hint) ? `${line} (${hint})` : line);
      return;
    }
    const key = `${kind} ${code}`;
    this.suppressed[key] = (this.suppressed[key] ?? 0) + 1;
    this.suppressedTotal++;
  }

  private summarize(): void {
    if (this.suppressedTotal === 0 || !this.log) return;
    const parts = Object.entries(this.suppressed).map(([k, n]) => `${k} ×${n}`).join(', ');
    this.log(`… and ${this.suppressedTotal} more failures not shown: ${parts}`);
    for (const k of Object.keys(this.suppressed)) delete this.suppressed[k];
    this.suppressedTotal = 0;
  }

  close(): void {
    this.summarize();
    clearInterval(this.timer);
  }
}
