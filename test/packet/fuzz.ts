// Fuzz harness shared by the test suite (short run) and `npm run fuzz` (≥ 1,000,000 per parser).
// Every parser gets random and mutated packets through a guard that throws on any read past the
// end of the buffer; the only exception allowed out of a parser is PacketParseError.
import {
  PacketParseError, EthernetView, ArpView, Ipv4View, Ipv6View, TcpView, UdpView, IcmpView, Icmpv6View,
  parseNd, summarize, readPcap, gsoSplit, GroCoalescer, decodeVnetHdr, describe,
} from '../../src/packet/index.js';
import { corpus } from './corpus.js';

export class ReadPastEnd extends Error {}

/** A Uint8Array whose out-of-range element reads throw (subarrays taken from it are plain). */
export function guarded(b: Uint8Array): Uint8Array {
  return new Proxy(b, {
    get(target, prop) {
      if (typeof prop === 'string') {
        const c = prop.charCodeAt(0);
        if (c >= 48 && c <= 57 && Number(prop) >= target.length) throw new ReadPastEnd(`read of [${prop}] past length ${target.length}`);
      }
      const v = Reflect.get(target, prop, target);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
}

/** Deterministic PRNG (xorshift32) so failures reproduce from the seed. */
export function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x; };
}

type Parser = (b: Uint8Array) => void;

const ethV = new EthernetView(); const arpV = new ArpView(); const v4V = new Ipv4View(); const v6V = new Ipv6View();
const tcpV = new TcpView(); const udpV = new UdpView(); const icmpV = new IcmpView(); const icmp6V = new Icmpv6View();
const outs = Array.from({ length: 64 }, () => new Uint8Array(2048));
const sizes = new Uint32Array(64);
const gro = new GroCoalescer({ udp: true });
const groOut = new Uint8Array(70000);

export const parsers: Record<string, Parser> = {
  ethernet: (b) => { ethV.wrap(b); void ethV.etherType; void ethV.payload; for (let i = 0; i < ethV.vlanCount; i++) ethV.vlanId(i); },
  arp: (b) => { arpV.wrap(b); void arpV.senderIp; void arpV.targetMac; void arpV.operation; },
  ipv4: (b) => { v4V.wrap(b); v4V.options(); void v4V.payload; v4V.verifyChecksum(); },
  ipv6: (b) => { v6V.wrap(b); v6V.extensions(); void v6V.fragmentOffset; void v6V.upperPayload; void v6V.srcAddress; },
  tcp: (b) => { tcpV.wrap(b); tcpV.options(); tcpV.timestampOffset(); void tcpV.payload; },
  udp: (b) => { udpV.wrap(b); void udpV.payload; },
  icmp: (b) => { icmpV.wrap(b); icmpV.verifyChecksum(); void icmpV.payload; },
  icmpv6: (b) => { icmp6V.wrap(b); icmp6V.ndOptions(); if (icmp6V.isNeighborDiscovery) parseNd(icmp6V); void icmp6V.body; },
  frameEthernet: (b) => { summarize(b, 'ethernet'); describe(b, 'ethernet'); },
  frameRaw: (b) => { summarize(b, 'raw'); describe(b, 'raw'); },
  pcap: (b) => { readPcap(b); },
  gso: (b) => {
    if (b.length < 10) throw new PacketParseError('fuzz', 'short');
    const hdr = decodeVnetHdr(b, 0);
    try { gsoSplit(b.subarray(10), hdr, outs, sizes); } catch (e) { if (!(e instanceof RangeError)) throw e; }
  },
  gro: (b) => { gro.coalesce([b, b, b.subarray(0, b.length >> 1)], groOut); },
};

/** Valid inputs per parser, to mutate (every parser also gets some of the others' seeds). */
function seeds(): Record<string, Uint8Array[]> {
  const by: Record<string, Uint8Array[]> = {};
  const add = (name: string, b: Uint8Array) => { (by[name] ??= []).push(b); };
  for (const s of corpus()) {
    add('ethernet', s.frame); add('frameEthernet', s.frame);
    if (s.frame.length > 14 && s.frame[12] === 0x08 && s.frame[13] === 0x06) add('arp', s.frame.subarray(14));
    const raw = s.raw;
    if (!raw || raw.length < 20) continue;
    add('frameRaw', raw);
    const version = raw[0]! >> 4;
    add(version === 4 ? 'ipv4' : 'ipv6', raw);
    if (s.truncated) continue;
    add('gro', raw);
    const l3 = version === 4 ? (raw[0]! & 15) * 4 : 40;
    const proto = version === 4 ? raw[9]! : raw[6]!;
    const l4 = raw.subarray(l3);
    const name = proto === 6 ? 'tcp' : proto === 17 ? 'udp' : proto === 1 ? 'icmp' : proto === 58 ? 'icmpv6' : '';
    if (name) add(name, l4);
    if (proto === 6 || proto === 17) {
      // A super-packet description for gsoSplit: virtio_net_hdr + the packet.
      const hdrLen = l3 + (proto === 6 ? (l4[12]! >> 4) * 4 : 8);
      const v = new Uint8Array(10 + raw.length);
      v.set(raw, 10);
      const put = (o: number, x: number) => { v[o] = x & 0xff; v[o + 1] = x >> 8; };
      v[0] = 1; v[1] = proto === 17 ? 5 : version === 4 ? 1 : 4;
      put(2, hdrLen); put(4, 4); put(6, l3); put(8, proto === 6 ? 16 : 6);
      add('gso', v);
    }
  }
  const pcap = new Uint8Array(24 + 16 + 20);
  const dv = new DataView(pcap.buffer);
  dv.setUint32(0, 0xa1b2c3d4, true); dv.setUint32(20, 1, true); dv.setUint32(32, 20, true); dv.setUint32(36, 20, true);
  add('pcap', pcap);
  return by;
}

/** Runs `iterations` random + mutated inputs through each parser; returns counts per parser. */
export function fuzz(iterations: number, seed = 1, only?: string[]): Record<string, { ok: number; rejected: number }> {
  const next = rng(seed);
  const bySeeds = seeds();
  const everything = Object.values(bySeeds).flat();
  const result: Record<string, { ok: number; rejected: number }> = {};
  const scratch = new Uint8Array(4096);
  for (const [name, parse] of Object.entries(parsers)) {
    if (only && !only.includes(name)) continue;
    let ok = 0; let rejected = 0;
    const own = bySeeds[name] ?? everything;
    for (let i = 0; i < iterations; i++) {
      const base = (next() % 10) === 0 ? everything : own;
      let len: number;
      if (i % 4 === 0) {
        // Random bytes with a plausible first byte.
        len = next() % 200;
        for (let j = 0; j < len; j++) scratch[j] = next() & 0xff;
        if (len > 0 && (next() & 1)) scratch[0] = [0x45, 0x46, 0x4f, 0x60, 0x86, 0x08][next() % 6]!;
      } else {
        const src = base[next() % base.length]!;
        len = src.length;
        scratch.set(src.subarray(0, Math.min(len, scratch.length)));
        const mutations = 1 + (next() % 4);
        for (let m = 0; m < mutations; m++) {
          const kind = next() % 5;
          if (kind === 0 && len > 0) scratch[next() % len] = next() & 0xff;
          else if (kind === 1 && len > 0) scratch[next() % len]! ^= 1 << (next() % 8);
          else if (kind === 2) len = next() % (len + 1);
          else if (kind === 3) { const extra = next() % 64; for (let j = 0; j < extra && len < scratch.length; j++) scratch[len++] = next() & 0xff; }
          else if (len > 4) { const at = next() % (len - 1); scratch[at] = 0xff; scratch[at + 1] = next() & 0xff; } // large length fields
        }
      }
      const input = guarded(scratch.slice(0, len));
      try {
        parse(input);
        ok++;
      } catch (e) {
        if (e instanceof PacketParseError) { rejected++; continue; }
        const hex = Buffer.from(scratch.subarray(0, len)).toString('hex');
        throw new Error(`fuzz ${name} (seed ${seed}, iteration ${i}) threw ${String(e)} on ${hex}`, { cause: e });
      }
    }
    result[name] = { ok, rejected };
  }
  return result;
}
