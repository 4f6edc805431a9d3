// VXLAN header bytes (RFC 7348 §5) and the decoder's handling of malformed datagrams.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { decapsulate, encapsulate, encodeVxlanHeader, checkVni } from '../../src/packet/vxlan.js';

describe('VXLAN codec', () => {
  it('encodes the I flag and a 24-bit VNI, reserved bits zero', () => {
    assert.deepEqual([...encodeVxlanHeader(0x123456)], [0x08, 0, 0, 0, 0x12, 0x34, 0x56, 0]);
    assert.deepEqual([...encodeVxlanHeader(42)], [0x08, 0, 0, 0, 0, 0, 42, 0]);
  });

  it('round-trips a frame without copying on decode', () => {
    const inner = Uint8Array.from({ length: 60 }, (_, i) => i);
    const d = encapsulate(0xabcdef, inner);
    assert.equal(d.length, 68);
    const r = decapsulate(d);
    assert.ok(typeof r !== 'string');
    assert.equal(r.vni, 0xabcdef);
    assert.deepEqual([...r.frame], [...inner]);
    assert.equal(r.frame.buffer, d.buffer);
  });

  it('ignores reserved bits on receipt, refuses a clear I flag or a short datagram', () => {
    const d = encapsulate(7, new Uint8Array(14));
    d[0] = 0xff; d[1] = 0xff; d[7] = 0xff;
    const r = decapsulate(d);
    assert.ok(typeof r !== 'string' && r.vni === 7);
    d[0] = 0xf7;
    assert.equal(decapsulate(d), 'no-vni-flag');
    assert.equal(decapsulate(new Uint8Array(21)), 'short');
    assert.equal(decapsulate(new Uint8Array(0)), 'short');
  });

  it('checks the VNI range', () => {
    assert.throws(() => checkVni(1 << 24), RangeError);
    assert.throws(() => checkVni(-1), RangeError);
    assert.equal(checkVni(0xffffff), 0xffffff);
  });
});
