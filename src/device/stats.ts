// Interface counters from /proc/<self>/net/dev, read inside the device's namespace.

export interface InterfaceStats {
  rxBytes: number; rxPackets: number; rxErrors: number; rxDropped: number; rxFifo: number; rxFrame: number;
  rxCompressed: number; rxMulticast: number;
  txBytes: number; txPackets: number; txErrors: number; txDropped: number; txFifo: number; txCollisions: number;
  txCarrier: number; txCompressed: number;
}

const fields: (keyof InterfaceStats)[] = [
  'rxBytes', 'rxPackets', 'rxErrors', 'rxDropped', 'rxFifo', 'rxFrame', 'rxCompressed', 'rxMulticast',
  'txBytes', 'txPackets', 'txErrors', 'txDropped', 'txFifo', 'txCollisions', 'txCarrier', 'txCompressed',
];

/** Parses /proc/net/dev text; returns the counters of `name`, or undefined when absent. */
export function parseNetDev(text: string, name: string): InterfaceStats | undefined {
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon < 0 || line.slice(0, colon).trim() !== name) continue;
    const values = line.slice(colon + 1).trim().split(/\s+/).map(Number);
    const stats = {} as InterfaceStats;
    fields.forEach((f, i) => { stats[f] = values[i] ?? 0; });
    return stats;
  }
  return undefined;
}
