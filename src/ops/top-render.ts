// `tuntap top`'s screen: a header, then each group (busiest first) with its rows, each line with
// its rates in and out and a sparkline of the last minute, cut to the terminal's size. Every
// name and detail shown comes from another process or the network, so anything in them but
// printable ASCII is replaced before it reaches the terminal.
import type { TopGroup, TopRow, TopView } from './top.js';

const BARS = ' ▁▂▃▄▅▆▇█';

/** Printable ASCII only: no escape sequence from a peer's or a session's name reaches the terminal. */
export function printableText(s: string): string {
  return s.replace(/[^\x20-\x7e]/g, '?');
}

/** Bits a second, at most 9 characters: "999.9Mb/s". */
export function formatRate(bytesPerSecond: number): string {
  const bits = bytesPerSecond * 8;
  const units = ['b/s', 'Kb/s', 'Mb/s', 'Gb/s', 'Tb/s'];
  let v = bits;
  let u = 0;
  while (v >= 999.95 && u < units.length - 1) { v /= 1000; u++; }
  if (v >= 999.95) return '>999Tb/s';
  return u === 0 ? `${Math.round(v)}${units[0]}` : `${v.toFixed(1)}${units[u]}`;
}

/**
 * The last minute in `width` characters: `history` holds one rate per reading, newest last,
 * `perMinute` readings to a minute; each character shows the highest rate of its share, scaled
 * to the row's highest. No traffic is a blank.
 */
export function sparkline(history: readonly number[], width: number, perMinute: number): string {
  const span = Math.max(1, Math.round(perMinute));
  const recent = history.slice(-span);
  const per = span / width;
  const cells: number[] = [];
  for (let c = 0; c < width; c++) {
    // Cells are laid out right to left from the newest reading.
    const from = span - (width - c) * per;
    const to = from + per;
    let v = 0;
    for (let i = Math.max(0, Math.floor(from)); i < Math.ceil(to) && i < span; i++) {
      const at = i - (span - recent.length);
      if (at >= 0) v = Math.max(v, recent[at]!);
    }
    cells.push(v);
  }
  const max = Math.max(...cells);
  return cells.map((v) => (v <= 0 || max <= 0 ? ' ' : BARS[Math.max(1, Math.ceil((v / max) * 8))]!)).join('');
}

/** `s` cut or padded to `width` characters (what came from outside was made printable before). */
function fit(s: string, width: number): string {
  return s.length > width ? `${s.slice(0, Math.max(0, width - 1))}…` : s.padEnd(width);
}

/** A detail as printable text. */
const p = (v: string | number | undefined): string => printableText(String(v ?? ''));

function ago(seconds: number): string {
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m`;
  return `${Math.floor(seconds / 3600)}h`;
}

function groupTitle(g: TopGroup): string {
  const d = g.details;
  switch (g.kind) {
    case 'wireguard':
      return `${p(g.name)}  wireguard, port ${p(d.listenPort)}, ${p(d.peers)} peer${d.peers === 1 ? '' : 's'}`;
    case 'proxy':
      return `${p(g.name)}  ${p(d.command)} via ${p(d.upstream)}, pid ${p(d.pid)}, ${p(d.sessions)} tcp + ${p(d.udpSessions)} udp, ${p(d.connectionsFailed)} failed`;
    default:
      return `${p(g.name)}  bridge, pid ${p(d.pid)}, ${p(d.ports)} ports, ${p(d.macs)} MACs`;
  }
}

function rowTitle(kind: TopGroup['kind'], r: TopRow, nowSeconds: number): string {
  const d = r.details;
  if (kind === 'wireguard') {
    const hs = typeof d.latestHandshake === 'number' && d.latestHandshake > 0
      ? `hs ${ago(Math.max(0, nowSeconds - d.latestHandshake))} ago` : 'no handshake';
    return `${p(r.name.slice(0, 8))}… ${p(d.endpoint) || '(no endpoint)'} ${hs}`;
  }
  if (kind === 'proxy') return `${p(d.source)} → ${p(d.destination)} ${p(d.state)}`;
  return `${p(r.name)}  ${p(d.rxFrames)}/${p(d.txFrames)} frames, ${p(d.drops)} dropped`;
}

export interface ScreenOptions {
  width: number;
  height: number;
  /** Readings a minute (60 / the refresh interval in seconds). */
  perMinute: number;
  /** The header's right-hand note. */
  note?: string;
}

/** The screen as lines, at most `height` of them, each exactly `width` characters. */
export function renderScreen(view: TopView, opts: ScreenOptions): string[] {
  const width = Math.max(40, opts.width);
  const spark = width >= 120 ? 30 : width >= 80 ? 20 : 10;
  const rate = 9;
  const left = width - (rate + 1 + rate + 1 + spark + 2);
  const nowSeconds = Math.floor(Date.parse(view.time) / 1000);
  const line = (title: string, r: TopRow, indent: string) =>
    `${fit(indent + title, left)}  ${formatRate(r.inRate).padStart(rate)} ${formatRate(r.outRate).padStart(rate)} ${sparkline(r.history, spark, opts.perMinute)}`;
  const counts = (['wireguard', 'proxy', 'bridge'] as const).map((k) => `${view.groups.filter((g) => g.kind === k).length} ${k}`).join(', ');
  const lines = [
    fit(`tuntap top  ${view.time.slice(11, 19)}  ${counts}${opts.note ? `  ${opts.note}` : ''}`, width),
    fit(`${''.padEnd(left)}  ${'in'.padStart(rate)} ${'out'.padStart(rate)} last minute`, width),
  ];
  const errors = view.errors.slice(0, 2).map((e) => fit(`! ${p(e)}`, width));
  let budget = Math.max(0, opts.height - lines.length - errors.length);
  if (view.groups.length === 0) lines.push(fit('(no WireGuard interface, proxy or bridge is running)', width));
  // Every group's title first, then rows handed out one at a time around the groups, so a busy
  // group cannot push the others off the screen.
  const shownGroups = view.groups.slice(0, budget);
  budget -= shownGroups.length;
  const shown = shownGroups.map(() => 0);
  for (let more = true; more && budget > 0;) {
    more = false;
    for (let i = 0; i < shownGroups.length && budget > 0; i++) {
      if (shown[i]! < shownGroups[i]!.rows.length) { shown[i]!++; budget--; more = true; }
    }
  }
  shownGroups.forEach((g, i) => {
    lines.push(line(groupTitle(g), g, ''));
    const rows = g.rows.slice(0, shown[i]);
    const hidden = g.rows.length - rows.length;
    rows.forEach((r, k) => {
      lines.push(hidden > 0 && k === rows.length - 1
        ? fit(`  … ${hidden + 1} more`, width)
        : line(rowTitle(g.kind, r, nowSeconds), r, '  '));
    });
  });
  if (shownGroups.length < view.groups.length && lines.length > 2) {
    lines[lines.length - 1] = fit(`… ${view.groups.length - shownGroups.length + 1} more groups`, width);
  }
  return [...lines, ...errors].slice(0, Math.max(1, opts.height));
}
