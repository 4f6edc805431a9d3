// The fuzz job's worker thread: runs the planned targets one after the other and reports to
// job.ts. Before each input it copies the input into shared memory, so the main thread can name
// the input that hung the worker (a loop that never returns) or crashed it.
import { parentPort, workerData } from 'node:worker_threads';
import { FindingError, errorText, replay, runTarget, srcFrame, type Input, type Target } from './framework.js';
import { targets as registry } from './targets/index.js';
import { knownFindings } from './findings.js';
import { Cell, type WorkerData, type WorkerMessage } from './protocol.js';

const data = workerData as WorkerData;
const progress = new Int32Array(data.progress);
const inputArea = new Uint8Array(data.inputs);
const encoder = new TextEncoder();
const post = (m: WorkerMessage) => parentPort!.postMessage(m);

function holdInput(iteration: number, input: Input): void {
  let length: number;
  if (typeof input === 'string') {
    length = encoder.encodeInto(input, inputArea).written;
    progress[Cell.Kind] = 1;
  } else {
    length = Math.min(input.length, inputArea.length);
    inputArea.set(input.subarray(0, length));
    progress[Cell.Kind] = 0;
  }
  progress[Cell.Length] = length;
  progress[Cell.Iteration] = iteration;
  progress[Cell.Running] = 1;
  Atomics.add(progress, Cell.Heartbeat, 1);
}

async function main(): Promise<void> {
  const targets: readonly Target[] = data.targetsModule ? (await import(data.targetsModule) as { targets: Target[] }).targets : registry;
  const targetByName = (name: string): Target => {
    const t = targets.find((x) => x.name === name);
    if (!t) throw new Error(`no fuzz target "${name}"`);
    return t;
  };
  if (data.mode === 'replay') {
    const target = targetByName(data.target);
    const results = await replay(target, data.replay);
    post({
      type: 'replayed',
      results: results.map((r) => ('label' in r ? r : { error: errorText(r.error), where: srcFrame(r.error), ms: r.ms })),
    });
    return;
  }
  const known = data.strict ? [] : knownFindings;
  for (let index = 0; index < data.plan.length; index++) {
    const { name, iterations } = data.plan[index]!;
    progress[Cell.Target] = index;
    progress[Cell.Running] = 0;
    try {
      const result = await runTarget(targetByName(name), iterations, data.seed, {
        beforeInput: holdInput,
        afterInput: () => { progress[Cell.Running] = 0; },
        known,
      });
      post({ type: 'result', result });
    } catch (e) {
      if (e instanceof FindingError) { post({ type: 'finding', finding: e.finding }); return; }
      throw e;
    }
  }
  post({ type: 'done' });
}

await main();
