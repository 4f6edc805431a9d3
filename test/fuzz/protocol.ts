// What job.ts and its worker thread share: the plan, the shared progress cells and the messages.
import type { Finding, Input, TargetResult } from './framework.js';

/** Int32 cells of the shared progress buffer. */
export const Cell = {
  /** Incremented before every input. */
  Heartbeat: 0,
  /** Index in the plan of the target being run. */
  Target: 1,
  Iteration: 2,
  /** 1 while an input is inside the target (only then does a silent worker count as hung). */
  Running: 3,
  /** Bytes of the current input in the shared input area, and 0 bytes / 1 UTF-8 text. */
  Length: 4,
  Kind: 5,
} as const;
export const PROGRESS_CELLS = 6;
/** Bytes of the shared input area (a longer input that hangs the worker is named by its start). */
export const INPUT_AREA = 1 << 18;

export interface PlanEntry { name: string; iterations: number }

export type WorkerData = {
  entry: string;
  progress: SharedArrayBuffer;
  inputs: SharedArrayBuffer;
  /** A module whose `targets` replace the registry (the framework's own tests plant bugs with it). */
  targetsModule?: string;
} & (
  | { mode: 'run'; seed: number; plan: PlanEntry[]; strict: boolean }
  | { mode: 'replay'; target: string; replay: Input[] }
);

export type Replayed = ({ label: string } | { error: string; where?: string }) & { ms: number };

export type WorkerMessage =
  | { type: 'result'; result: TargetResult }
  | { type: 'finding'; finding: Finding }
  | { type: 'replayed'; results: Replayed[] }
  | { type: 'done' };
