// The forwarding database: (VLAN, MAC) → where that MAC was last seen, forgotten after `ageMs`
// without traffic — the same idea as the TUN driver's flow table and its ageing timer.
import { macKeyToString } from './ethernet.js';

export interface FdbEntry<T> {
  target: T;
  /** Monotonic milliseconds of the last frame from this MAC. */
  seen: number;
  /** Static entries never age and are never moved by learning. */
  static: boolean;
}

export interface FdbRow<T> {
  vlan: number;
  mac: string;
  target: T;
  /** Seconds since the MAC was last seen. */
  age: number;
  static: boolean;
}

export class Fdb<T> {
  /** One table per VLAN (0 when the switch is VLAN-unaware): MAC keys are already 48 bits. */
  private readonly vlans = new Map<number, Map<number, FdbEntry<T>>>();
  ageMs: number;
  /** Most learned entries kept; beyond it new MACs are not learned (their frames flood). */
  readonly maxEntries: number;
  private count = 0;
  private lastFullSweep = -Infinity;
  /** New MACs not learned because the table was full. */
  refused = 0;

  constructor(ageMs: number, maxEntries = 65536) {
    this.ageMs = ageMs;
    this.maxEntries = maxEntries;
  }

  private table(vlan: number): Map<number, FdbEntry<T>> {
    let t = this.vlans.get(vlan);
    if (t === undefined) { t = new Map(); this.vlans.set(vlan, t); }
    return t;
  }

  /** Records that `mac` was seen behind `target`; returns true when the entry is new or moved. */
  learn(vlan: number, mac: number, target: T, now: number): boolean {
    const t = this.table(vlan);
    const e = t.get(mac);
    if (e === undefined) {
      // A flood of invented source MACs must not grow the table without bound, nor cost a
      // sweep of the whole full table per frame: sweep at most every quarter age (max 1 s).
      if (this.count >= this.maxEntries) {
        if (now - this.lastFullSweep >= Math.min(1000, this.ageMs / 4)) {
          this.lastFullSweep = now;
          this.sweep(now);
        }
        if (this.count >= this.maxEntries) {
          this.refused++;
          return false;
        }
      }
      t.set(mac, { target, seen: now, static: false });
      this.count++;
      return true;
    }
    if (e.static) return false;
    e.seen = now;
    if (e.target === target) return false;
    e.target = target;
    return true;
  }

  addStatic(vlan: number, mac: number, target: T): void {
    const t = this.table(vlan);
    const e = t.get(mac);
    if (e !== undefined && !e.static) this.count--;
    t.set(mac, { target, seen: 0, static: true });
  }

  /** The live entry for `mac`, dropping it on the way if it has aged out. */
  lookup(vlan: number, mac: number, now: number): T | undefined {
    const t = this.vlans.get(vlan);
    if (t === undefined) return undefined;
    const e = t.get(mac);
    if (e === undefined) return undefined;
    if (!e.static && now - e.seen > this.ageMs) {
      t.delete(mac);
      this.count--;
      return undefined;
    }
    return e.target;
  }

  /** Removes aged entries; returns how many went. */
  sweep(now: number): number {
    let removed = 0;
    for (const t of this.vlans.values()) {
      for (const [mac, e] of t) {
        if (!e.static && now - e.seen > this.ageMs) { t.delete(mac); removed++; this.count--; }
      }
    }
    return removed;
  }

  /** Forgets every entry pointing at `target` (its port went away). */
  flush(target: T): void {
    for (const t of this.vlans.values()) {
      for (const [mac, e] of t) {
        if (e.target !== target) continue;
        t.delete(mac);
        if (!e.static) this.count--;
      }
    }
  }

  get size(): number {
    let n = 0;
    for (const t of this.vlans.values()) n += t.size;
    return n;
  }

  rows(now: number): FdbRow<T>[] {
    const out: FdbRow<T>[] = [];
    for (const [vlan, t] of this.vlans) {
      for (const [mac, e] of t) {
        if (!e.static && now - e.seen > this.ageMs) continue;
        out.push({ vlan, mac: macKeyToString(mac), target: e.target,
          age: e.static ? 0 : Math.round((now - e.seen) / 100) / 10, static: e.static });
      }
    }
    return out;
  }
}
