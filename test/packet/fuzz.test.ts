// Short fuzz run in the suite (npm run fuzz runs ≥ 1,000,000 per parser).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fuzz, guarded, ReadPastEnd } from './fuzz.js';

test('the read guard catches a read past the end', () => {
  const g = guarded(new Uint8Array(3));
  assert.equal(g[2], 0);
  assert.throws(() => g[3], ReadPastEnd);
});

test('parsers throw only PacketParseError and never read past the buffer (20k each)', () => {
  // Fixed seed in the suite (reproducible); npm run fuzz explores new seeds.
  const result = fuzz(Number(process.env.FUZZ_ITERATIONS ?? 20_000), Number(process.env.FUZZ_SEED ?? 1));
  for (const [name, r] of Object.entries(result)) {
    assert.ok(r.ok > 0 || name === 'pcap', `${name} accepted some inputs`);
    if (!['frameEthernet', 'frameRaw', 'gro'].includes(name)) assert.ok(r.rejected > 0, `${name} rejected some inputs`); // summarize() reports errors in its result; GRO passes bad packets through
  }
});
