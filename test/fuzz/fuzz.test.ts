// The fuzzing framework on planted bugs, a short job over every target (`npm run fuzz` runs the
// long one), and each finding's reproducer as a regression case. Cases for findings in files
// the fuzzer does not own are todo until their fix lands (see findings.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { guarded, ReadPastEnd, replay, runTarget, type Input } from './framework.js';
import { runJob, planByWeight, replayInWorker } from './job.js';
import { targets, targetByName } from './targets/index.js';
import { knownFindings } from './findings.js';
import { plantedError } from './planted.js';
import type { Replayed } from './protocol.js';

const PLANTED = new URL('./planted.ts', import.meta.url).href;

test('the read guard catches a read past the end', () => {
  const g = guarded(new Uint8Array(3));
  assert.equal(g[2], 0);
  assert.throws(() => g[3], ReadPastEnd);
});

test('planted bugs become findings naming a minimal input: an error, a broken invariant, a hang, a crash', async () => {
  const error = await runJob({ seed: 1, plan: [{ name: 'planted-error', iterations: 50_000 }], targetsModule: PLANTED });
  assert.equal(error.finding?.kind, 'error');
  assert.match(error.finding!.error, /TypeError: planted/);
  assert.equal(error.finding!.minimized, '42');
  const violation = await runJob({ seed: 1, plan: [{ name: 'planted-violation', iterations: 50_000 }], targetsModule: PLANTED });
  assert.equal(violation.finding?.kind, 'violation');
  assert.equal(violation.finding!.minimized, '"=="');
  const hang = await runJob({ seed: 1, plan: [{ name: 'planted-hang', iterations: 50_000 }], targetsModule: PLANTED, hangMs: 1000 });
  assert.equal(hang.finding?.kind, 'hang');
  assert.match(hang.finding!.input, /^ff/);
  const crash = await runJob({ seed: 1, plan: [{ name: 'planted-crash', iterations: 50_000 }], targetsModule: PLANTED });
  assert.equal(crash.finding?.kind, 'crash');
  assert.match(crash.finding!.error, /planted: thrown from a callback/);
  assert.match(crash.finding!.input, /^99/);
});

test('typed errors are counted as rejections; a known finding is counted and the run goes on', async () => {
  const r = await runTarget(plantedError, 20_000, 1, {
    known: [{ id: 'P1', target: 'planted-error', summary: 'planted', matches: (e) => e instanceof TypeError }],
  });
  assert.ok(r.outcomes.accepted! > 0 && r.outcomes.rejected! > 0 && r.outcomes['known P1']! > 0, JSON.stringify(r.outcomes));
});

test('a short job over every target: no finding beyond the known ones, and each target both accepts and refuses', async () => {
  const plan = planByWeight(targets, Number(process.env.FUZZ_ITERATIONS ?? 60_000), 200);
  const report = await runJob({ seed: Number(process.env.FUZZ_SEED ?? 1), plan });
  assert.equal(report.finding, undefined, report.finding && JSON.stringify(report.finding, null, 2));
  assert.equal(report.results.length, targets.length);
  for (const r of report.results) {
    const kinds = Object.keys(r.outcomes).filter((k) => !k.startsWith('known '));
    assert.ok(kinds.length >= 2, `${r.name} explored one outcome only: ${JSON.stringify(r.outcomes)}`);
  }
});

/** Asserts that an input now gets an outcome (the parser's answer), not an error. */
function answered(results: ReadonlyArray<Replayed | { label?: string; error?: unknown }>, inputs: readonly Input[]): void {
  results.forEach((r, i) => assert.ok('label' in r, `input ${JSON.stringify(inputs[i])} still fails: ${String((r as { error?: unknown }).error)}`));
}

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

test('fixed: an ack whose echoed request claims 2^31 bytes no longer throws from parseAck (align4 wrapped)', async () => {
  // NLMSG_ERROR, NLM_F_ACK_TLVS; errno -22; the echoed header's length 0x80000001.
  const ack = hex('24000000 0200 0002 01000000 00000000  eaffffff  01000080 1000 0000 00000000 00000000');
  const inputs = [ack];
  for (const name of ['netlink-ack', 'netlink-batch']) answered(await replay(targetByName(name), inputs), inputs);
});

const todo = (id: string) => {
  const f = knownFindings.find((k) => k.id === id)!;
  return { todo: `${id}: ${f.summary}` };
};

const regressions: Array<{ id: string; target: string; inputs: Input[]; inWorker?: boolean; withinMs?: number }> = [
  { id: 'F1', target: 'netlink-batch', inputs: [hex('14000000 1100 0100 00000000 00000000 00000000')] },
  { id: 'F2', target: 'wg-config', inputs: ['[Interface]\nTable = 4294967297'] },
  { id: 'F3', target: 'wg-config', inputs: ['[Interface]\nFwMark = 0x', '[Interface]\nFwMark = 0x1ffffffff'] },
];

for (const r of regressions) {
  test(`${r.id} (${r.target}): its reproducers get an answer${r.withinMs ? ` within ${r.withinMs} ms` : ''}`, todo(r.id), async () => {
    const results = r.inWorker ? await replayInWorker(r.target, r.inputs) : await replay(targetByName(r.target), r.inputs);
    answered(results, r.inputs);
    if (r.withinMs) for (const x of results) assert.ok(x.ms < r.withinMs, `took ${x.ms.toFixed(0)} ms`);
  });
}
