// SOCKS5, SOCKS4a and HTTP CONNECT messages as bytes: what a client sends, and the readers of a
// proxy's answers taking whatever has arrived so far (a reply may come in pieces).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  encodeSocks5Address, encodeSocks5Request, encodeSocks5Greeting, encodeSocks5Credentials, decodeSocks5Choice,
  decodeSocks5Reply, socks5CredentialsAccepted, socks5UdpWrap, socks5UdpUnwrap, encodeSocks4aConnect, decodeSocks4Reply,
  encodeHttpConnect, httpHeadLength, parseHttpStatus, Socks5Command, PacketParseError, MAX_HTTP_HEAD,
} from '../../src/packet/index.js';

test('SOCKS5 addresses and UDP datagrams encode and decode', () => {
  assert.deepEqual(encodeSocks5Address('198.18.2.2', 80), Buffer.from([1, 198, 18, 2, 2, 0, 80]));
  assert.deepEqual(encodeSocks5Address('web.test', 443), Buffer.from([3, 8, ...Buffer.from('web.test'), 1, 187]));
  assert.equal(encodeSocks5Address('fd00::2', 53).length, 19);
  assert.throws(() => encodeSocks5Address('evil\r\nx.test', 80), (e: Error) => e instanceof TypeError && /not a host name/.test(e.message));
  assert.throws(() => encodeSocks5Address('ünï.test', 80), TypeError);
  for (const host of ['198.18.2.2', 'fd00:2::2', 'web.test']) {
    const msg = socks5UdpWrap({ host, port: 5353 }, Buffer.from('payload'));
    const u = socks5UdpUnwrap(msg)!;
    assert.deepEqual(u.from, { host, port: 5353 });
    assert.equal(u.payload.toString(), 'payload');
  }
  assert.equal(socks5UdpUnwrap(Buffer.from([0, 0, 1, 1, 1, 2, 3, 4, 0, 53])), undefined, 'fragments are not reassembled');
  assert.equal(socks5UdpUnwrap(Buffer.from([0, 0, 0, 4, 1, 2])), undefined, 'truncated');
  assert.equal(socks5UdpUnwrap(Buffer.from([0, 0, 0, 9, 1, 2, 3, 4, 0, 0])), undefined, 'unknown type');
  assert.equal(socks5UdpUnwrap(Buffer.from([0, 0, 0, 3])), undefined, 'a host name without its length');
  assert.equal(socks5UdpUnwrap(Buffer.from([0, 0, 0, 3, 5, 0x61, 0x62])), undefined, 'a host name cut short');
});

test('SOCKS5 greeting, credentials and requests', () => {
  assert.deepEqual(encodeSocks5Greeting([0, 2]), Buffer.from([5, 2, 0, 2]));
  assert.equal(decodeSocks5Choice(Buffer.from([5, 2])), 2);
  assert.throws(() => decodeSocks5Choice(Buffer.from([4, 0])), PacketParseError);
  assert.deepEqual(encodeSocks5Credentials('al', 'pw!'), Buffer.from([1, 2, 0x61, 0x6c, 3, 0x70, 0x77, 0x21]));
  assert.throws(() => encodeSocks5Credentials('u', 'p'.repeat(256)), RangeError, 'a length byte cannot say 256');
  assert.ok(socks5CredentialsAccepted(Buffer.from([1, 0])));
  assert.ok(!socks5CredentialsAccepted(Buffer.from([1, 1])));
  assert.deepEqual(encodeSocks5Request(Socks5Command.Connect, 'web.test', 80), Buffer.from([5, 1, 0, 3, 8, ...Buffer.from('web.test'), 0, 80]));
});

