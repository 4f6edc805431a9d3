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
  const job = (name: string) => runJob({ seed: 1, plan: [{ name, iterations: 50_000 }], targetsModule: PLANTED, hangMs: 1000 });
  const [error, violation, hang, crash] = await Promise.all(['planted-error', 'planted-violation', 'planted-hang', 'planted-crash'].map(job));
  assert.equal(error!.finding?.kind, 'error');
  assert.match(error!.finding!.error, /TypeError: planted/);
  assert.equal(error!.finding!.minimized, '42');
  assert.equal(violation!.finding?.kind, 'violation');
  assert.equal(violation!.finding!.minimized, '"=="');
  assert.equal(hang!.finding?.kind, 'hang');
  assert.match(hang!.finding!.input, /^ff/);
  assert.equal(crash!.finding?.kind, 'crash');
  assert.match(crash!.finding!.error, /planted: thrown from a callback/);
  assert.match(crash!.finding!.input, /^99/);
});

test('typed errors are counted as rejections; a known finding is counted and the run goes on', async () => {
  const r = await runTarget(plantedError, 20_000, 1, {
    known: [{ id: 'P1', target: 'planted-error', summary: 'planted', matches: (e) => e instanceof TypeError }],
  });
  assert.ok(r.outcomes.accepted! > 0 && r.outcomes.rejected! > 0 && r.outcomes['known P1']! > 0, JSON.stringify(r.outcomes));
});

test('a short job over every target: no finding beyond the known ones, and each target both accepts and refuses', async () => {
  const plan = planByWeight(targets, Number(process.env.FUZZ_ITERATIONS ?? 30_000), 150);
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

/** A todo while the finding is listed in findings.ts; a plain test once it is fixed and removed. */
const todo = (id: string) => {
  const f = knownFindings.find((k) => k.id === id);
  return f ? { todo: `${id}: ${f.summary}` } : {};
};

/** A DNS query (question only) for a name given as its raw labels. */
function dnsQuery(...labels: string[]): Buffer {
  const parts = labels.map((l) => Buffer.concat([Uint8Array.of(l.length), Buffer.from(l, 'latin1')]));
  return Buffer.concat([hex('1234 0100 0001 0000 0000 0000'), ...parts, hex('00 0001 0001')]);
}

const regressions: Array<{ id: string; target: string; inputs: Input[]; inWorker?: boolean; withinMs?: number }> = [
  { id: 'F1', target: 'netlink-batch', inputs: [hex('14000000 1100 0100 00000000 00000000 00000000')] },
  { id: 'F2', target: 'wg-config', inputs: ['[Interface]\nTable = 4294967297'] },
  { id: 'F3', target: 'wg-config', inputs: ['[Interface]\nFwMark = 0x', '[Interface]\nFwMark = 0x1ffffffff'] },
  { id: 'F8', target: 'wg-uapi-set', inputs: [`public_key=${'ab'.repeat(32)}\nendpoint=[fe80::1%eth0]:51820`] },
  { id: 'F4', target: 'proxy-dns', inputs: [dnsQuery('a\r\nx-injected: 1'), dnsQuery('evil.test:25'), dnsQuery('a\0b', 'test')] },
  // A label of just "-": only host-name characters, yet no host name.
  { id: 'F9', target: 'proxy-dns', inputs: [hex('12340100000100000000000001610162012d0164016501660000010001'), dnsQuery('-a', 'test'), dnsQuery('a-', 'test')] },
  // A label holding a '.' byte: joined, it read as another name ("example.tes.", "a.b").
  { id: 'F10', target: 'proxy-dns', inputs: [hex('123401000001000000000000076578616d706c65047465732e0000010001'), dnsQuery('a.b', 'test')] },
  { id: 'F5', target: 'proxy-socks5-udp', inputs: [hex('00000003')] },
  // [mode] then the proxy's bytes: method "no auth", then a reply cut short.
  { id: 'F6', target: 'proxy-socks5-reply', inWorker: true, inputs: [hex('00 0500 050000030b72'), hex('00 0500 05000001c612050140')] },
  // A head that never ends, as long as readHttpHead allows: rejected, and soon (it is read a byte at a time).
  { id: 'F7', target: 'proxy-http-reply', inWorker: true, withinMs: 100, inputs: [`HTTP/1.1 200 OK\r\nX: ${'a'.repeat(16_400)}`] },
];

for (const r of regressions) {
  test(`${r.id} (${r.target}): its reproducers get an answer${r.withinMs ? ` within ${r.withinMs} ms` : ''}`, todo(r.id), async () => {
    const results = r.inWorker ? await replayInWorker(r.target, r.inputs) : await replay(targetByName(r.target), r.inputs);
    answered(results, r.inputs);
    if (r.withinMs) for (const x of results) assert.ok(x.ms < r.withinMs, `took ${x.ms.toFixed(0)} ms`);
  });
}
