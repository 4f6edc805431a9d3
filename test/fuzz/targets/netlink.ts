// Netlink layer: the rtnetlink decoder on what a netlink socket hands us — batches of messages,
// attribute trees, acks with extended-ack text — and the family parsers behind listLinks,
// listAddresses, listRoutes, listRules and watchEvents. Nothing may throw: broken framing is
// counted as malformed and dropped. The corpus is what the kernel itself sends for real devices,
// addresses, routes and rules in a private namespace, plus acks built here.
import {
  attrNested, attrS32, attrStr, attrU32, attrU8, encodeAttrs, encodeMessage, parseAck, parseAttrs,
  splitMessages, strAttr, u32Attr, type Message,
} from '../../../src/netlink/codec.js';
import {
  NLM_F_ACK_TLVS, NLM_F_CAPPED, NLM_F_MULTI, NLMSG_DONE, NLMSG_ERROR, RTM_DELADDR, RTM_DELLINK, RTM_DELROUTE,
  RTM_DELRULE, RTM_GETADDR, RTM_GETLINK, RTM_GETROUTE, RTM_GETRULE, RTM_NEWADDR, RTM_NEWLINK, RTM_NEWROUTE, RTM_NEWRULE,
} from '../../../src/netlink/constants.js';
import {
  Netlink, addAddress, addRoute, addRule, configureInterface, createTun, createVeth, parseAddress, parseLink, parseRoute,
  parseRule,
} from '../../../src/netlink/index.js';
import { Netns } from '../../../src/netns.js';
import { check, type BytesTarget } from '../framework.js';

/** Header plus payload again: the bytes the kernel sent for one received message. */
function messageBytes(m: Message): Buffer {
  return encodeMessage({ type: m.type, flags: m.flags, seq: m.seq, portId: m.portId, header: m.payload });
}

/**
 * Dumps of links (veth, a multi-queue TAP with its IFLA_TUN_* data, loopback), addresses, routes
 * and rules from the kernel, one batch per dump, in a namespace that vanishes afterwards.
 * Empty without root.
 */
function kernelDumps(): Buffer[] {
  if (process.getuid?.() !== 0) return [];
  const ns = Netns.create();
  try {
    const target = { netns: { fd: ns.fd } };
    configureInterface('lo', { up: true }, target);
    createVeth('fzva', 'fzvb', { up: true, mtu: 1400 }, target);
    createTun('fztap', { mode: 'tap', multiQueue: true, vnetHdr: true, owner: 0 }, target);
    addAddress('fzva', '198.18.77.1/24', target);
    addAddress('fzva', { address: 'fd00:77::1/64', nodad: true }, target);
    addRoute({ dst: '198.18.78.0/24', gateway: '198.18.77.2', table: 100, metric: 5, mtu: 1300 }, target);
    addRoute({ dst: 'fd00:78::/64', dev: 'fzva', table: 100 }, target);
    addRule({ from: '198.18.77.0/24', table: 100, priority: 100, fwmark: 7, fwmask: 0xff, iif: 'fzva' }, target);
    addRule({ family: 6, to: 'fd00:78::/64', table: 100, priority: 101 }, target);
    const nl = Netlink.open(target);
    try {
      const dumps: Buffer[] = [];
      for (const [type, headerLength] of [[RTM_GETLINK, 16], [RTM_GETADDR, 8], [RTM_GETROUTE, 12], [RTM_GETRULE, 12]] as const) {
        const parts: Buffer[] = [];
        nl.dump(type, Buffer.alloc(headerLength), [], (m) => { parts.push(messageBytes(m)); return undefined; }, 'dumping a fuzz corpus');
        parts.push(encodeMessage({ type: NLMSG_DONE, flags: NLM_F_MULTI, seq: 1, header: Buffer.alloc(4) }));
        dumps.push(Buffer.concat(parts));
      }
      return dumps;
    } finally {
      nl.close();
    }
  } finally {
    ns.close();
  }
}

/** Acks: plain, errors with the kernel's text (capped, or echoing the whole request), a failed dump. */
function acks(): Buffer[] {
  const tlvs = encodeAttrs([strAttr(1, 'Nexthop has invalid gateway'), u32Attr(2, 36)]);
  const request = encodeMessage({ type: RTM_NEWROUTE, flags: 0x405, seq: 9, header: Buffer.alloc(12), attrs: [u32Attr(15, 100)] });
  const errno = (n: number) => Buffer.from(Int32Array.of(-n).buffer);
  const ack = (flags: number, payload: Buffer, type = NLMSG_ERROR) => encodeMessage({ type, flags, seq: 9, header: payload });
  return [
    ack(0, Buffer.concat([errno(0), request.subarray(0, 16)])),
    ack(NLM_F_CAPPED | NLM_F_ACK_TLVS, Buffer.concat([errno(101), request.subarray(0, 16), tlvs])),
    ack(NLM_F_ACK_TLVS, Buffer.concat([errno(22), request, tlvs])),
    ack(NLM_F_ACK_TLVS, Buffer.concat([errno(95), encodeAttrs([strAttr(1, 'dump refused')])]), NLMSG_DONE),
  ];
}

let cached: { dumps: Buffer[]; messages: Buffer[]; acks: Buffer[] } | undefined;
function corpora(): NonNullable<typeof cached> {
  if (cached) return cached;
  const dumps = kernelDumps();
  const messages = dumps.flatMap((d) => splitMessages(d, d.length).messages.map(messageBytes));
  cached = { dumps, messages, acks: acks() };
  return cached;
}

