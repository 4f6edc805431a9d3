// src/addr.ts: the one address parser/formatter every layer uses. Expected texts are what glibc's
// inet_ntop (and so `ip`) prints for the same bytes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isIPv4, isIPv6 } from 'node:net';
import {
  parseIP, parseIPv4, parseIPv6, formatIP, formatIPv6, parseMac, formatMac, parseHardwareAddress,
  formatHardwareAddress, parseCidr, ipFamily, writeIPv4,
} from '../src/addr.js';
import { TuntapError } from '../src/errors.js';

test('IPv6 text is what inet_ntop prints (RFC 5952, dotted IPv4-mapped and -compatible tails)', () => {
  const cases: [string, string][] = [
    ['::c612:1', '::198.18.0.1'], ['::ffff:c612:1', '::ffff:198.18.0.1'], ['::ffff:0:0', '::ffff:0.0.0.0'],
    ['0:0:0:0:0:ffff::', '::ffff:0.0.0.0'], ['::2', '::2'], ['::1:0', '::0.1.0.0'], ['::', '::'],
    ['1:0:0:2:0:0:3:4', '1::2:0:0:3:4'], ['fd00:0:0:1:0:0:0:0', 'fd00:0:0:1::'], ['1:0:1:0:1:0:1:0', '1:0:1:0:1:0:1:0'],
    ['64:ff9b::198.18.0.1', '64:ff9b::c612:1'], ['FE80::1:0:0:0', 'fe80::1:0:0:0'], ['0:0:1::', '0:0:1::'],
    ['fd00:0000:0000:0000:0000:0000:0000:0001', 'fd00::1'], ['1:2:3:4:5:6:198.18.0.1', '1:2:3:4:5:6:c612:1'],
  ];
  for (const [text, canonical] of cases) {
    assert.equal(formatIPv6(parseIPv6(text)), canonical, text);
    assert.deepEqual(parseIPv6(canonical), parseIPv6(text), canonical);
  }
  assert.equal(formatIP(parseIP('fe80::1%eth0')), 'fe80::1');  // a zone names an interface, not bytes
  assert.equal(formatIP(Uint8Array.of(1, 2, 3)), '010203');    // neither family: plain hex
});

test('garbage is rejected with a TuntapError naming the text, and agrees with node:net', () => {
  const bad = ['', '1', '1.2.3', '1.2.3.4.5', '256.1.1.1', '01.2.3.4', '1.2.3.4 ', ' 1.2.3.4', '0x1.2.3.4', '1.2.3.-4',
    ':', ':::', '1::2::3', ':1::', '1:', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7:8::', 'fd00::12345', 'g::1', 'fe80::1%',
    '::1.2.3', '::1.2.3.4:5', '::ffff:1.2.3.04', '1:2:3:4:5:6:7:1.2.3.4', '1.2.3.4%1', '[::1]'];
  for (const text of bad) {
    assert.equal(isIPv4(text) || isIPv6(text), false, `node:net accepts ${text}`);
    assert.equal(ipFamily(text), undefined, text);
    assert.throws(() => parseIP(text), (e: unknown) => e instanceof TuntapError && e.code === 'EINVAL'
      && e.message === `"${text}" is not a valid address: expected an IPv4 or IPv6 address`, text);
  }
  assert.throws(() => parseIPv4('fd00::1'), /expected an IPv4 address/);
  assert.throws(() => parseIPv6('198.18.0.1'), /expected an IPv6 address/);
  for (const good of ['198.18.0.1', '0.0.0.0', '255.255.255.255', '::', '::1', '1::', 'fd00::1%eth0', '::ffff:198.18.0.1',
    '1:2:3:4:5:6:7::', '::2:3:4:5:6:7:8', '1:2:3:4:5::198.18.0.1']) {
    assert.equal(ipFamily(good), isIPv4(good) ? 4 : isIPv6(good) ? 6 : undefined, good);
    assert.notEqual(ipFamily(good), undefined, good);
  }
});

test('IPv4 writes in place; a failed write reports false', () => {
  const out = new Uint8Array(8);
  assert.equal(writeIPv4('198.18.0.255', out, 2), true);
  assert.deepEqual([...out], [0, 0, 198, 18, 0, 255, 0, 0]);
  assert.equal(writeIPv4('198.18.0', out, 2), false);
  assert.deepEqual([...parseIPv4('198.19.255.254')], [198, 19, 255, 254]);
});

test('MAC and other link-layer addresses', () => {
  assert.deepEqual([...parseMac('02:00:0A:b:00:01')], [2, 0, 10, 11, 0, 1]);
  assert.deepEqual([...parseMac('02-00-00-00-00-ff')], [2, 0, 0, 0, 0, 255]);
  assert.equal(formatMac(Uint8Array.of(9, 9, 2, 0, 0xab, 0, 0, 1), 2), '02:00:ab:00:00:01');
  for (const bad of ['02:00:00:00:00', '02:00:00:00:00:01:02', '02:00:00:00:00:001', '02::00:00:00:01', 'zz:00:00:00:00:01', '']) {
    assert.throws(() => parseMac(bad), /is not a valid address: expected a MAC address/, bad);
  }
  assert.equal(formatHardwareAddress(parseHardwareAddress('c6:12:00:01')), 'c6:12:00:01');
  assert.throws(() => parseHardwareAddress('c6-12-00-01'), /expected a MAC address/);
});

test('CIDR prefixes', () => {
  assert.deepEqual(parseCidr('FD00:0::1/64'), { family: 6, address: 'fd00::1', bytes: Buffer.from(parseIPv6('fd00::1')), prefixLength: 64 });
  assert.equal(parseCidr('198.18.0.1').prefixLength, 32);
  assert.equal(parseCidr('198.18.0.1', 24).prefixLength, 24);
  assert.throws(() => parseCidr('fd00::1/129'), /prefix length must be 0..128/);
  assert.throws(() => parseCidr('198.18.0.1/-1'), /prefix length must be 0..32/);
  assert.throws(() => parseCidr('198.18.0/24'), /"198.18.0" is not a valid address/);
});
