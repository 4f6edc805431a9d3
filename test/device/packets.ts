// Tiny packet helpers for the device tests (the packet layer is separate): checksums, an
// ICMP/ICMPv6 echo responder, an ARP responder, and IPv4/TCP/UDP builders.

export function checksum(buf: Uint8Array, start = 0, end = buf.length, initial = 0): number {
  let sum = initial;
  for (let i = start; i + 1 < end; i += 2) sum += (buf[i]! << 8) | buf[i + 1]!;
  if ((end - start) & 1) sum += buf[end - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

function finish(sum: number): number {
  return (~sum) & 0xffff;
}

function pseudo4(src: Uint8Array, dst: Uint8Array, proto: number, length: number): number {
  return checksum(src) + checksum(dst) + proto + length;
}

function pseudo6(src: Uint8Array, dst: Uint8Array, proto: number, length: number): number {
  return checksum(src) + checksum(dst) + (length >>> 16) + (length & 0xffff) + proto;
}

/** An IPv4 ICMP echo request from `src` to `dst` (dotted quads) with `payload` bytes of data. */
export function echoRequest4(src: string, dst: string, id: number, seq: number, payload = 16): Buffer {
  const out = Buffer.alloc(28 + payload);
  out[0] = 0x45;
  out.writeUInt16BE(out.length, 2);
  out[8] = 64;
  out[9] = 1;
  out.set(ip4(src), 12);
  out.set(ip4(dst), 16);
  out.writeUInt16BE(finish(checksum(out, 0, 20)), 10);
  out[20] = 8;
  out.writeUInt16BE(id, 24);
  out.writeUInt16BE(seq, 26);
  for (let i = 0; i < payload; i++) out[28 + i] = i;
  out.writeUInt16BE(finish(checksum(out, 20, out.length)), 22);
  return out;
}

/** Builds the echo reply to an IPv4 ICMP or IPv6 ICMPv6 echo request, or returns undefined. */
export function echoReply(packet: Uint8Array): Buffer | undefined {
  const version = packet[0]! >> 4;
  if (version === 4) {
    const ihl = (packet[0]! & 0xf) * 4;
    if (packet[9] !== 1 || packet[ihl] !== 8) return undefined;
    const total = (packet[2]! << 8) | packet[3]!;
    const out = Buffer.from(packet.subarray(0, total));
    out.set(packet.subarray(16, 20), 12);
    out.set(packet.subarray(12, 16), 16);
    out[8] = 64;
    out.writeUInt16BE(0, 10);
    out.writeUInt16BE(finish(checksum(out, 0, ihl)), 10);
    out[ihl] = 0;
    out.writeUInt16BE(0, ihl + 2);
    out.writeUInt16BE(finish(checksum(out, ihl, total)), ihl + 2);
    return out;
  }
  if (version === 6) {
    if (packet[6] !== 58 || packet[40] !== 128) return undefined;
    const payload = (packet[4]! << 8) | packet[5]!;
    const out = Buffer.from(packet.subarray(0, 40 + payload));
    out.set(packet.subarray(24, 40), 8);
    out.set(packet.subarray(8, 24), 24);
    out[7] = 64;
    out[40] = 129;
    out.writeUInt16BE(0, 42);
    out.writeUInt16BE(finish(checksum(out, 40, 40 + payload, pseudo6(out.subarray(8, 24), out.subarray(24, 40), 58, payload))), 42);
    return out;
  }
  return undefined;
}

/** Answers ARP requests for `ip` with `mac`, and ICMP echo inside Ethernet frames. */
export function tapReply(frame: Uint8Array, ourIp: Uint8Array, ourMac: Uint8Array): Buffer | undefined {
  const type = (frame[12]! << 8) | frame[13]!;
  if (type === 0x0806) {
    const op = (frame[20]! << 8) | frame[21]!;
    const target = frame.subarray(38, 42);
    if (op !== 1 || Buffer.compare(target, ourIp) !== 0) return undefined;
    const out = Buffer.alloc(42);
    out.set(frame.subarray(6, 12), 0);
    out.set(ourMac, 6);
    out.writeUInt16BE(0x0806, 12);
    out.set(frame.subarray(14, 20), 14); // htype, ptype, hlen, plen
    out.writeUInt16BE(2, 20);
    out.set(ourMac, 22);
    out.set(ourIp, 28);
    out.set(frame.subarray(22, 28), 32);
    out.set(frame.subarray(28, 32), 38);
    return out;
  }
  if (type === 0x0800 || type === 0x86dd) {
    const reply = echoReply(frame.subarray(14));
    if (!reply) return undefined;
    const out = Buffer.alloc(14 + reply.length);
    out.set(frame.subarray(6, 12), 0);
    out.set(ourMac, 6);
    out.writeUInt16BE(type, 12);
    out.set(reply, 14);
    return out;
  }
  return undefined;
}

export function ip4(a: string): Uint8Array {
  return Uint8Array.from(a.split('.').map(Number));
}

export interface TcpFields {
  src: string; dst: string; sport: number; dport: number; seq: number; ack: number;
  flags: number; window?: number; payload?: Uint8Array; options?: Uint8Array;
}
export const TCP = { FIN: 1, SYN: 2, RST: 4, PSH: 8, ACK: 16 } as const;

/**
 * IPv4 + TCP. With `partial`, the TCP checksum holds only the pseudo-header sum (what
 * CHECKSUM_PARTIAL / VIRTIO_NET_HDR_F_NEEDS_CSUM expects); otherwise it is complete.
 */
export function tcp4(f: TcpFields, partial = false): Buffer {
  const options = f.options ?? new Uint8Array(0);
  const payload = f.payload ?? new Uint8Array(0);
  const thl = 20 + options.length;
  const total = 20 + thl + payload.length;
  const out = Buffer.alloc(total);
  out[0] = 0x45;
  out.writeUInt16BE(total, 2);
  out.writeUInt16BE(0x4000, 6); // DF
  out[8] = 64;
  out[9] = 6;
  out.set(ip4(f.src), 12);
  out.set(ip4(f.dst), 16);
  out.writeUInt16BE(finish(checksum(out, 0, 20)), 10);
  out.writeUInt16BE(f.sport, 20);
  out.writeUInt16BE(f.dport, 22);
  out.writeUInt32BE(f.seq >>> 0, 24);
  out.writeUInt32BE(f.ack >>> 0, 28);
  out[32] = (thl / 4) << 4;
  out[33] = f.flags;
  out.writeUInt16BE(f.window ?? 65535, 34);
  out.set(options, 40);
  out.set(payload, 20 + thl);
  const ps = pseudo4(out.subarray(12, 16), out.subarray(16, 20), 6, thl + payload.length);
  if (partial) {
    let s = ps;
    while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
    out.writeUInt16BE(s, 36);
  } else {
    out.writeUInt16BE(finish(checksum(out, 20, total, ps)), 36);
  }
  return out;
}

export interface ParsedTcp {
  src: string; dst: string; sport: number; dport: number; seq: number; ack: number; flags: number;
  headerLength: number; payloadLength: number;
}

export function parseTcp4(p: Uint8Array): ParsedTcp | undefined {
  if (p.length < 40 || p[0]! >> 4 !== 4 || p[9] !== 6) return undefined;
  const b = Buffer.from(p.buffer, p.byteOffset, p.byteLength);
  const ihl = (p[0]! & 0xf) * 4;
  const total = b.readUInt16BE(2);
  const thl = (p[ihl + 12]! >> 4) * 4;
  return {
    src: Array.from(p.subarray(12, 16)).join('.'), dst: Array.from(p.subarray(16, 20)).join('.'),
    sport: b.readUInt16BE(ihl), dport: b.readUInt16BE(ihl + 2), seq: b.readUInt32BE(ihl + 4), ack: b.readUInt32BE(ihl + 8),
    flags: p[ihl + 13]!, headerLength: ihl + thl, payloadLength: total - ihl - thl,
  };
}

/** The UDP source port of an IPv4 packet (or -1). */
export function udpSourcePort(p: Uint8Array): number {
  if (p.length < 28 || p[0]! >> 4 !== 4 || p[9] !== 17) return -1;
  const ihl = (p[0]! & 0xf) * 4;
  return (p[ihl]! << 8) | p[ihl + 1]!;
}
