// `tuntap top`'s model: it reads every WireGuard UAPI socket (ours and wireguard-go's) and
// every tuntap control socket, and turns successive readings into groups (an interface, a
// proxy, a bridge) of rows (peers, sessions, ports), each with its rates and the last minute of
// them, busiest first. Only the processes' own sockets are read, never /proc.
import { getStatus, listInterfaces, type InterfaceStatus } from '../wireguard/status.js';
import { UAPI_DIR } from '../wireguard/uapi.js';
import { controlDir, listControlSockets } from './control.js';
import { requestJson } from './control-client.js';
import { readSnapshot, type Snapshot } from './snapshot.js';

export interface TopSources {
  uapiDir?: string;
  controlDir?: string;
}

/** One reading of every socket. */
export interface Reading {
  /** Wall-clock ms. */
  time: number;
  wireguard: InterfaceStatus[];
  processes: Snapshot[];
  /** Sockets that answered wrongly (a socket nobody serves any more is not an error). */
  errors: string[];
}

export type Details = Record<string, string | number>;

export interface TopRow {
  name: string;
  /** Bytes received (from a peer, from the upstream, on a port) and sent, in total. */
  inBytes: number;
  outBytes: number;
  /** Bytes a second since the previous reading. */
  inRate: number;
  outRate: number;
  /** In plus out, bytes a second, one value per reading over the last minute, oldest first. */
  history: number[];
  details: Details;
}

export interface TopGroup extends TopRow {
  kind: 'wireguard' | 'proxy' | 'bridge';
  rows: TopRow[];
}

export interface TopView {
  time: string;
  groups: TopGroup[];
  errors: string[];
}

// A socket whose process has gone: no error worth showing.
const GONE = /ECONNREFUSED|ENOENT|no WireGuard interface/;

export async function readAll(sources: TopSources = {}): Promise<Reading> {
  const uapiDir = sources.uapiDir ?? UAPI_DIR;
  const errors: string[] = [];
  const wireguard: InterfaceStatus[] = [];
  const processes: Snapshot[] = [];
  const interfaces = listInterfaces(uapiDir);
  const sockets = listControlSockets(sources.controlDir ?? controlDir());
  await Promise.all([
    ...interfaces.map(async (name) => {
      try {
        wireguard.push(await getStatus(name, uapiDir));
      } catch (e) {
        if (!GONE.test((e as Error).message)) errors.push((e as Error).message);
      }
    }),
    ...sockets.map(async (s) => {
      try {
        const snap = readSnapshot(await requestJson(s.path, 'status'));
        if (snap) processes.push(snap);
        else errors.push(`${s.path}: an answer of no known kind`);
      } catch (e) {
        if (!GONE.test((e as Error).message)) errors.push((e as Error).message);
      }
    }),
  ]);
  wireguard.sort((a, b) => a.name.localeCompare(b.name));
  return { time: Date.now(), wireguard, processes, errors };
}

const WINDOW_MS = 60_000;

interface Series {
  inBytes: number;
  outBytes: number;
  at: number;
  points: Array<{ at: number; rate: number }>;
  seen: number;
}

/** Rates and the last minute of each row, from one reading to the next. */
export class TopModel {
  private readonly series = new Map<string, Series>();
  private generation = 0;

  update(reading: Reading): TopView {
    this.generation++;
    const groups: TopGroup[] = [];
    for (const w of reading.wireguard) {
      const key = `wg:${w.name}`;
      const rows = w.peers.map((p) => this.row(`${key}:${p.publicKey}`, p.publicKey, p.rxBytes, p.txBytes, reading.time, {
        endpoint: p.endpoint ?? '', allowedIps: p.allowedIps.join(','), latestHandshake: p.latestHandshake,
      }));
      groups.push(this.group('wireguard', key, w.name, rows, reading.time, {
        listenPort: w.listenPort, peers: w.peers.length, ...(w.publicKey ? { publicKey: w.publicKey } : {}),
      }));
    }
    for (const p of reading.processes) {
      const key = `${p.kind}:${p.pid}:${p.name}`;
      if (p.kind === 'proxy') {
        const rows = p.connections.map((c) => this.row(`${key}:${c.id}`, `${c.source} → ${c.destination}`, c.bytesDown, c.bytesUp, reading.time, {
          id: c.id, source: c.source, destination: c.destination, state: c.state,
        }));
        groups.push(this.group('proxy', key, p.name, rows, reading.time, {
          command: p.command, pid: p.pid, upstream: p.upstream, sessions: p.sessions, udpSessions: p.udpSessions,
          connectionsTotal: p.connectionsTotal, connectionsFailed: p.connectionsFailed,
        }, { inBytes: p.bytesDown, outBytes: p.bytesUp }));
      } else {
        const rows = p.ports.map((port) => this.row(`${key}:${port.name}`, port.name, port.rxBytes, port.txBytes, reading.time, {
          rxFrames: port.rxFrames, txFrames: port.txFrames, floods: port.floods, drops: port.drops,
        }));
        groups.push(this.group('bridge', key, p.name, rows, reading.time, { pid: p.pid, macs: p.macs, ports: p.ports.length }));
      }
    }
    // Rows (and their history) of what is gone: forgotten.
    for (const [k, s] of this.series) if (s.seen !== this.generation) this.series.delete(k);
    const busiest = (a: TopRow, b: TopRow) => (b.inRate + b.outRate) - (a.inRate + a.outRate) || (b.inBytes + b.outBytes) - (a.inBytes + a.outBytes);
    for (const g of groups) g.rows.sort(busiest);
    groups.sort(busiest);
    return { time: new Date(reading.time).toISOString(), groups, errors: reading.errors };
  }

  private group(kind: TopGroup['kind'], key: string, name: string, rows: TopRow[], now: number, details: Details,
    totals?: { inBytes: number; outBytes: number }): TopGroup {
    const inBytes = totals?.inBytes ?? rows.reduce((n, r) => n + r.inBytes, 0);
    const outBytes = totals?.outBytes ?? rows.reduce((n, r) => n + r.outBytes, 0);
    return { kind, ...this.row(key, name, inBytes, outBytes, now, details), rows };
  }

  private row(key: string, name: string, inTotal: number, outTotal: number, now: number, details: Details): TopRow {
    // The totals came from another process: anything but a count is taken for none.
    const inBytes = Number.isFinite(inTotal) && inTotal >= 0 ? inTotal : 0;
    const outBytes = Number.isFinite(outTotal) && outTotal >= 0 ? outTotal : 0;
    let s = this.series.get(key);
    let inRate = 0;
    let outRate = 0;
    if (!s) {
      s = { inBytes, outBytes, at: now, points: [], seen: 0 };
      this.series.set(key, s);
    } else if (now > s.at) {
      const dt = (now - s.at) / 1000;
      // A counter that went back (a restarted peer, a reused key) starts over.
      inRate = inBytes >= s.inBytes ? (inBytes - s.inBytes) / dt : 0;
      outRate = outBytes >= s.outBytes ? (outBytes - s.outBytes) / dt : 0;
      s.points.push({ at: now, rate: inRate + outRate });
      while (s.points.length > 0 && s.points[0]!.at <= now - WINDOW_MS) s.points.shift();
      s.inBytes = inBytes;
      s.outBytes = outBytes;
      s.at = now;
    }
    s.seen = this.generation;
    return { name, inBytes, outBytes, inRate, outRate, history: s.points.map((p) => p.rate), details };
  }
}
