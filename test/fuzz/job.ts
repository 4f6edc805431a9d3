// Runs a fuzz job in a worker thread and watches it. The worker reports each target's counts
// and any finding; the watchdog here catches what the worker cannot report itself: an input it
// never returns from (a hang) or an exception that kills it (a crash). Both are named by the
// input the worker left in shared memory.
import { Worker } from 'node:worker_threads';
import { formatInput, type Finding, type Input, type TargetResult } from './framework.js';
import { Cell, INPUT_AREA, PROGRESS_CELLS, type PlanEntry, type Replayed, type WorkerData, type WorkerMessage } from './protocol.js';

export type { PlanEntry } from './protocol.js';

export interface JobOptions {
  seed: number;
  /** A module exporting `targets` to run instead of the registry's. */
  targetsModule?: string;
  plan: PlanEntry[];
  /** Stop on known findings too (by default they are counted and the job goes on). */
  strict?: boolean;
  /** A synchronous input running this long is a hang (default 20 s). */
  hangMs?: number;
  onResult?(result: TargetResult): void;
}

export interface JobReport {
  results: TargetResult[];
  finding?: Finding;
}

const BOOT = new URL('../device/worker-boot.mjs', import.meta.url);
const ENTRY = new URL('./worker.ts', import.meta.url).href;

function startWorker(data: WorkerData): { worker: Worker; progress: Int32Array; inputs: Uint8Array } {
  const worker = new Worker(BOOT, { workerData: data });
  return { worker, progress: new Int32Array(data.progress), inputs: new Uint8Array(data.inputs) };
}

function sharedAreas(): { progress: SharedArrayBuffer; inputs: SharedArrayBuffer } {
  return { progress: new SharedArrayBuffer(4 * PROGRESS_CELLS), inputs: new SharedArrayBuffer(INPUT_AREA) };
}

/** The input the worker was running, from shared memory. */
function heldInput(progress: Int32Array, inputs: Uint8Array): Input {
  const bytes = inputs.slice(0, progress[Cell.Length]!);
  return progress[Cell.Kind] === 1 ? new TextDecoder().decode(bytes) : bytes;
}

export function runJob(opts: JobOptions): Promise<JobReport> {
  const areas = sharedAreas();
  const { worker, progress, inputs } = startWorker({
    mode: 'run', entry: ENTRY, ...areas, seed: opts.seed, plan: opts.plan, strict: opts.strict ?? false,
    targetsModule: opts.targetsModule,
  });
  const hangMs = opts.hangMs ?? 20_000;
  const results: TargetResult[] = [];
  return new Promise<JobReport>((resolve, reject) => {
    let settled = false;
    let lastBeat = -1;
    let lastChange = Date.now();
    const stuck = (kind: 'hang' | 'crash', error: string): Finding => ({
      target: opts.plan[progress[Cell.Target]!]?.name ?? '?', seed: opts.seed, iteration: progress[Cell.Iteration]!,
      kind, error, input: formatInput(heldInput(progress, inputs)),
    });
    const finish = (report: JobReport): void => {
      if (settled) return;
      settled = true;
      clearInterval(watchdog);
      void worker.terminate().then(() => resolve(report), () => resolve(report));
    };
    const watchdog = setInterval(() => {
      const beat = Atomics.load(progress, Cell.Heartbeat);
      if (beat !== lastBeat || Atomics.load(progress, Cell.Running) === 0) {
        lastBeat = beat;
        lastChange = Date.now();
      } else if (Date.now() - lastChange > hangMs) {
        finish({ results, finding: stuck('hang', `no return from the target within ${hangMs} ms`) });
      }
    }, 250);
    worker.on('message', (m: WorkerMessage) => {
      if (m.type === 'result') { results.push(m.result); opts.onResult?.(m.result); }
      else if (m.type === 'finding') finish({ results, finding: m.finding });
      else if (m.type === 'done') finish({ results });
    });
    worker.on('error', (e) => finish({ results, finding: stuck('crash', `the worker died: ${e.stack ?? e}`) }));
    worker.on('exit', (code) => {
      if (settled) return;
      settled = true;
      clearInterval(watchdog);
      reject(new Error(`fuzz worker exited with ${code} before finishing its plan`));
    });
  });
}

/** Runs inputs on a fresh instance of one target in a worker (as a job would); returns each outcome. */
export function replayInWorker(target: string, inputs: Input[], targetsModule?: string): Promise<Replayed[]> {
  const { worker } = startWorker({ mode: 'replay', entry: ENTRY, ...sharedAreas(), target, replay: inputs, targetsModule });
  return new Promise<Replayed[]>((resolve, reject) => {
    worker.on('message', (m: WorkerMessage) => {
      if (m.type === 'replayed') { resolve(m.results); void worker.terminate(); }
    });
    worker.on('error', reject);
    worker.on('exit', (code) => reject(new Error(`fuzz worker exited with ${code} before answering`)));
  });
}

/** Splits `total` inputs over the targets by weight (each gets at least `floor`). */
export function planByWeight(targets: ReadonlyArray<{ name: string; weight: number }>, total: number, floor = 1): PlanEntry[] {
  const sum = targets.reduce((s, t) => s + t.weight, 0);
  return targets.map((t) => ({ name: t.name, iterations: Math.max(floor, Math.round((total * t.weight) / sum)) }));
}
