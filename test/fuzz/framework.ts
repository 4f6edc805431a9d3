// The fuzzing framework: a target per parser (its corpus of valid inputs, what it feeds the
// parser, which errors are the parser's typed answer to bad input), and a runner that feeds each
// target random and mutated inputs, counts what happened and turns anything else — another
// error, a broken invariant, a read past the buffer — into a finding with a reproducer.
import { ByteMutator, TextMutator } from './mutate.js';
import { Rng, targetSeed } from './rng.js';

export type Layer = 'packet' | 'netlink' | 'wireguard' | 'proxy';

/** What one input did, counted per target ('parsed', 'dropped: replay', ...); nothing means 'accepted'. */
export type Outcome = string | void;

/** A target's state for one run: a parser needs none, the WireGuard engine has sessions. */
export interface Instance<I> {
  run(input: I): Outcome | Promise<Outcome>;
  /** Valid inputs for the state the instance is in now (fresh sessions, newer timestamps). */
  corpus?(): I[] | Promise<I[]>;
  close?(): void | Promise<void>;
}

interface TargetBase<I> {
  name: string;
  layer: Layer;
  /** What the target feeds and what it checks besides "no untyped error". */
  about: string;
  /** The errors that are the parser's typed answer to bad input. */
  isTyped(e: unknown): boolean;
  /** Share of the long job's inputs (a cheap parser gets more than a socket handshake). */
  weight: number;
  corpus(): I[];
  create(): Instance<I> | Promise<Instance<I>>;
  /** With an instance corpus: fetch it again every this many inputs. */
  refreshEvery?: number;
  /** Deadline per input of an asynchronous target; missing it is a finding (a hang). */
  timeoutMs?: number;
}

export interface BytesTarget extends TargetBase<Uint8Array> {
  kind: 'bytes';
  maxLength?: number;
  /** Plausible first bytes for random inputs (version nibbles, message types). */
  firstBytes?: readonly number[];
  /** Hand the parser a view whose reads past the end throw (for parsers that index bytes). */
  guard?: boolean;
}

export interface TextTarget extends TargetBase<string> {
  kind: 'text';
  /** Words of the format (keys, values) for the token mutator. */
  dictionary: readonly string[];
  maxLength?: number;
}

export type Target = BytesTarget | TextTarget;
export type Input = Uint8Array | string;

/** A broken invariant: thrown by a target, never typed. */
export class Violation extends Error {
  override name = 'Violation';
}

export function check(condition: unknown, what: string): asserts condition {
  if (!condition) throw new Violation(what);
}

export class ReadPastEnd extends Error {
  override name = 'ReadPastEnd';
}

