// A learning Ethernet switch over any number of ports. Each port's received batch is classified
// into its VLAN, its source MAC learned, and every frame queued for the port(s) it goes to; each
// output port then gets one send() per input batch. Unknown unicast, broadcast and multicast
// flood to every other member of the VLAN; a frame never goes back out of the port it came in.
import { Fdb, type FdbRow } from './fdb.js';
import {
  ETH_HEADER, completeChecksum, frameVlan, isGroupAddress, macKey, parseMacKey, popVlan, pushVlan, segmentFrame,
} from './ethernet.js';
import { isSuperPacket, type Frame, type Port } from './port.js';
import { EthernetField } from '../packet/ethernet.js';

/**
 * 802.1Q membership of a port. An access port belongs to one VLAN and carries it untagged; a
 * trunk carries the allowed VLANs tagged and, if `native` is set, that one untagged. A port
 * without membership is transparent: untagged frames are VLAN 0 and tagged ones keep their tag.
 */
export type VlanMembership =
  | { mode: 'access'; pvid: number }
  | { mode: 'trunk'; allowed: Iterable<number> | 'all'; native?: number };

export interface PortStats {
  rxFrames: number;
  rxBytes: number;
  txFrames: number;
  txBytes: number;
  /** Frames received here that were flooded (unknown unicast, broadcast, multicast). */
  floods: number;
  /** Frames received here and dropped: malformed, group source MAC, outside the port's VLANs. */
  drops: number;
  /** Frames that could not go out of this port (malformed offload header, link down, send error). */
  txDrops: number;
  /** Frames received here whose destination sits behind this same port (no hairpin). */
  filtered: number;
}

export interface SwitchOptions {
  /** Seconds a learned MAC stays without traffic (default 300, like Linux bridges). */
  ageSeconds?: number;
  /** Most MACs learned at once (default 65536); when full, frames to new MACs are flooded. */
  maxMacs?: number;
  /** Called when a port's receive loop or send fails; the port is then removed. */
  onPortError?: (port: Port, error: unknown) => void;
}

export interface MacTableRow extends Omit<FdbRow<unknown>, 'target'> {
  port: string;
}

interface PortState {
  readonly port: Port;
  readonly index: number;
  /** VLAN an untagged frame belongs to here, or -1 when untagged frames are refused. */
  readonly untaggedVlan: number;
  /** Which tagged VLANs are allowed ('all' for transparent ports). */
  readonly tagged: Set<number> | 'all';
  readonly stats: PortStats;
  /**
   * Frames queued per output port index while one input batch is being switched: the first
   * pendingCounts[i] entries of pending[i] (the arrays are refilled in place batch after batch).
   */
  readonly pending: Frame[][];
  readonly pendingCounts: number[];
  /** The batch's sends (reused). */
  readonly sends: Promise<void>[];
  loop?: Promise<void>;
  removed: boolean;
}

const emptyStats = (): PortStats => ({
  rxFrames: 0, rxBytes: 0, txFrames: 0, txBytes: 0, floods: 0, drops: 0, txDrops: 0, filtered: 0,
});

/** Appends `f` to queue i, whose first counts[i] entries are this batch's. */
function put(queue: Frame[], counts: number[], i: number, f: Frame): void {
  const n = counts[i] ?? 0;
  queue[n] = f;
  counts[i] = n + 1;
}

function checkVid(vid: number, what: string): number {
  if (!Number.isInteger(vid) || vid < 1 || vid > 4094) throw new RangeError(`${what}: VLAN id must be 1..4094, got ${vid}`);
  return vid;
}

export class LearningSwitch {
  private readonly fdb: Fdb<PortState>;
  private readonly ports: (PortState | undefined)[] = [];
  private readonly abort = new AbortController();
  private readonly sweeper: NodeJS.Timeout;
  private readonly onPortError?: (port: Port, error: unknown) => void;
  private closed = false;

  constructor(opts: SwitchOptions = {}) {
    const age = opts.ageSeconds ?? 300;
    if (!(age > 0)) throw new RangeError(`ageSeconds must be positive, got ${age}`);
    this.fdb = new Fdb(age * 1000, opts.maxMacs ?? 65536);
    this.onPortError = opts.onPortError;
    // Lookups already ignore stale entries; the sweep only keeps the table from growing.
    this.sweeper = setInterval(() => this.fdb.sweep(performance.now()),
      Math.min(Math.max(age * 250, 250), 10_000));
    this.sweeper.unref();
  }

