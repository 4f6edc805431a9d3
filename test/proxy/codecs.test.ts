// Pieces of the proxy tested without a network: proxy URLs, the fake-IP pool, rules, host-name
// refusals, credentials, descriptor limits, the source policy and the failure log. (The
// byte-level codecs it speaks through are packet's: test/packet/{dns,socks,ip}.test.ts.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  parseUpstream, describeUpstream, connectThrough, redactProxyUrl, UpstreamError,
} from '../../src/proxy/upstream.js';
import { isHostName } from '../../src/proxy/names.js';
import { redactor, resolvePassword } from '../../src/proxy/credentials.js';
import { checkDescriptors, descriptorLimit, descriptorsNeeded } from '../../src/proxy/limits.js';
import { SourcePolicy } from '../../src/proxy/sources.js';
import { FailureLog } from '../../src/proxy/failures.js';
import { mkdtempSync, writeFileSync, chmodSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { FakeIpPool } from '../../src/proxy/fake-ip.js';
import { parseRule, decide } from '../../src/proxy/rules.js';
import { formatIPv6, parseIP } from '../../src/addr.js';
const addressBytes = (text: string): Buffer => Buffer.from(parseIP(text));

test('proxy URLs parse into upstreams, with defaults, credentials and clear errors', () => {
  assert.deepEqual(parseUpstream('socks5://alice:p%40ss@198.18.1.2:1081'),
    { kind: 'socks5', host: '198.18.1.2', port: 1081, username: 'alice', password: 'p@ss' });
  assert.deepEqual(parseUpstream('socks5h://[fd00::1]'), { kind: 'socks5', host: 'fd00::1', port: 1080 });
  assert.equal(parseUpstream('socks4a://h:9').kind, 'socks4a');
  assert.deepEqual(parseUpstream('http://u:p@proxy.test:3128'), { kind: 'http', host: 'proxy.test', port: 3128, username: 'u', password: 'p' });
  assert.equal(parseUpstream('direct').kind, 'direct');
  assert.equal(parseUpstream('reject://').kind, 'reject');
  assert.throws(() => parseUpstream('ftp://x'), /not supported/);
  assert.throws(() => parseUpstream('nonsense'), /not a proxy URL/);
  assert.equal(describeUpstream(parseUpstream('socks5://alice:secret@[fd00::1]:1080')), 'socks5://alice@[fd00::1]:1080', 'no password in logs');
});

test('the fake-IP pool is stable per name, maps back, and recycles the least recently used address only when free and stale', () => {
  const minute = 60_000;
  const pool = new FakeIpPool(['198.19.128.0/29', 'fd00:fa4e::/126'], { reuseAfterMs: 5 * minute });
  const v4 = (name: string, now: number): string | undefined => {
    const a = pool.addressesFor(name, 4, now);
    return a.length ? [...a[0]!].join('.') : undefined;
  };
  // Six usable addresses in a /29.
  for (let i = 1; i <= 6; i++) assert.equal(v4(`n${i}.test`, 0), `198.19.128.${i}`);
  assert.equal(v4('n1.test', 0), '198.19.128.1', 'same name, same address');
  assert.equal(pool.nameOf('198.19.128.1'), 'n1.test');
  assert.equal(formatIPv6(pool.addressesFor('n1.test', 6, 0)![0]!), 'fd00:fa4e::1');
  assert.equal(pool.nameOf('fd00:fa4e::1'), 'n1.test');
  // Connections to n1 and n2 use their addresses at minutes 1 and 3.
  pool.touch('198.19.128.1', 1 * minute);
  pool.touch('198.19.128.2', 3 * minute);
  // Every address was used within the last minutes: no address for a new name (SERVFAIL).
  assert.deepEqual(pool.addressesFor('n7.test', 4, 4 * minute), []);
  assert.ok(pool.hasRange(4), 'none, although there is a range: exhausted');
  // Later the least recently used one goes, but not n3's, held by a live session: n4's.
  pool.hold('198.19.128.3');
  assert.equal(v4('n7.test', 6 * minute), '198.19.128.4');
  assert.equal(pool.nameOf('198.19.128.4'), 'n7.test');
  assert.equal(v4('n3.test', 6 * minute), '198.19.128.3');
  assert.equal(v4('n2.test', 6 * minute), '198.19.128.2');
  assert.equal(v4('n8.test', 6 * minute), '198.19.128.5');
  assert.equal(v4('n9.test', 6 * minute), '198.19.128.6');
  // n1 (touched at minute 1) is stale at minute 7; n3 stays held however old.
  assert.equal(v4('n10.test', 7 * minute), '198.19.128.1');
  assert.equal(v4('n11.test', 7 * minute), undefined, 'the rest is fresh or held');
  // n4 lost its address; asking again gets it the least recently used one, n7's (unheld, stale).
  assert.equal(v4('n4.test', 20 * minute), '198.19.128.4');
  assert.equal(pool.nameOf('198.19.128.4'), 'n4.test');
  assert.equal(v4('n12.test', 20 * minute), '198.19.128.2', 'the held n3 is passed over');
  pool.release('198.19.128.3', 20 * minute);
  assert.equal(pool.nameOf('198.19.128.3'), 'n3.test');
  const v4only = new FakeIpPool(['198.19.128.0/17'], { limit: 256 });
  assert.deepEqual(v4only.addressesFor('x', 6), [], 'no IPv6 pool, no AAAA');
  assert.ok(!v4only.hasRange(6));
});

test('rules: first match wins; cidr, domain and port combine', () => {
  const rules = ['reject port=25', 'direct cidr=198.18.0.0/15', 'reject domain=ads.test', 'direct cidr=fd00::/8 port=80'].map(parseRule);
  assert.equal(decide(rules, '203.0.113.1', undefined, 25), 'reject');
  assert.equal(decide(rules, '198.18.2.2', undefined, 80), 'direct');
  assert.equal(decide(rules, '203.0.113.5', 'x.ads.test', 443), 'reject');
  assert.equal(decide(rules, '203.0.113.5', 'ads.test.example', 443), 'proxy');
  // The name itself and its subdomains, at a label boundary only: badads.test is another domain.
  assert.equal(decide(rules, '203.0.113.5', 'ads.test', 443), 'reject');
  assert.equal(decide(rules, '203.0.113.5', 'badads.test', 443), 'proxy');
  // A prefix covers its own addresses and no more: 198.18.0.0/15 ends at 198.19.255.255.
  assert.equal(decide(rules, '198.19.255.255', undefined, 80), 'direct');
  assert.equal(decide(rules, '198.20.0.0', undefined, 80), 'proxy');
  assert.equal(decide(rules, '198.17.255.255', undefined, 80), 'proxy');
  assert.equal(decide(rules, 'fd00::5', undefined, 80), 'direct');
  assert.equal(decide(rules, 'fd00::5', undefined, 81), 'proxy');
  assert.equal(decide([], '1.2.3.4', undefined, 1), 'proxy');
  assert.throws(() => parseRule('allow port=1'), /proxy, direct or reject/);
  assert.throws(() => parseRule('direct color=red'), /unknown matcher/);
});

test('host names: only letters, digits, hyphens and dots pass, no label begins or ends with a hyphen; SOCKS and HTTP CONNECT refuse the rest before sending', async () => {
  for (const ok of ['web.test', 'xn--bcher-kva.example', 'a-b.c0', '1a.test', 'a.b', 'web.test.', 'x'.repeat(63) + '.test']) assert.ok(isHostName(ok), ok);
  for (const bad of ['evil\r\nx-injected: yes.test', 'a b.test', 'a\0b', 'a..b', '', '.', 'x'.repeat(64) + '.test',
    `${'a.'.repeat(127)}ab`, 'ünï.test', 'a_b.test', 'a/b', 'a:b', 'a.b.-.d', '-a.test', 'a-.test']) assert.ok(!isHostName(bad), JSON.stringify(bad));
  // Refused before any connection: the proxy address here is never dialled.
  for (const kind of ['http', 'socks5', 'socks4a'] as const) {
    await assert.rejects(connectThrough({ kind, host: '198.18.1.2', port: 9 }, { host: 'evil\r\nX-Injected: 1', port: 80 }),
      (e: UpstreamError) => e.reason === 'invalid' && /refusing to connect to "evil\\r\\nX-Injected: 1"/.test(e.message));
  }
});

test('credentials: too long for SOCKS5 or holding a NUL is refused; a password from a file or the environment; redaction', () => {
  assert.throws(() => parseUpstream(`socks5://u:${'p'.repeat(256)}@h:1`), /longer than 255 bytes/);
  assert.throws(() => parseUpstream('socks4a://u%00x@h:1'), /NUL/);
  assert.throws(() => parseUpstream('socks5://alice:s3cret@bad host:1'), (e: Error) => e.message.includes('alice:***@') && !e.message.includes('s3cret'));
  assert.equal(redactProxyUrl('http://u:p@ss:w@h:1'), 'http://u:***@h:1');
  const up = parseUpstream('socks5://alice@198.18.1.2:1080');
  assert.equal(resolvePassword(up, { env: { TUNTAP_PROXY_PASSWORD: 'from-env' } }).upstream.password, 'from-env');
  assert.equal(resolvePassword(up, { env: {} }).upstream.password, undefined);
  const dir = mkdtempSync(join(tmpdir(), 'tuntap-cred-'));
  try {
    const file = join(dir, 'pw');
    writeFileSync(file, 'from-file\n', { mode: 0o644 });
    chmodSync(file, 0o644);
    const r = resolvePassword(up, { file, env: { TUNTAP_PROXY_PASSWORD: 'from-env' } });
    assert.equal(r.upstream.password, 'from-file');
    assert.match(r.warning!, /readable by other users/);
    assert.throws(() => resolvePassword(parseUpstream('socks5://a:b@h:1'), { file }), /keep one/);
    assert.throws(() => resolvePassword(up, { file: join(dir, 'missing') }), /cannot read the password file .*ENOENT/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const redact = redactor(['p@ss word']);
  assert.equal(redact('x p@ss word y p%40ss%20word z'), 'x *** y *** z');
  assert.equal(redactor([undefined])('unchanged'), 'unchanged');
});

test('descriptor limits: read from /proc/self/limits and compared with what the sessions need', () => {
  const text = 'Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 4096                 files\n';
  assert.deepEqual(descriptorLimit(text), { soft: 1024, hard: 4096 });
  assert.deepEqual(descriptorLimit('Max open files            unlimited            unlimited            files'), { soft: Infinity, hard: Infinity });
  const own = descriptorLimit()!;
  assert.ok(own.soft > 0 && own.soft === own.hard, 'Node raised the soft limit to the hard one');
  assert.equal(checkDescriptors({ maxSessions: 100, udpSessions: 0 }, { soft: 20000, hard: 20000 }), undefined);
  assert.match(checkDescriptors({ maxSessions: 20000, udpSessions: 4096 }, { soft: 20000, hard: 20000 })!,
    /20000 sessions need up to 48528 file descriptors but the limit is 20000: about 5736 fit/);
  assert.match(checkDescriptors({ maxSessions: 10, udpSessions: 0 }, { soft: 512, hard: 4096 })!, /soft limit \(512\) is below the hard one \(4096\)/);
  assert.equal(descriptorsNeeded({ maxSessions: 10, udpSessions: 1 }), 336 + 22);
});

test('source policy: this host\'s addresses, refreshed at most once a second, plus the gateway networks', () => {
  let local: Uint8Array[] = [addressBytes('198.19.0.1')];
  let asked = 0;
  const policy = new SourcePolicy({ gateway: ['198.18.64.0/18', 'fd00:64::/64'], localAddresses: () => { asked++; return local; } });
  assert.ok(policy.allows(addressBytes('198.19.0.1'), 0));
  assert.ok(policy.allows(addressBytes('198.18.127.255'), 0));
  assert.ok(policy.allows(addressBytes('fd00:64::9'), 0));
  assert.ok(!policy.allows(addressBytes('198.18.4.2'), 0));
  local = [...local, addressBytes('198.18.4.2')];
  assert.ok(!policy.allows(addressBytes('198.18.4.2'), 500), 'not asked again within a second');
  assert.ok(policy.allows(addressBytes('198.18.4.2'), 1500), 'a new local address is found');
  const before = asked;
  for (let i = 0; i < 1000; i++) policy.allows(addressBytes(`203.0.113.${i & 255}`), 1600);
  assert.equal(asked, before, 'strangers cost no lookups');
});

test('failure log: counts by kind and errno, logs a few lines a second and summarizes the rest', async () => {
  const lines: string[] = [];
  const f = new FailureLog({ log: (l) => lines.push(l), linesPerSecond: 3 });
  try {
    for (let i = 0; i < 100; i++) f.note('accept', 'EMFILE', `accept ${i}`);
    f.note('connect', 'ECONNREFUSED', 'connect');
    assert.deepEqual(f.counts.accept, { EMFILE: 100 });
    assert.equal(f.count(), 101);
    assert.equal(f.count('connect', 'dns'), 1);
    assert.equal(lines.length, 3);
    assert.match(lines[0]!, /accept 0 \(out of file descriptors: raise the open-files limit/);
  } finally {
    f.close();
  }
  assert.match(lines.at(-1)!, /98 more failures not shown: accept EMFILE ×97, connect ECONNREFUSED ×1/);
});
