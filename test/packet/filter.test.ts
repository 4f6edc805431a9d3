// The filter language: the JS predicate and our BPF agree on a mixed sample, and our BPF
// decides like tcpdump's own compiler (`tcpdump -ddd`) wherever pcap's semantics are ours.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { compileFilter, runBpf, parseTcpdumpDdd, FilterSyntaxError, parseFilter, formatBpf } from '../../src/packet/index.js';
import { corpus, expressions } from './corpus.js';

const samples = corpus();

test('JS predicate and BPF agree on every sample (Ethernet and raw IP)', () => {
  let checked = 0;
  for (const expr of expressions) {
    for (const mode of ['ethernet', 'raw'] as const) {
      const f = compileFilter(expr, mode);
      assert.ok(f.bpf.length <= 4096);
      let matched = 0;
      for (const s of samples) {
        const frame = mode === 'ethernet' ? s.frame : s.raw;
        if (!frame) continue;
        const js = f.match(frame);
        assert.equal(runBpf(f.bpf, frame) > 0, js, `${expr} (${mode}) on ${Buffer.from(frame).toString('hex')}\n${formatBpf(f.bpf)}`);
        if (js) matched++;
        checked++;
      }
      if (mode === 'ethernet') assert.ok(matched > 0, `${expr} matches something`);
    }
  }
  assert.ok(checked > 10000);
});

test('our BPF decides like tcpdump -ddd', () => {
  for (const expr of expressions) {
    for (const [mode, link] of [['ethernet', 'EN10MB'], ['raw', 'RAW']] as const) {
      if (mode === 'raw' && /arp|ether|vlan/.test(expr)) continue; // pcap rejects these on raw IP
      if (expr.includes('vlan')) continue; // pcap's vlan changes later offsets; ours looks inside always
      const theirs = parseTcpdumpDdd(execFileSync('tcpdump', ['-ddd', '-y', link, expr], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }));
      const ours = compileFilter(expr, mode).bpf;
      for (const s of samples) {
        const frame = mode === 'ethernet' ? s.frame : s.raw;
        // Truncated frames: pcap's optimiser reorders loads, so which one runs off the end differs.
        if (!frame || s.tagged || s.truncated) continue;
        assert.equal(runBpf(ours, frame) > 0, runBpf(theirs, frame) > 0, `${expr} (${mode}) on ${Buffer.from(frame).toString('hex')}`);
      }
    }
  }
});

test('syntax errors are reported as FilterSyntaxError', () => {
  for (const bad of ['host', 'port 99999', 'net 198.18.0.1/24', 'tcp host 1.2.3.4', 'and tcp', '(tcp', 'tcp)', 'host 300.1.1.1', 'foo', 'ip6 host 198.18.0.1', 'portrange 9-1']) {
    assert.throws(() => parseFilter(bad), FilterSyntaxError, bad);
  }
  assert.equal(parseFilter(''), null);
  assert.ok(compileFilter('', 'ethernet').match(new Uint8Array(1)));
});
