// Freeing what relayed bytes leave behind. Node reads a socket into a fresh buffer each time,
// and the buffer's memory goes back only when V8 collects the Buffer object. V8 sees it as
// external memory and collects on its account only when some 64 MiB more have accumulated, so
// a busy connection keeps tens of MiB of bytes already relayed resident. Asking for a
// young-generation collection (a scavenge: it copies only the live young objects, a fraction of
// a millisecond) every RECLAIM_EVERY bytes relayed frees them while they are still few.
import v8 from 'node:v8';
import vm from 'node:vm';

/** Bytes relayed between two young-generation collections. */
export const RECLAIM_EVERY = 4 * 1024 * 1024;

type Collect = (opts: { type: 'minor' | 'major' }) => void;

let collect: Collect | null | undefined;

// V8's gc() function, made available once; null where the flag cannot be set.
function collector(): Collect | null {
  if (collect === undefined) {
    try {
      v8.setFlagsFromString('--expose-gc');
      // A context made after the flag has gc(); the main context keeps its globals as they were.
      collect = vm.runInNewContext('gc') as Collect;
    } catch {
      collect = null;
    }
  }
  return collect;
}

/** Counts relayed bytes and collects the young generation every `every` of them. */
export class Reclaimer {
  #bytes = 0;
  collections = 0;
  constructor(readonly every = RECLAIM_EVERY) {}

  relayed(bytes: number): void {
    this.#bytes += bytes;
    if (this.#bytes < this.every) return;
    this.#bytes = 0;
    const gc = collector();
    if (!gc) return;
    gc({ type: 'minor' });
    this.collections++;
  }
}
