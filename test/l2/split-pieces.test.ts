// splitPieces (the VXLAN port's send split) against gsoSplit, which sums every segment in full:
// the gathered segments, prefix stripped, must be the same bytes, for IPv4/IPv6, TCP/UDP, behind
// an Ethernet header with and without a VLAN tag, with FIN/PSH/CWR, sequence numbers and IPv4 IDs
// that wrap, and payloads whose last segment is short or odd. The headers' checksums are summed
// once per packet and adjusted per segment, so a wrong adjustment shows here byte for byte.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildIpv4, buildIpv6, buildTcp, buildUdp, TcpFlags, GsoType, gsoSplit, verifyTransportChecksum } from '../../src/packet/index.js';
import { planSplit, newSplitPlan, splitPieces } from '../../src/base/gso.js';
import { PieceBuffer } from '../../src/base/batch.js';
import { sumRanges } from '../../src/base/checksum-batch.js';
import { checksumRanges } from '../../src/native.js';

const payloadOf = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 131 + seed + (i >> 7)) & 0xff);

function frame(version: 4 | 6, proto: 6 | 17, n: number, vlan: boolean, seed: number): Uint8Array {
  const ip = version === 4 ? { src: '198.18.0.1', dst: '198.18.0.2' } : { src: 'fd00::1', dst: 'fd00::2' };
  const flags = TcpFlags.ACK | TcpFlags.PSH | TcpFlags.FIN | TcpFlags.CWR;
  const l4 = proto === 6
    ? buildTcp({ srcPort: 4321 + seed, dstPort: 80, seq: (0xfffff000 + seed * 977) >>> 0, ack: 99 + seed, flags, window: 500,
      options: { timestamp: [seed, 2] }, payload: payloadOf(n, seed) }, ip)
    : buildUdp({ srcPort: 4321 + seed, dstPort: 53, payload: payloadOf(n, seed) }, ip);
  const packet = version === 4
    ? buildIpv4({ ...ip, protocol: proto, identification: (0xfff0 + seed) & 0xffff, dontFragment: true, ttl: 60 + seed, payload: l4 })
    : buildIpv6({ ...ip, protocol: proto, payload: l4 });
  const eth = Uint8Array.from([2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, ...(vlan ? [0x81, 0, 0, 7] : []), version === 4 ? 0x08 : 0x86, version === 4 ? 0 : 0xdd]);
  const out = new Uint8Array(eth.length + packet.length);
  out.set(eth); out.set(packet, eth.length);
  return out;
}

for (const [name, summer] of [['native summer', checksumRanges], ['JS summer', sumRanges]] as const) {
  test(`splitPieces gives gsoSplit's segments byte for byte (${name})`, () => {
    const prefix = Uint8Array.from([8, 0, 0, 0, 0, 0, 77, 0]);
    let cases = 0;
    for (const version of [4, 6] as const) {
      for (const proto of [6, 17] as const) {
        for (const vlan of [false, true]) {
          for (const [n, mss] of [[60000, 1398], [4001, 1000], [1, 536], [2799, 1399], [1398, 1398], [65000 - 200, 256]] as const) {
            const seed = cases++;
            const pkt = frame(version, proto, n, vlan, seed);
            const ipOffset = vlan ? 18 : 14;
            const l3 = version === 4 ? 20 : 40;
            const csumStart = ipOffset + l3;
            const hdrLen = csumStart + (proto === 6 ? 32 : 8);
            const gsoType = proto === 17 ? GsoType.UDP_L4 : version === 4 ? GsoType.TCPV4 : GsoType.TCPV6;
            const hdr = { flags: 1, gsoType, hdrLen, gsoSize: mss, csumStart, csumOffset: proto === 6 ? 16 : 6 };
            const plan = planSplit(pkt, hdr, ipOffset, newSplitPlan());
            // The reference: every segment summed in full.
            const outs = Array.from({ length: plan.count }, () => new Uint8Array(hdrLen + mss));
            const sizes = new Uint32Array(plan.count);
            assert.equal(gsoSplit(pkt, hdr, outs, sizes, 0, ipOffset), plan.count);
            const headers = new Uint8Array(7 + plan.count * (prefix.length + hdrLen));
            const pieces = new PieceBuffer();
            pieces.sources.push(headers, pkt);
            const written = splitPieces(pkt, plan, pieces, 1, 0, headers, 7, prefix, summer);
            assert.equal(written, plan.count * (prefix.length + hdrLen));
            assert.equal(pieces.count, plan.count);
            for (let i = 0; i < plan.count; i++) {
              const parts: Uint8Array[] = [];
              for (let k = i === 0 ? 0 : pieces.ends[i - 1]!; k < pieces.ends[i]!; k++) {
                const [s, o, l] = [pieces.pieces[3 * k]!, pieces.pieces[3 * k + 1]!, pieces.pieces[3 * k + 2]!];
                parts.push(pieces.sources[s]!.subarray(o, o + l));
              }
              const got = Buffer.concat(parts);
              const what = `IPv${version} ${proto === 6 ? 'TCP' : 'UDP'}${vlan ? ' VLAN' : ''} ${n}/${mss} segment ${i}`;
              assert.deepEqual([...got.subarray(0, prefix.length)], [...prefix], `${what}: prefix`);
              const seg = got.subarray(prefix.length);
              assert.ok(Buffer.from(outs[i]!.subarray(0, sizes[i])).equals(seg), `${what}: differs from gsoSplit's`);
              assert.ok(verifyTransportChecksum(seg, ipOffset, csumStart, seg.length, proto), `${what}: checksum`);
            }
          }
        }
      }
    }
  });
}
