// Generic segmentation offload done in user space: one TCP or UDP super-packet, as read from a
// TUN with IFF_VNET_HDR and TSO/USO enabled, becomes MTU-sized packets the way the kernel's
// tcp_gso_segment/udp_gso_segment would cut it. Output goes into caller-provided buffers so the
// hot path allocates nothing.
import { PacketParseError } from './errors.js';
import { u16, u32, put16, put32 } from './bytes.js';
import { finish, fold, internetChecksum, pseudoHeaderSum, sum16, completePartialChecksum } from './checksum.js';
import { GsoType, VirtioNetHdrFlags, type VirtioNetHdr } from './tunheaders.js';

const FIN = 0x01, PSH = 0x08, CWR = 0x80;

/**
 * Splits `pkt` (starting `ipOffset` bytes before the IP header: 0 for TUN, 14 for TAP) according
 * to `hdr`. Segment i is written to outBuffers[i] at `outOffset`, its length to sizes[i].
 * Returns the number of segments. A packet without GSO is copied as one segment, with its
 * checksum completed if NEEDS_CSUM is set. Throws PacketParseError when the packet and header
 * disagree and RangeError when the output buffers are too few or too small.
 */
export function gsoSplit(pkt: Uint8Array, hdr: VirtioNetHdr, outBuffers: readonly Uint8Array[],
  sizes: Uint32Array | number[], outOffset = 0, ipOffset = 0): number {
  const gsoType = hdr.gsoType & ~GsoType.ECN;
  const needsCsum = (hdr.flags & VirtioNetHdrFlags.NEEDS_CSUM) !== 0;
  if (gsoType === GsoType.NONE) {
    const out = outBuffers[0];
    if (!out || out.length - outOffset < pkt.length) throw new RangeError('output buffer too small for the packet');
    out.set(pkt, outOffset);
    if (needsCsum) {
      if (hdr.csumStart + hdr.csumOffset + 2 > pkt.length) throw new PacketParseError('gso', 'checksum offset lies outside the packet');
      completePartialChecksum(out, hdr.csumStart, hdr.csumOffset, outOffset, outOffset + pkt.length);
    }
    sizes[0] = pkt.length;
    return 1;
  }
  if (pkt.length < ipOffset + 20) throw new PacketParseError('gso', 'packet shorter than an IP header');
  const version = pkt[ipOffset]! >> 4;
  const isTcp = gsoType === GsoType.TCPV4 || gsoType === GsoType.TCPV6;
  if (gsoType === GsoType.UDP) throw new PacketParseError('gso', 'UFO (IP fragmentation offload) is not supported');
  if (!isTcp && gsoType !== GsoType.UDP_L4) throw new PacketParseError('gso', `unknown gso type ${hdr.gsoType}`);
  if ((gsoType === GsoType.TCPV4 && version !== 4) || (gsoType === GsoType.TCPV6 && version !== 6) || (version !== 4 && version !== 6)) {
    throw new PacketParseError('gso', `gso type ${gsoType} does not match IP version ${version}`);
  }
  const l4 = hdr.csumStart;
  const minIp = version === 4 ? (pkt[ipOffset]! & 15) * 4 : 40;
  if (l4 < ipOffset + minIp || l4 + (isTcp ? 20 : 8) > pkt.length) throw new PacketParseError('gso', `csum_start ${l4} does not point at the transport header`);
  const hdrLen = isTcp ? l4 + (pkt[l4 + 12]! >> 4) * 4 : l4 + 8;
  if (hdrLen > pkt.length || (isTcp && hdrLen < l4 + 20)) throw new PacketParseError('gso', 'transport header runs past the packet');
  const mss = hdr.gsoSize;
  if (mss === 0) throw new PacketParseError('gso', 'gso_size is 0');
  const payload = pkt.length - hdrLen;
  const count = payload === 0 ? 1 : Math.ceil(payload / mss);
  if (count > outBuffers.length) throw new RangeError(`${count} segments need ${count} output buffers, got ${outBuffers.length}`);

  const proto = isTcp ? 6 : 17;
  const id0 = version === 4 ? u16(pkt, ipOffset + 4) : 0;
  const seq0 = isTcp ? u32(pkt, l4 + 4) : 0;
  const flags0 = isTcp ? pkt[l4 + 13]! : 0;
  const csumAt = isTcp ? 16 : 6;
  // Pseudo-header sum without the length: addresses + protocol, computed once.
  const pseudoBase = pseudoHeaderSum(pkt, ipOffset, proto, 0);
  const headers = pkt.subarray(0, hdrLen);
  for (let i = 0; i < count; i++) {
    const start = hdrLen + i * mss;
    const end = Math.min(start + mss, pkt.length);
    const segLen = hdrLen + (end - start);
    const out = outBuffers[i]!;
    const o = outOffset;
    if (out.length - o < segLen) throw new RangeError(`output buffer ${i} holds ${out.length - o} bytes, segment needs ${segLen}`);
    out.set(headers, o);
    out.set(pkt.subarray(start, end), o + hdrLen);
    const ip = o + ipOffset;
    if (version === 4) {
      put16(out, ip + 2, segLen - ipOffset);
      put16(out, ip + 4, (id0 + i) & 0xffff);
      put16(out, ip + 10, 0);
      put16(out, ip + 10, internetChecksum(out, ip, ip + minIp));
    } else {
      put16(out, ip + 4, segLen - ipOffset - 40);
    }
    const t = o + l4;
    const l4Len = segLen - l4;
    if (isTcp) {
      put32(out, t + 4, (seq0 + i * mss) >>> 0);
      let f = flags0;
      if (i !== count - 1) f &= ~(FIN | PSH);
      if (i !== 0) f &= ~CWR;
      out[t + 13] = f;
    } else {
      put16(out, t + 4, l4Len);
    }
    put16(out, t + csumAt, 0);
    let c = finish(sum16(out, t, o + segLen, pseudoBase + l4Len));
    if (!isTcp && c === 0) c = 0xffff;
    put16(out, t + csumAt, c);
    sizes[i] = segLen;
  }
  return count;
}

/** The uncomplemented, folded pseudo-header sum NEEDS_CSUM expects in the checksum field. */
export function partialPseudoChecksum(pkt: Uint8Array, ipOffset: number, protocol: number, l4Length: number): number {
  return fold(pseudoHeaderSum(pkt, ipOffset, protocol, l4Length));
}
