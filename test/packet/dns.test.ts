// DNS questions and answers (RFC 1035): the first question of a standard query, only for host
// names, and an answer carrying addresses under a compression pointer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseQuery, buildAnswer, TYPE_A, TYPE_AAAA, RCODE_SERVFAIL } from '../../src/packet/index.js';

function query(name: string, type: number, id = 0x1234, flags = 0x0100): Buffer {
  const labels = name.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)]));
  const head = Buffer.from([id >> 8, id & 255, flags >> 8, flags & 255, 0, 1, 0, 0, 0, 0, 0, 0]);
  return Buffer.concat([head, ...labels, Buffer.from([0, type >> 8, type & 255, 0, 1])]);
}

test('DNS: questions parse; answers carry the addresses under a compression pointer', () => {
  const q = query('Web.Test', TYPE_A);
  const p = parseQuery(q)!;
  assert.deepEqual({ id: p.id, name: p.name, type: p.type, klass: p.klass }, { id: 0x1234, name: 'web.test', type: TYPE_A, klass: 1 });
  const a = buildAnswer(q, p, [Buffer.from([198, 19, 128, 1])]);
  assert.equal(a.readUInt16BE(0), 0x1234);
  assert.equal(a[2]! & 0x80, 0x80, 'QR set');
  assert.equal(a[2]! & 0x01, 0x01, 'RD kept');
  assert.equal(a.readUInt16BE(6), 1, 'one answer');
  const rr = a.subarray(p.end);
  assert.equal(rr.readUInt16BE(0), 0xc00c);
  assert.equal(rr.readUInt16BE(2), TYPE_A);
  assert.deepEqual([...rr.subarray(12, 16)], [198, 19, 128, 1]);
  const six = buildAnswer(q, p, [Buffer.alloc(16, 0xfd), Buffer.from([198, 19, 128, 2])], 30);
  assert.equal(six.length, p.end + 28 + 16);
  assert.deepEqual([six.readUInt16BE(p.end + 2), six.readUInt32BE(p.end + 6), six.readUInt16BE(p.end + 10)], [TYPE_AAAA, 30, 16]);
  const fail = buildAnswer(q, p, [], 0, RCODE_SERVFAIL);
  assert.deepEqual([fail.length, fail[3]! & 0x0f, fail.readUInt16BE(6)], [p.end, RCODE_SERVFAIL, 0]);
  assert.equal(parseQuery(q.subarray(0, 15)), undefined, 'truncated');
  assert.equal(parseQuery(Buffer.from(a)), undefined, 'a response is not a query');
  const bad = Buffer.from(q); bad[12] = 200;
  assert.equal(parseQuery(bad), undefined, 'label too long');
  // Names another protocol would take for syntax are no questions this codec reads.
  for (const name of ['a\r\nx-injected: 1.test', 'evil.test:25.x', 'a\0b.test', 'a b.test']) {
    assert.equal(parseQuery(query(name, TYPE_A)), undefined, JSON.stringify(name));
  }
  // A label holding a '.' byte would read, joined, as another name: "example" + "tes." is no
  // "example.tes.", nor "a.b" + "test" the three labels a, b, test.
  const dotted = (...labels: string[]) => Buffer.concat([q.subarray(0, 12), ...labels.map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)])), Buffer.from([0, 0, 1, 0, 1])]);
  assert.ok(parseQuery(dotted('example', 'test')), 'the builder makes a question that parses');
  for (const labels of [['example', 'tes.'], ['a.b', 'test'], ['.', 'test'], ['-', 'test']]) {
    assert.equal(parseQuery(dotted(...labels)), undefined, JSON.stringify(labels));
  }
  // Every label may be fine while the name is not: the root (no label at all) and a name past
  // 253 characters are no host names either.
  assert.equal(parseQuery(dotted()), undefined, 'the root name');
  const longest = ['a'.repeat(63), 'b'.repeat(63), 'c'.repeat(63), 'd'.repeat(61)];
  assert.equal(parseQuery(dotted(...longest))?.name.length, 253, 'a 253-character name is read');
  assert.equal(parseQuery(dotted(...longest.slice(0, 3), 'd'.repeat(62))), undefined, 'a 254-character name');
});

test('DNS: only a standard query (opcode QUERY) has a question to answer', () => {
  // NOTIFY (4) and UPDATE (5) reuse the question section for a zone: no address answers them.
  for (const opcode of [1, 2, 4, 5]) assert.equal(parseQuery(query('web.test', TYPE_A, 1, 0x0100 | (opcode << 11))), undefined, `opcode ${opcode}`);
  assert.ok(parseQuery(query('web.test', TYPE_A, 1, 0x0000)), 'RD clear is still a query');
});