  get ageSeconds(): number { return this.fdb.ageMs / 1000; }
  set ageSeconds(s: number) {
    if (!(s > 0)) throw new RangeError(`ageSeconds must be positive, got ${s}`);
    this.fdb.ageMs = s * 1000;
  }

  /**
   * Adds a port and, unless `start` is false, starts forwarding what it receives. Port names
   * must be unique (they name the port in statistics and the MAC table).
   */
  addPort(port: Port, opts: { vlan?: VlanMembership; start?: boolean } = {}): void {
    if (this.closed) throw new Error('the switch is closed');
    if (this.live().some((p) => p.port.name === port.name)) throw new Error(`a port named ${port.name} is already on the switch`);
    let untaggedVlan = 0;
    let tagged: Set<number> | 'all' = 'all';
    const m = opts.vlan;
    if (m?.mode === 'access') {
      untaggedVlan = checkVid(m.pvid, port.name);
      tagged = new Set();
    } else if (m?.mode === 'trunk') {
      untaggedVlan = m.native === undefined ? -1 : checkVid(m.native, port.name);
      tagged = m.allowed === 'all' ? 'all' : new Set([...m.allowed].map((v) => checkVid(v, port.name)));
    }
    let index = this.ports.findIndex((p) => p === undefined);
    if (index < 0) index = this.ports.length;
    const state: PortState = { port, index, untaggedVlan, tagged, stats: emptyStats(), pending: [], pendingCounts: [], sends: [], removed: false };
    this.ports[index] = state;
    if (opts.start !== false) state.loop = this.run(state);
  }

  /** Takes a port off the switch (forgetting its MACs) without closing it. */
  removePort(port: Port): void {
    const state = this.live().find((p) => p.port === port);
    if (!state) return;
    state.removed = true;
    this.ports[state.index] = undefined;
    this.fdb.flush(state);
  }

  /** Adds a MAC that never ages, pinned behind `port`. */
  addStaticMac(port: Port, mac: string, vlan = 0): void {
    const state = this.live().find((p) => p.port === port);
    if (!state) throw new Error(`${port.name} is not on the switch`);
    this.fdb.addStatic(vlan, parseMacKey(mac), state);
  }

  stats(): Record<string, PortStats> {
    const out: Record<string, PortStats> = {};
    for (const p of this.live()) out[p.port.name] = { ...p.stats };
    return out;
  }

  /** Entries in the MAC table now, static ones included (without copying it, unlike macTable()). */
  get macCount(): number { return this.fdb.size; }

  /** MACs not learned because the table was full (see `maxMacs`). */
  get macsRefused(): number { return this.fdb.refused; }

  macTable(): MacTableRow[] {
    return this.fdb.rows(performance.now()).map(({ target, ...row }) => ({ ...row, port: target.port.name }));
  }

  private live(): PortState[] {
    return this.ports.filter((p): p is PortState => p !== undefined);
  }

  private async run(state: PortState): Promise<void> {
    try {
      for await (const batch of state.port.receive(this.abort.signal)) {
        if (state.removed) break;
        await this.switchBatch(state, batch);
      }
    } catch (e) {
      if (this.closed || state.removed) return;
      this.removePort(state.port);
      this.reportPortError(state.port, e);
    }
  }

  /** Switches one batch received on `port` (the receive loops call this; tests may too). */
  async forward(port: Port, frames: readonly Frame[]): Promise<void> {
    const state = this.live().find((p) => p.port === port);
    if (!state) throw new Error(`${port.name} is not on the switch`);
    await this.switchBatch(state, frames);
  }

  private classify(p: PortState, data: Uint8Array): number {
    const tag = frameVlan(data);
    // A priority tag (VID 0) says nothing about membership: treat it as untagged.
    if (tag <= 0) return p.untaggedVlan;
    if (p.tagged === 'all' || p.tagged.has(tag)) return tag;
    return -1;
  }

