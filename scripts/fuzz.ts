// `npm run fuzz`: ≥ 1,000,000 random and mutated packets per packet parser (FUZZ_ITERATIONS and
// FUZZ_SEED override; extra arguments pick parsers by name).
import { fuzz, parsers } from '../test/packet/fuzz.js';

const iterations = Number(process.env.FUZZ_ITERATIONS ?? 1_000_000);
const seed = Number(process.env.FUZZ_SEED ?? (Date.now() & 0x7fffffff));
const only = process.argv.slice(2);
console.log(`fuzzing ${only.length ? only.join(', ') : Object.keys(parsers).join(', ')}: ${iterations} inputs each, seed ${seed}`);
for (const name of Object.keys(parsers)) {
  if (only.length && !only.includes(name)) continue;
  const t0 = performance.now();
  const r = fuzz(iterations, seed, [name])[name]!;
  console.log(`${name.padEnd(14)} ${String(r.ok).padStart(8)} parsed ${String(r.rejected).padStart(8)} rejected (PacketParseError)  ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}
console.log('no parser threw anything but PacketParseError or read past its buffer');
