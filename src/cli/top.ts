// `tuntap top`: one screen of every WireGuard interface, proxy and bridge on this host, refreshed
// in place until `q`; `--once` prints one reading (taken over one interval, for the rates) and
// `--json` prints it as JSON (one line per interval without --once). src/ops/top.ts reads the
// sockets and keeps the rates, src/ops/top-render.ts lays out the screen.
import { parseArgs, noExtraArguments, optionName, UsageError, type ParsedArgs } from './args.js';
import { readAll, TopModel, type TopView } from '../ops/top.js';
import { renderScreen } from '../ops/top-render.js';
import { controlDir } from '../ops/control.js';
import { UAPI_DIR } from '../wireguard/uapi.js';

const HELP = `usage: tuntap top [--interval SEC] [--once] [--json]

A live view of every WireGuard interface (tuntap's and wireguard-go's, through their UAPI sockets
in ${UAPI_DIR}), every tuntap socks/http proxy and every tuntap bridge on this host (through
their control sockets in ${controlDir()}, or $TUNTAP_CONTROL_DIR): peers, sessions and ports
with their rates in and out and a sparkline of the last minute, busiest first. q quits.
Needs root (the sockets are the root's).
  --interval SEC      seconds between readings (0.2 or more) [1]
  --once              print one reading, taken over one interval, and exit
  --json              JSON: with --once one object, else one line per interval`;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * The view as one line of JSON. Names in it came from other processes and the network, and
 * JSON.stringify escapes C0 controls but leaves DEL and C1 (an 8-bit CSI among them): those are
 * escaped too, so piping --json to a terminal is safe.
 */
function jsonLine(view: TopView): string {
  return JSON.stringify(view).replace(/[\u007f-\u009f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

function intervalOption(o: ParsedArgs['options']): number {
  const v = o.interval;
  if (v === undefined) return 1;
  const n = Number(v);
  if (typeof v !== 'string' || !/^\d+(\.\d+)?$/.test(v) || n < 0.2 || n > 3600) {
    throw new UsageError(`${optionName(o, 'interval')} needs seconds, 0.2 or more, got "${String(v)}"`);
  }
  return n;
}

export async function run(argv: string[]): Promise<number> {
  const args = parseArgs(argv, { values: ['interval'], flags: ['once', 'json'] });
  const o = args.options;
  if (o.help) { console.log(HELP); return 0; }
  noExtraArguments(args);
  const intervalMs = intervalOption(o) * 1000;
  const perMinute = 60_000 / intervalMs;
  const model = new TopModel();
  const json = o.json === true;
  // A reader of the output that went away ends top, quietly.
  process.stdout.on('error', () => process.exit(0));
  const first = model.update(await readAll());
  if (o.once) {
    await sleep(intervalMs);
    const view = model.update(await readAll());
    if (json) console.log(jsonLine(view));
    else console.log(renderScreen(view, { width: process.stdout.columns ?? 100, height: Infinity, perMinute }).map((l) => l.trimEnd()).join('\n'));
    return 0;
  }
  if (json || !process.stdout.isTTY) {
    for (;;) {
      await sleep(intervalMs);
      const view = model.update(await readAll());
      if (json) console.log(jsonLine(view));
      else console.log(`${renderScreen(view, { width: 100, height: Infinity, perMinute }).map((l) => l.trimEnd()).join('\n')}\n`);
    }
  }
  const code = await live(model, first, intervalMs, perMinute);
  // A reading cut short by q may still wait on a slow socket's timeout: leave now (the writes
  // to the terminal were synchronous, so nothing is lost).
  process.exit(code);
}

/** The full-screen view: the terminal's alternate screen, redrawn in place, until q. */
async function live(model: TopModel, first: TopView, intervalMs: number, perMinute: number): Promise<number> {
  const out = process.stdout;
  const stdin = process.stdin;
  let view = first;
  const draw = (): void => {
    const lines = renderScreen(view, { width: out.columns ?? 80, height: out.rows ?? 24, perMinute, note: 'q quits' });
    // Home, each line over the old one (its rest erased), then everything below erased.
    out.write(`\x1b[H${lines.map((l) => `${l}\x1b[K`).join('\r\n')}\x1b[J`);
  };
  out.write('\x1b[?1049h\x1b[?25l\x1b[H\x1b[2J');
  let quit!: () => void;
  const quitting = new Promise<void>((r) => { quit = r; });
  const onKey = (d: Buffer): void => {
    // q, Q, Ctrl-C (raw mode takes it from the terminal driver) or Ctrl-D.
    if (d.includes(0x71) || d.includes(0x51) || d.includes(0x03) || d.includes(0x04)) quit();
  };
  if (stdin.isTTY) {
    stdin.setRawMode(true);
    stdin.on('data', onKey);
    stdin.resume();
  }
  process.once('SIGINT', quit);
  process.once('SIGTERM', quit);
  out.on('resize', draw);
  draw();
  try {
    let done = false;
    void quitting.then(() => { done = true; });
    while (!done) {
      await Promise.race([sleep(intervalMs), quitting]);
      if (done) break;
      // q while a slow socket is being read quits at once, not after its timeout.
      const reading = await Promise.race([readAll(), quitting.then(() => undefined)]);
      if (done || !reading) break;
      view = model.update(reading);
      draw();
    }
  } finally {
    out.off('resize', draw);
    if (stdin.isTTY) {
      stdin.off('data', onKey);
      stdin.setRawMode(false);
      stdin.pause();
    }
    process.off('SIGINT', quit);
    process.off('SIGTERM', quit);
    out.write('\x1b[?25h\x1b[?1049l');
  }
  return 0;
}