/** A view of `b` whose element reads past its end throw (subarrays and methods see the plain bytes). */
export function guarded<T extends Uint8Array>(b: T): T {
  return new Proxy(b, {
    get(target, prop) {
      if (typeof prop === 'string') {
        const c = prop.charCodeAt(0);
        if (c >= 48 && c <= 57 && Number(prop) >= target.length) throw new ReadPastEnd(`read of [${prop}] past length ${target.length}`);
      }
      const v = Reflect.get(target, prop, target);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
}

/** A failure already reported and waiting for a fix in a file the fuzzer does not own. */
export interface KnownFinding {
  id: string;
  target: string;
  summary: string;
  matches(e: unknown): boolean;
}

export interface Finding {
  target: string;
  seed: number;
  iteration: number;
  kind: 'error' | 'violation' | 'hang' | 'crash';
  /** "Name: message" of what was thrown. */
  error: string;
  /** The first stack frame in src/, if any. */
  where?: string;
  /** Hex for bytes, a JSON string for text. */
  input: string;
  minimized?: string;
  note?: string;
}

export class FindingError extends Error {
  constructor(readonly finding: Finding) {
    super(`finding in ${finding.target}: ${finding.error}`);
    this.name = 'FindingError';
  }
}

export interface TargetResult {
  name: string;
  layer: Layer;
  inputs: number;
  outcomes: Record<string, number>;
  ms: number;
}

export interface RunHooks {
  /** Called with each input before it runs (the worker copies it where its watchdog can read it). */
  beforeInput?(iteration: number, input: Input): void;
  /** Called when that input is done with (before a failure is minimized). */
  afterInput?(): void;
  /** Failures that are counted (as "known F1") instead of ending the run. */
  known?: readonly KnownFinding[];
}

export function formatInput(input: Input): string {
  return typeof input === 'string' ? JSON.stringify(input) : Buffer.from(input).toString('hex');
}

/** Makes inputs for a target: mostly mutated corpus entries, some random, a few unmodified. */
function inputMaker(t: Target): (rng: Rng, corpus: readonly Input[]) => Input {
  if (t.kind === 'bytes') {
    const m = new ByteMutator(t.maxLength ?? 4096);
    return (rng, corpus) => {
      const c = corpus as readonly Uint8Array[];
      if (c.length === 0 || rng.oneIn(8)) return m.random(rng, t.firstBytes);
      const base = rng.pick(c);
      return rng.oneIn(32) ? base.slice() : m.mutate(rng, base, c);
    };
  }
  const m = new TextMutator(t.dictionary, t.maxLength);
  return (rng, corpus) => {
    const c = corpus as readonly string[];
    if (c.length === 0 || rng.oneIn(8)) return m.random(rng);
    const base = rng.pick(c);
    return rng.oneIn(32) ? base : m.mutate(rng, base, c);
  };
}

function prepare(t: Target, input: Input): Input {
  return t.kind === 'bytes' && t.guard ? guarded(input as Uint8Array) : input;
}

function withDeadline<T>(p: Promise<T>, ms: number | undefined): Promise<T> {
  if (!ms) return p;
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Violation(`did not settle within ${ms} ms (a hang)`)), ms);
  });
  return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
}

/** A typed error: the parser's own answer to bad input (a broken invariant never is). */
function expected(t: Target, e: unknown): boolean {
  return !(e instanceof Violation) && !(e instanceof ReadPastEnd) && t.isTyped(e);
}

type Result = { label: string } | { error: unknown };
const failed = (t: Target, e: unknown): Result => (expected(t, e) ? { label: 'rejected' } : { error: e });

/** Runs one input: its outcome label, or the error that is not a typed one. A synchronous target's answer comes without a promise. */
function runOne(t: Target, inst: Instance<Input>, input: Input): Result | Promise<Result> {
  let r: Outcome | Promise<Outcome>;
  try {
    r = inst.run(prepare(t, input));
  } catch (e) {
    return failed(t, e);
  }
  if (r instanceof Promise) return withDeadline(r, t.timeoutMs).then((label) => ({ label: label || 'accepted' }), (e) => failed(t, e));
  return { label: r || 'accepted' };
}

/**
 * Feeds `iterations` inputs to target `t`. Resolves with the counts, or rejects with a
 * FindingError carrying the seed, the input and a minimized reproducer.
 */
export async function runTarget(t: Target, iterations: number, seed: number, hooks: RunHooks = {}): Promise<TargetResult> {
  const rng = new Rng(targetSeed(seed, t.name));
  const make = inputMaker(t);
  const inst = await t.create() as Instance<Input>;
  const outcomes: Record<string, number> = {};
  const t0 = performance.now();
  try {
    let corpus: Input[] = await (inst.corpus?.() ?? t.corpus());
    for (let i = 0; i < iterations; i++) {
      if (inst.corpus && t.refreshEvery && i > 0 && i % t.refreshEvery === 0) corpus = await inst.corpus();
      const input = make(rng, corpus);
      hooks.beforeInput?.(i, input);
      let result = runOne(t, inst, input);
      if (result instanceof Promise) result = await result;
      hooks.afterInput?.();
      let label: string;
      if ('label' in result) {
        label = result.label;
      } else {
        const e = result.error;
        const known = hooks.known?.find((k) => k.target === t.name && k.matches(e));
        if (!known) throw new FindingError(await describeFailure(t, seed, i, input, e));
        label = `known ${known.id}`;
      }
      outcomes[label] = (outcomes[label] ?? 0) + 1;
    }
  } finally {
    await inst.close?.();
  }
  return { name: t.name, layer: t.layer, inputs: iterations, outcomes, ms: performance.now() - t0 };
}

export type Replay = ({ label: string } | { error: unknown }) & { ms: number };