test('SOCKS5 replies: complete only once every byte is there, whatever the address type', () => {
  const replies = [
    [Buffer.from([5, 0, 0, 1, 198, 18, 5, 1, 0x9c, 0x40]), { host: '198.18.5.1', port: 40000 }],
    [Buffer.from([5, 0, 0, 4, 0xfd, ...new Array(14).fill(0), 1, 0x13, 0x88]), { host: 'fd00::1', port: 5000 }],
    [Buffer.from([5, 0, 0, 3, 11, ...Buffer.from('relay.local'), 4, 0x38]), { host: 'relay.local', port: 1080 }],
  ] as const;
  for (const [bytes, bound] of replies) {
    for (let n = 0; n < bytes.length; n++) assert.equal(decodeSocks5Reply(bytes.subarray(0, n)), undefined, `${n} of ${bytes.length} bytes`);
    const withData = Buffer.concat([bytes, Buffer.from('early')]);
    assert.deepEqual(decodeSocks5Reply(withData), { code: 0, bound, length: bytes.length });
  }
  // A refusal is whole after four bytes.
  assert.deepEqual(decodeSocks5Reply(Buffer.from([5, 5, 0, 1])), { code: 5, bound: { host: '', port: 0 }, length: 4 });
  assert.throws(() => decodeSocks5Reply(Buffer.from([4, 0, 0, 1])), PacketParseError);
  assert.throws(() => decodeSocks5Reply(Buffer.from([5, 0, 0, 9, 1, 2])), /unknown type 9/);
});

test('SOCKS4a requests carry an IPv4 address or a host name; the reply says granted or not', () => {
  assert.deepEqual(encodeSocks4aConnect({ host: '198.18.2.2', port: 80 }, 'u'), Buffer.from([4, 1, 0, 80, 198, 18, 2, 2, 0x75, 0]));
  assert.deepEqual(encodeSocks4aConnect({ host: 'web.test', port: 80 }, ''), Buffer.from([4, 1, 0, 80, 0, 0, 0, 1, 0, ...Buffer.from('web.test'), 0]));
  assert.throws(() => encodeSocks4aConnect({ host: 'fd00::1', port: 80 }, ''), /IPv6/);
  assert.throws(() => encodeSocks4aConnect({ host: 'web.test', port: 80 }, 'a\0b'), /NUL/);
  assert.throws(() => encodeSocks4aConnect({ host: 'a b.test', port: 80 }, ''), /not a host name/);
  assert.deepEqual(decodeSocks4Reply(Buffer.from([0, 0x5a, 0, 0, 0, 0, 0, 0])), { granted: true, status: 0x5a });
  assert.deepEqual(decodeSocks4Reply(Buffer.from([0, 0x5b, 0, 0, 0, 0, 0, 0])), { granted: false, status: 0x5b });
});

test('HTTP CONNECT: a request line only for a clean target; the response head found across pieces', () => {
  assert.equal(encodeHttpConnect('[fd00::1]:443'), 'CONNECT [fd00::1]:443 HTTP/1.1\r\nHost: [fd00::1]:443\r\n\r\n');
  assert.match(encodeHttpConnect('web.test:80', { username: 'u', password: 'p' }), /\r\nProxy-Authorization: Basic dTpw\r\n\r\n$/);
  for (const bad of ['a b:80', 'a\r\nX: y:80', 'a\0:80']) assert.throws(() => encodeHttpConnect(bad), TypeError, JSON.stringify(bad));
  const head = Buffer.from('HTTP/1.1 200 Connection established\r\nProxy-Agent: x\r\n\r\nearly');
  let searched = 0;
  for (let n = 1; n < head.length - 5; n++) {
    assert.equal(httpHeadLength(head.subarray(0, n), searched), undefined, `${n} bytes`);
    searched = n;
  }
  assert.equal(httpHeadLength(head, searched), head.length - 5, 'the end found though it straddles two pieces');
  assert.throws(() => httpHeadLength(Buffer.alloc(MAX_HTTP_HEAD + 1, 0x61)), /longer than/);
  assert.deepEqual(parseHttpStatus('HTTP/1.0 407 Proxy Authentication Required\r\n\r\n'), { status: 407, reason: ' Proxy Authentication Required' });
  assert.equal(parseHttpStatus('HTTP/2 200\r\n\r\n'), undefined);
});
