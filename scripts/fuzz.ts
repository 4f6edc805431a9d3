// `npm run fuzz [TARGET|LAYER ...]`: the long fuzz job — 10,000,000 inputs by default, split over
// the targets by weight (FUZZ_ITERATIONS sets the total, FUZZ_SEED the seed, FUZZ_STRICT=1 stops
// on known findings too). Prints each target's count, rate and outcomes; on a finding prints the
// seed and a minimized reproducer and exits 1. Sockets and devices stay in private namespaces.
import { runJob, planByWeight } from '../test/fuzz/job.js';
import { selectTargets } from '../test/fuzz/targets/index.js';
import { formatFinding, type TargetResult } from '../test/fuzz/framework.js';
import { knownFindings } from '../test/fuzz/findings.js';

const total = Number(process.env.FUZZ_ITERATIONS ?? 10_000_000);
const seed = Number(process.env.FUZZ_SEED ?? (Date.now() & 0x7fffffff));
const strict = process.env.FUZZ_STRICT === '1';
if (!Number.isSafeInteger(total) || total < 1 || !Number.isSafeInteger(seed)) {
  console.error('FUZZ_ITERATIONS must be a positive whole number and FUZZ_SEED a whole number');
  process.exit(2);
}
let chosen;
try {
  chosen = selectTargets(process.argv.slice(2));
} catch (e) {
  console.error((e as Error).message);
  process.exit(2);
}
const plan = planByWeight(chosen, total);
const planned = plan.reduce((s, p) => s + p.iterations, 0);
console.log(`fuzzing ${plan.length} targets, ${planned.toLocaleString('en')} inputs, seed ${seed}${strict ? ' (strict)' : ''}`);

const rate = (n: number, ms: number) => Math.round(n / (ms / 1000)).toLocaleString('en');
const describeOutcomes = (r: TargetResult) => Object.entries(r.outcomes).sort((a, b) => b[1] - a[1])
  .map(([k, v]) => `${k} ${v}`).join(', ');

const t0 = performance.now();
const report = await runJob({
  seed, plan, strict,
  onResult: (r) => console.log(`${r.layer.padEnd(9)} ${r.name.padEnd(20)} ${r.inputs.toLocaleString('en').padStart(11)} inputs `
    + `${rate(r.inputs, r.ms).padStart(9)}/s ${(r.ms / 1000).toFixed(1).padStart(6)} s  ${describeOutcomes(r)}`),
});
const ms = performance.now() - t0;
const done = report.results.reduce((s, r) => s + r.inputs, 0);
console.log(`${done.toLocaleString('en')} inputs in ${(ms / 1000).toFixed(1)} s (${rate(done, ms)}/s overall)`);
const knownHits = report.results.flatMap((r) => Object.entries(r.outcomes).filter(([k]) => k.startsWith('known ')));
for (const f of knownFindings) {
  const hits = knownHits.filter(([k]) => k === `known ${f.id}`).reduce((s, [, v]) => s + v, 0);
  if (hits > 0) console.log(`known finding ${f.id} (${f.target}) hit ${hits} times: ${f.summary}`);
}
if (report.finding) {
  console.log(formatFinding(report.finding));
  process.exit(1);
}
console.log(knownHits.length > 0
  ? 'no new finding: every other input was accepted or rejected with the parser\'s typed error'
  : 'no finding: every input was accepted or rejected with the parser\'s typed error');