/** Runs given inputs (regression cases) on a fresh instance; returns each one's outcome or failure and time. */
export async function replay(t: Target, inputs: readonly Input[]): Promise<Replay[]> {
  const inst = await t.create() as Instance<Input>;
  try {
    const out: Replay[] = [];
    for (const input of inputs) {
      const t0 = performance.now();
      const r = await runOne(t, inst, input);
      out.push({ ...r, ms: performance.now() - t0 });
    }
    return out;
  } finally {
    await inst.close?.();
  }
}

export function errorText(e: unknown): string {
  return e instanceof Error ? `${e.name}: ${e.message}` : `thrown ${typeof e}: ${String(e)}`;
}

/** The first stack frame inside src/ (where the parser failed), if any. */
export function srcFrame(e: unknown): string | undefined {
  const stack = e instanceof Error ? e.stack ?? '' : '';
  const line = stack.split('\n').find((l) => l.includes('/src/'));
  return line?.trim().replace(/^at /, '').replace(/\(?(file:\/\/)?\/[^ ]*?\/(src\/[^)]*)\)?/, '($2)');
}

/** Two failures are the same when their class and message agree with the numbers left out. */
function signature(e: unknown): string {
  return `${e instanceof Error ? e.constructor.name : typeof e}:${errorText(e).replace(/[0-9a-f]{6,}|\d+/g, '#').slice(0, 100)}`;
}

async function describeFailure(t: Target, seed: number, iteration: number, input: Input, e: unknown): Promise<Finding> {
  const finding: Finding = {
    target: t.name, seed, iteration, kind: e instanceof Violation ? 'violation' : 'error',
    error: errorText(e), where: srcFrame(e), input: formatInput(input),
  };
  const small = await minimize(t, input, signature(e));
  if (small === undefined) finding.note = 'does not fail on a fresh instance: it depends on the inputs before it';
  else if (formatInput(small) !== finding.input) finding.minimized = formatInput(small);
  return finding;
}

/**
 * Shrinks a failing input by removing ever smaller chunks while it still fails the same way on a
 * fresh instance. Undefined when even the original does not fail there.
 */
export async function minimize(t: Target, input: Input, sig: string, budget = 1500): Promise<Input | undefined> {
  let trials = 0;
  const fails = async (candidate: Input): Promise<boolean> => {
    trials++;
    const [r] = await replay(t, [candidate]);
    return r !== undefined && 'error' in r && signature(r.error) === sig;
  };
  if (!(await fails(input))) return undefined;
  const cut = (x: Input, at: number, n: number): Input => (typeof x === 'string'
    ? x.slice(0, at) + x.slice(at + n)
    : Uint8Array.from([...x.subarray(0, at), ...x.subarray(at + n)]));
  let best = input;
  if (typeof best === 'string') {
    // Whole lines first: cutting text at random places mostly makes a different error.
    const lines = best.split('\n');
    for (let i = 0; i < lines.length && trials < budget;) {
      const candidate = [...lines.slice(0, i), ...lines.slice(i + 1)].join('\n');
      if (await fails(candidate)) { lines.splice(i, 1); best = candidate; } else i++;
    }
  }
  for (let chunk = Math.max(1, best.length >> 1); chunk >= 1 && trials < budget; chunk >>= 1) {
    for (let at = 0; at < best.length && trials < budget;) {
      const candidate = cut(best, at, chunk);
      if (await fails(candidate)) best = candidate; else at += chunk;
    }
  }
  return best;
}

export function formatFinding(f: Finding): string {
  const lines = [
    `FINDING in ${f.target} (${f.kind}), seed ${f.seed}, input #${f.iteration}`,
    `  ${f.error}`,
  ];
  if (f.where) lines.push(`  at ${f.where}`);
  const shown = f.input.length > 4000 ? `${f.input.slice(0, 4000)}... (${f.input.length} characters in all)` : f.input;
  lines.push(`  input:     ${shown}`);
  if (f.minimized) lines.push(`  minimized: ${f.minimized}`);
  if (f.note) lines.push(`  note: ${f.note}`);
  lines.push(`  reproduce: FUZZ_SEED=${f.seed} npm run fuzz -- ${f.target}`);
  return lines.join('\n');
}
