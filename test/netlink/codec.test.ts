// The netlink codec on bytes: framing, nested attributes, acks with extended-ack text, and
// malformed input that must be counted and dropped rather than crash.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  encodeMessage, encodeAttrs, nestAttr, parseAck, parseAttrs, splitMessages, strAttr, u32Attr, u8Attr, attrNested,
  attrStr, attrU32, attrU8, type Message,
} from '../../src/netlink/codec.js';
import { NLM_F_ACK_TLVS, NLM_F_CAPPED, NLMSG_DONE, NLMSG_ERROR } from '../../src/netlink/constants.js';
import { bytesToIp, ipToBytes, parseCidr } from '../../src/netlink/ip.js';
import { parseLink, parseAddress, parseRoute, parseRule } from '../../src/netlink/index.js';

test('messages round-trip with nested attributes and 4-byte alignment', () => {
  const msg = encodeMessage({
    type: 16, flags: 0x405, seq: 77, header: Buffer.alloc(16),
    attrs: [strAttr(3, 'abc'), nestAttr(18, [strAttr(1, 'veth'), nestAttr(2, [u8Attr(1, 7), u32Attr(2, 0xdeadbeef)])])],
  });
  assert.equal(msg.length % 4, 0);
  assert.equal(msg.readUInt32LE(0), msg.length);
  const { messages, malformed } = splitMessages(msg, msg.length);
  assert.equal(malformed, 0);
  assert.equal(messages.length, 1);
  const m = messages[0]!;
  assert.deepEqual([m.type, m.flags, m.seq], [16, 0x405, 77]);
  const attrs = parseAttrs(m.payload, 16);
  assert.equal(attrStr(attrs, 3), 'abc');
  const info = attrNested(attrs, 18)!;
  assert.equal(attrStr(info, 1), 'veth');
  const data = attrNested(info, 2)!;
  assert.equal(attrU8(data, 1), 7);
  assert.equal(attrU32(data, 2), 0xdeadbeef);
  assert.equal(encodeAttrs([u8Attr(1, 1), u32Attr(2, 2)]).length, 16);
});

function ack(errno: number, flags: number, tlvs: Buffer, echoed = Buffer.alloc(16)): Message {
  return { type: NLMSG_ERROR, flags, seq: 1, portId: 0, payload: Buffer.concat([Buffer.from(Int32Array.of(-errno).buffer), echoed, tlvs]) };
}

test('acks: errno and the kernel text, capped or with the whole request echoed', () => {
  const text = encodeAttrs([strAttr(1, 'Nexthop has invalid gateway'), u32Attr(2, 36)]);
  assert.deepEqual(parseAck(ack(101, NLM_F_CAPPED | NLM_F_ACK_TLVS, text)), { errno: 101, message: 'Nexthop has invalid gateway', offset: 36 });
  const request = Buffer.alloc(40);
  request.writeUInt32LE(40, 0);
  assert.equal(parseAck(ack(22, NLM_F_ACK_TLVS, text, request)).message, 'Nexthop has invalid gateway');
  assert.deepEqual(parseAck(ack(0, 0, Buffer.alloc(0))), { errno: 0 });
  const done: Message = { type: NLMSG_DONE, flags: NLM_F_ACK_TLVS, seq: 1, portId: 0,
    payload: Buffer.concat([Buffer.from(Int32Array.of(-95).buffer), encodeAttrs([strAttr(1, 'dump refused')])]) };
  assert.deepEqual(parseAck(done), { errno: 95, message: 'dump refused' });
});

test('malformed framing is counted and dropped; what came before survives', () => {
  const good = encodeMessage({ type: 16, flags: 0, seq: 1, header: Buffer.alloc(16) });
  const broken = Buffer.alloc(20);
  broken.writeUInt32LE(9999, 0);  // claims more bytes than there are
  const batch = Buffer.concat([good, broken]);
  const { messages, malformed } = splitMessages(batch, batch.length);
  assert.equal(messages.length, 1);
  assert.equal(malformed, 1);
  const tooShort = Buffer.alloc(16);
  tooShort.writeUInt32LE(8, 0);
  assert.equal(splitMessages(tooShort, 16).malformed, 1);
  // an attribute running past its container ends the walk instead of reading beyond it
  const attrs = Buffer.concat([encodeAttrs([u32Attr(1, 5)]), Buffer.from([200, 0, 2, 0])]);
  const parsed = parseAttrs(attrs);
  assert.equal(attrU32(parsed, 1), 5);
  assert.equal(parsed.has(2), false);
  // family payloads too short for their header decode to nothing rather than throwing
  const tiny: Message = { type: 20, flags: 0, seq: 0, portId: 0, payload: Buffer.alloc(3) };
  assert.equal(parseAddress(tiny), undefined);
  assert.equal(parseRoute(tiny), undefined);
  assert.equal(parseRule(tiny), undefined);
  assert.equal(parseLink(tiny), undefined);
});

test('addresses: text ⇄ bytes like inet_ntop, prefixes validated', () => {
  for (const [text, canonical] of [['fd00:0:0:0:0:0:0:1', 'fd00::1'], ['FD00::A:0:0:1', 'fd00::a:0:0:1'],
    ['1:0:0:2:0:0:0:3', '1:0:0:2::3'], ['::ffff:198.18.0.1', '::ffff:198.18.0.1'], ['fd00::198.18.0.1', 'fd00::c612:1'],
    ['::', '::'], ['198.18.0.1', '198.18.0.1']]) {
    assert.equal(bytesToIp(ipToBytes(text!)), canonical, text);
  }
  assert.deepEqual(parseCidr('fd00::1/64').prefixLength, 64);
  assert.deepEqual(parseCidr('198.18.0.1').prefixLength, 32);
  assert.throws(() => parseCidr('198.18.0.1/33'), /prefix length must be 0..32/);
  assert.throws(() => parseCidr('198.18.0.1/x'), /prefix length/);
  assert.throws(() => parseCidr('fd00::g'), /not a valid address/);
});
