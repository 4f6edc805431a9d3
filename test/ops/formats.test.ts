// The text the operations code writes and reads, without a process around it: the Prometheus
// exposition (held to promtool, Prometheus's own checker), the --metrics address, log lines,
// the control socket answers top accepts, and top's screen (sparklines, sizes, and what it lets
// through to a terminal).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MetricFamily, renderFamilies, processFamilies } from '../../src/ops/prometheus.js';
import { parseMetricsAddress } from '../../src/ops/metrics-server.js';
import { createLogger, oneLine } from '../../src/ops/log.js';
import { readSnapshot } from '../../src/ops/snapshot.js';
import { renderScreen, sparkline, formatRate, printableText } from '../../src/ops/top-render.js';
import type { TopView } from '../../src/ops/top.js';
import { assertPromtoolAccepts } from './helpers.js';

test('the exposition escapes label values and help text, and promtool accepts it', () => {
  const f = new MetricFamily('tuntap_test_events_total', 'counter', 'Events with a \\ and a\nnewline')
    .add({ name: 'a "quoted" \\ value\nwith a newline' }, 3)
    .add({ name: 'plain' }, 0);
  const g = new MetricFamily('tuntap_test_level', 'gauge', 'A level').add({}, NaN);
  const text = renderFamilies([f, g, ...processFamilies()]);
  assert.match(text, /^tuntap_test_events_total\{name="a \\"quoted\\" \\\\ value\\nwith a newline"\} 3$/m);
  assert.match(text, /^# HELP tuntap_test_events_total Events with a \\\\ and a\\nnewline$/m);
  assert.match(text, /^tuntap_test_level NaN$/m);
  assert.match(text, /^process_resident_memory_bytes \d+$/m);
  assertPromtoolAccepts(text, 'escapes');
  assert.throws(() => new MetricFamily('bad name', 'gauge', 'x'), RangeError);
  assert.throws(() => new MetricFamily('tuntap_things', 'counter', 'x'), /_total/);
  assert.throws(() => new MetricFamily('tuntap_ok', 'gauge', 'x').add({ 'bad-label': 'x' }, 1), RangeError);
});

test('--metrics takes [ADDRESS:]PORT, an IPv6 address in brackets, loopback by default', () => {
  assert.deepEqual(parseMetricsAddress('9586'), { host: '127.0.0.1', port: 9586 });
  assert.deepEqual(parseMetricsAddress('0.0.0.0:9100'), { host: '0.0.0.0', port: 9100 });
  assert.deepEqual(parseMetricsAddress('[::1]:9586'), { host: '::1', port: 9586 });
  for (const bad of ['', '0', '65536', '::1:9586', 'localhost:9586', '[127.0.0.1]:80', '1.2.3.4:', ':80', '9586 ', '1.2.3.400:80', '[::1]']) {
    assert.throws(() => parseMetricsAddress(bad), RangeError, bad);
  }
});

test('log lines: one line per event, text or JSON, levels, timestamps only off systemd, journald priorities', () => {
  const lines: string[] = [];
  const at = new Date('2025-01-02T03:04:05.678Z');
  const text = createLogger({ level: 'info', format: 'text', timestamps: true, priorities: false, write: (l) => lines.push(l), now: () => at });
  text.info('a\nforged line\r\nand \x1b[31mred\x1b[0m', { peer: 'x y', n: 3 });
  text.debug('hidden');
  assert.deepEqual(lines, ['2025-01-02T03:04:05.678Z info  a forged line and \\x1b[31mred\\x1b[0m peer="x y" n=3']);
  lines.length = 0;
  const journal = createLogger({ level: 'warn', timestamps: false, priorities: true, write: (l) => lines.push(l) });
  journal.info('not shown');
  journal.warn('careful');
  journal.error('broken');
  assert.deepEqual(lines, ['<4>warn  careful', '<3>error broken']);
  lines.length = 0;
  const json = createLogger({ format: 'json', timestamps: false, priorities: false, redact: (s) => s.replace('s3cret', '***'), write: (l) => lines.push(l) });
  json.warn('password s3cret\nsecond line', { level: 'not mine', url: 'socks5://u:s3cret@h' });
  assert.equal(lines.length, 1);
  assert.deepEqual(JSON.parse(lines[0]!), { level: 'warn', msg: 'password ***\nsecond line', url: 'socks5://u:***@h' });
  assert.equal(oneLine('tab\tstays; \x7f and \x9b go'), 'tab\tstays; \\x7f and \\x9b go');
});

test('a control socket answer is bounded and checked before top uses it', () => {
  const evil = readSnapshot({
    kind: 'proxy', name: 'x'.repeat(10_000), pid: -5, bytesUp: 'many', bytesDown: Infinity, sessions: 1e400,
    connections: [...Array(10_000)].map((_, i) => (i % 2 ? 'not an object' : { id: i, source: { a: 1 }, bytesUp: -1 })),
  });
  assert.ok(evil?.kind === 'proxy');
  assert.equal(evil.name.length, 200);
  assert.equal(evil.pid, 0);
  assert.equal(evil.bytesUp, 0);
  assert.equal(evil.bytesDown, 0);
  assert.equal(evil.sessions, 0);
  assert.ok(evil.connections.length <= 500);
  assert.equal(evil.connections[0]!.source, '');
  assert.equal(evil.connections[0]!.bytesUp, 0);
  const bridge = readSnapshot({
    kind: 'bridge', name: 'b'.repeat(10_000), macs: -1,
    ports: [...Array(10_000)].map((_, i) => (i % 2 ? null : { name: 'p'.repeat(1000), rxFrames: 'lots', drops: 2 ** 80 })),
  });
  assert.ok(bridge?.kind === 'bridge');
  assert.equal(bridge.name.length, 200);
  assert.equal(bridge.macs, 0);
  assert.ok(bridge.ports.length > 0 && bridge.ports.length <= 1024, `${bridge.ports.length} ports`);
  assert.equal(bridge.ports[0]!.name.length, 200);
  assert.equal(bridge.ports[0]!.rxFrames, 0);
  assert.equal(readSnapshot({ kind: 'something else' }), undefined);
});

test('sparklines: the last minute, scaled to the row, blank without traffic', () => {
  assert.equal(sparkline([], 10, 60), ' '.repeat(10));
  assert.equal(sparkline(Array(60).fill(0), 10, 60), ' '.repeat(10));
  const rising = sparkline([...Array(60)].map((_, i) => i + 1), 8, 60);
  assert.equal(rising.length, 8);
  assert.equal(rising.at(-1), '█');
  assert.ok([...rising].every((c, i) => i === 0 || c >= rising[i - 1]!), rising);
  // Three readings of a minute at 20 s: the newest third is the last third of the line.
  assert.equal(sparkline([0, 0, 5], 6, 3), '    ██');
  // Only the last minute counts.
  assert.equal(sparkline([1000, ...Array(60).fill(1)], 4, 60), '████');
  assert.equal(formatRate(0), '0b/s');
  assert.equal(formatRate(125), '1.0Kb/s');
  assert.equal(formatRate(1.25e8), '1.0Gb/s');
  assert.ok(formatRate(1e20).length <= 9);
});

test('top\'s screen fits the terminal, gives every group room, and lets only printable ASCII through', () => {
  const row = (name: string, rate: number) => ({ name, inBytes: rate, outBytes: 0, inRate: rate, outRate: 0, history: [rate], details: { source: `\x1b]0;owned\x07${name}`, destination: 'd\x1b[2J', state: 'open' } });
  const view: TopView = {
    time: '2025-01-02T03:04:05.000Z',
    errors: ['/run/tuntap/x.sock: \x1b[31mbad\x1b[0m'],
    groups: [
      { kind: 'proxy', ...row('busy\x1b[H', 100), details: { command: 'socks', pid: 1, upstream: 'direct\r\n', sessions: 50, udpSessions: 0, connectionsFailed: 0 },
        rows: [...Array(50)].map((_, i) => row(`s${i}`, 50 - i)) },
      { kind: 'bridge', ...row('tap0', 10), details: { pid: 2, ports: 2, macs: 3 }, rows: [row('tap0', 5), row('tap1', 5)] },
    ],
  };
  const lines = renderScreen(view, { width: 80, height: 12, perMinute: 60 });
  assert.equal(lines.length, 12);
  for (const l of lines) {
    assert.equal(l.length, 80, JSON.stringify(l));
    assert.match(l, /^[\x20-\x7e…→▁▂▃▄▅▆▇█]*$/, JSON.stringify(l));
  }
  assert.ok(lines.some((l) => l.startsWith('tap0  bridge')), 'the bridge keeps its place under a busy proxy');
  assert.ok(lines.some((l) => /^ {2}… \d+ more/.test(l)), 'the proxy says how many rows it left out');
  assert.equal(printableText('\x1b[2J\u202e'), '?[2J?');
});