/** Bytes of the family header (ifinfomsg, ifaddrmsg, rtmsg, fib_rule_hdr) before a message's attributes. */
function familyHeaderLength(type: number): number {
  if (type === RTM_NEWLINK || type === RTM_DELLINK) return 16;
  return type === RTM_NEWADDR || type === RTM_DELADDR ? 8 : 12;
}

/** The view lies inside the received bytes (a decoder must never hand out more). */
function inside(view: Uint8Array, outer: Uint8Array, what: string): void {
  check(view.buffer === outer.buffer && view.byteOffset >= outer.byteOffset
    && view.byteOffset + view.length <= outer.byteOffset + outer.length, `${what} reaches outside the received bytes`);
}

const isU32 = (n: number | undefined) => n === undefined || (Number.isInteger(n) && n >= 0 && n <= 0xffffffff);

/** Decodes one message as the socket and event code would, checking what comes out. */
function decode(m: Message): string {
  switch (m.type) {
    case RTM_NEWLINK: case RTM_DELLINK: {
      const link = parseLink(m);
      if (!link) return 'link skipped';
      check(typeof link.name === 'string' && !link.name.includes('\0') && isU32(link.mtu), 'link decoded to impossible values');
      return 'link';
    }
    case RTM_NEWADDR: case RTM_DELADDR: {
      const a = parseAddress(m);
      if (a) check((a.family === 4 || a.family === 6) && a.prefixLength >= 0 && a.prefixLength <= 255, 'address decoded to impossible values');
      return a ? 'address' : 'address skipped';
    }
    case RTM_NEWROUTE: case RTM_DELROUTE: return parseRoute(m) ? 'route' : 'route skipped';
    case RTM_NEWRULE: case RTM_DELRULE: return parseRule(m) ? 'rule' : 'rule skipped';
    case NLMSG_ERROR: case NLMSG_DONE: return checkedAck(m);
    default: return 'other type';
  }
}

function checkedAck(m: Message): string {
  const ack = parseAck(m);
  check(Number.isInteger(ack.errno) && ack.errno >= 0 && ack.errno <= 2 ** 31, `ack errno ${ack.errno}`);
  check(isU32(ack.offset), `ack offset ${ack.offset}`);
  return ack.errno === 0 ? 'ack' : ack.message !== undefined ? 'error with text' : 'error';
}

function split(b: Uint8Array): { buf: Buffer; messages: Message[]; malformed: number } {
  const buf = Buffer.from(b.buffer, b.byteOffset, b.length);
  const { messages, malformed } = splitMessages(buf, buf.length);
  check(Number.isInteger(malformed) && malformed >= 0, 'malformed count');
  for (const m of messages) inside(m.payload, buf, 'a message payload');
  return { buf, messages, malformed };
}

/** Walks an attribute tree to `depth`, reading every attribute as each type the codec offers. */
function walk(buf: Buffer, start: number, depth: number): number {
  const attrs = parseAttrs(buf, start);
  let n = attrs.size;
  for (const [type, value] of attrs) {
    inside(value, buf, `attribute ${type}`);
    attrU8(attrs, type); attrU32(attrs, type); attrS32(attrs, type); attrStr(attrs, type);
    if (depth > 0) {
      const nested = attrNested(attrs, type)!;
      for (const v of nested.values()) inside(v, value, `an attribute nested in ${type}`);
      n += walk(value, 0, depth - 1);
    }
  }
  return n;
}

const netlinkTarget = (t: Omit<BytesTarget, 'kind' | 'layer' | 'isTyped' | 'maxLength'>): BytesTarget => ({
  kind: 'bytes', layer: 'netlink', isTyped: () => false, maxLength: 8192, ...t,
});

export const netlinkTargets: BytesTarget[] = [
  netlinkTarget({
    name: 'netlink-batch',
    about: 'a receive batch (kernel dumps, acks) through splitMessages and the link/address/route/rule/ack decoders',
    weight: 4,
    corpus: () => [...corpora().dumps, ...corpora().messages, ...corpora().acks],
    create: () => ({
      run(b) {
        const { messages, malformed } = split(b);
        for (const m of messages) decode(m);
        return messages.length === 0 ? 'nothing framed' : malformed > 0 ? 'partly framed' : 'framed';
      },
    }),
  }),
  netlinkTarget({
    name: 'netlink-attrs',
    about: 'attribute trees (the payloads of kernel messages) walked 4 levels deep with every accessor',
    weight: 4,
    corpus: () => corpora().messages.map((m) => m.subarray(16 + familyHeaderLength(m.readUInt16LE(4)))),
    create: () => ({
      run: (b) => (walk(Buffer.from(b.buffer, b.byteOffset, b.length), 0, 4) > 0 ? 'attributes' : 'none'),
    }),
  }),
  netlinkTarget({
    name: 'netlink-ack',
    about: 'NLMSG_ERROR / NLMSG_DONE messages with extended-ack TLVs through parseAck',
    weight: 3,
    corpus: () => corpora().acks,
    create: () => ({
      run(b) {
        const labels = split(b).messages.map(checkedAck);
        return labels[0] ?? 'nothing framed';
      },
    }),
  }),
];