  private async switchBatch(inPort: PortState, frames: readonly Frame[]): Promise<void> {
    const now = performance.now();
    const ports = this.ports;
    const pending = inPort.pending;
    const counts = inPort.pendingCounts;
    const st = inPort.stats;
    // A bulk flow's frames share VLAN and addresses: learn and look up once per run of them.
    let runVlan = -1, runSrc = -1, runDst = -1;
    let runDest: PortState | undefined;
    for (const frame of frames) {
      const data = frame.data;
      st.rxFrames++;
      st.rxBytes += data.length;
      if (data.length < ETH_HEADER || isGroupAddress(data, EthernetField.src)) { st.drops++; continue; }
      const vlan = this.classify(inPort, data);
      if (vlan < 0) { st.drops++; continue; }
      const src = macKey(data, EthernetField.src);
      // Group destinations (-1) are never looked up: they flood.
      const dst = isGroupAddress(data, EthernetField.dst) ? -1 : macKey(data, EthernetField.dst);
      if (vlan !== runVlan || src !== runSrc || dst !== runDst) {
        this.fdb.learn(vlan, src, inPort, now);
        runDest = dst < 0 ? undefined : this.fdb.lookup(vlan, dst, now);
        runVlan = vlan; runSrc = src; runDst = dst;
      }
      const dest = runDest;
      if (dest !== undefined) {
        if (dest === inPort) { st.filtered++; continue; }
        if (!dest.removed) this.enqueue(dest, vlan, frame, pending, counts);
        continue;
      }
      st.floods++;
      for (const out of ports) {
        if (out === undefined || out === inPort) continue;
        this.enqueue(out, vlan, frame, pending, counts);
      }
    }
    const sends = inPort.sends;
    sends.length = 0;
    for (let i = 0; i < pending.length; i++) {
      const n = counts[i] ?? 0;
      if (n === 0) continue;
      counts[i] = 0;
      const queue = pending[i]!;
      if (queue.length !== n) queue.length = n;
      const out = ports[i];
      if (out === undefined) continue;
      sends.push(this.send(out, queue));
    }
    // The queues are this input port's again once every send has resolved (a port is done with
    // the frames it was given by then), so the next batch refills them in place.
    if (sends.length === 1) await sends[0];
    else if (sends.length > 1) await Promise.all(sends);
  }

  /** Queues `frame` for `out` in the form `out` carries VLAN `vlan` in, if it carries it at all. */
  private enqueue(out: PortState, vlan: number, frame: Frame, pending: Frame[][], counts: number[]): void {
    let wantTag: boolean;
    if (vlan === out.untaggedVlan) wantTag = false;
    else if (vlan !== 0 && (out.tagged === 'all' || out.tagged.has(vlan))) wantTag = true;
    else return; // not a member of this VLAN
    const tag = frameVlan(frame.data);
    let f = frame;
    if (wantTag && tag !== vlan) f = pushVlan(tag === 0 ? popVlan(frame) : frame, vlan);
    else if (!wantTag && tag >= 0) f = popVlan(frame);
    const queue = (pending[out.index] ??= []);
    if (f.offload !== undefined && !out.port.acceptsOffload) {
      if (isSuperPacket(f)) {
        const segments = segmentFrame(f);
        if (segments === undefined) { out.stats.txDrops++; return; }
        for (const s of segments) put(queue, counts, out.index, s);
        return;
      }
      const done = completeChecksum(f);
      if (done === undefined) { out.stats.txDrops++; return; }
      f = done;
    }
    put(queue, counts, out.index, f);
  }

  private async send(out: PortState, frames: Frame[]): Promise<void> {
    try {
      const accepted = await out.port.send(frames);
      const n = typeof accepted === 'number' ? Math.min(accepted, frames.length) : frames.length;
      out.stats.txFrames += n;
      out.stats.txDrops += frames.length - n;
      for (let i = 0; i < n; i++) out.stats.txBytes += frames[i]!.data.length;
    } catch (e) {
      out.stats.txDrops += frames.length;
      if (this.closed || out.removed) return;
      this.removePort(out.port);
      this.reportPortError(out.port, e);
    }
  }

  private reportPortError(port: Port, error: unknown): void {
    if (this.onPortError) this.onPortError(port, error);
    else console.warn(`tuntap switch: port ${port.name} removed after an error:`, error);
  }

  /** Stops every receive loop and closes every port. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.sweeper);
    this.abort.abort();
    const states = this.live();
    await Promise.allSettled(states.map((s) => s.port.close()));
    await Promise.allSettled(states.map((s) => s.loop));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
