// What a control socket answers to `status`, made by the serving process and read back by
// `tuntap top`. The reader treats it as another process's bytes: every field is checked and
// bounded (strings cut short, numbers finite and not negative, lists capped) before use.
import type { TunProxy } from '../proxy/engine.js';
import type { LearningSwitch, PortStats } from '../l2/switch.js';

export interface ConnectionSnapshot {
  id: number;
  source: string;
  destination: string;
  state: string;
  bytesUp: number;
  bytesDown: number;
}

export interface ProxySnapshot {
  kind: 'proxy';
  command: string;
  name: string;
  pid: number;
  upstream: string;
  sessions: number;
  udpSessions: number;
  connectionsTotal: number;
  connectionsFailed: number;
  bytesUp: number;
  bytesDown: number;
  /** The busiest TCP sessions (at most MAX_CONNECTIONS), most bytes first. */
  connections: ConnectionSnapshot[];
}

/** A switch port's counters; `drops` counts both ways. */
export interface PortSnapshot extends Pick<PortStats, 'rxFrames' | 'rxBytes' | 'txFrames' | 'txBytes' | 'floods' | 'drops'> {
  name: string;
}

export interface BridgeSnapshot {
  kind: 'bridge';
  name: string;
  pid: number;
  macs: number;
  ports: PortSnapshot[];
}

export type Snapshot = ProxySnapshot | BridgeSnapshot;

export const MAX_CONNECTIONS = 500;
const MAX_PORTS = 1024;
const MAX_TEXT = 200;

export function proxySnapshot(command: string, name: string, upstream: string, proxy: TunProxy): ProxySnapshot {
  const s = proxy.stats();
  const connections = proxy.connections()
    .sort((a, b) => (b.bytesUp + b.bytesDown) - (a.bytesUp + a.bytesDown))
    .slice(0, MAX_CONNECTIONS)
    .map(({ id, source, destination, state, bytesUp, bytesDown }) => ({ id, source, destination, state, bytesUp, bytesDown }));
  return {
    kind: 'proxy', command, name, pid: process.pid, upstream,
    sessions: s.sessions, udpSessions: s.udpSessions, connectionsTotal: s.connectionsTotal, connectionsFailed: s.connectionsFailed,
    bytesUp: s.bytesUp, bytesDown: s.bytesDown, connections,
  };
}

export function bridgeSnapshot(name: string, sw: LearningSwitch): BridgeSnapshot {
  const ports = Object.entries(sw.stats()).map(([port, s]) => ({
    name: port, rxFrames: s.rxFrames, rxBytes: s.rxBytes, txFrames: s.txFrames, txBytes: s.txBytes,
    floods: s.floods, drops: s.drops + s.txDrops,
  }));
  return { kind: 'bridge', name, pid: process.pid, macs: sw.macCount, ports };
}

/** A string field, cut to MAX_TEXT characters; '' when it is not a string. */
function text(v: unknown): string {
  return typeof v === 'string' ? v.slice(0, MAX_TEXT) : '';
}

/** A count field: a finite number not below 0, else 0. */
function count(v: unknown): number {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : 0;
}

function list(v: unknown, max: number): Record<string, unknown>[] {
  if (!Array.isArray(v)) return [];
  return v.slice(0, max).filter((x): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x));
}

/** Checks an answer read from a control socket; undefined when it is neither kind. */
export function readSnapshot(x: Record<string, unknown>): Snapshot | undefined {
  if (x.kind === 'proxy') {
    return {
      kind: 'proxy', command: text(x.command), name: text(x.name), pid: count(x.pid), upstream: text(x.upstream),
      sessions: count(x.sessions), udpSessions: count(x.udpSessions), connectionsTotal: count(x.connectionsTotal),
      connectionsFailed: count(x.connectionsFailed), bytesUp: count(x.bytesUp), bytesDown: count(x.bytesDown),
      connections: list(x.connections, MAX_CONNECTIONS).map((c) => ({
        id: count(c.id), source: text(c.source), destination: text(c.destination), state: text(c.state),
        bytesUp: count(c.bytesUp), bytesDown: count(c.bytesDown),
      })),
    };
  }
  if (x.kind === 'bridge') {
    return {
      kind: 'bridge', name: text(x.name), pid: count(x.pid), macs: count(x.macs),
      ports: list(x.ports, MAX_PORTS).map((p) => ({
        name: text(p.name), rxFrames: count(p.rxFrames), rxBytes: count(p.rxBytes), txFrames: count(p.txFrames),
        txBytes: count(p.txBytes), floods: count(p.floods), drops: count(p.drops),
      })),
    };
  }
  return undefined;
}
