// In-memory network for engine tests: engines exchange datagrams through a queue pumped by the
// test, with a fake clock, so handshakes, timers and attacks are deterministic.
import { WireGuardEngine, type EngineIo, type EngineOptions } from '../../src/wireguard/engine.js';
import type { Packed, ReceivedDatagrams } from '../../src/wireguard/batch.js';
import { batchViews } from '../../src/base/batch.js';
import { encodeEndpoint, ENDPOINT_SIZE, type ResolvedEndpoint } from '../../src/net/endpoint.js';
import { generatePrivateKey } from '../../src/wireguard/crypto.js';
import { sealBatch, paddedLength } from '../../src/wireguard/aead.js';
import { MESSAGE_DATA, DATA_HEADER_SIZE, TAG_SIZE } from '../../src/wireguard/constants.js';
import type { Peer } from '../../src/wireguard/peer.js';
import { IpProtocol } from '../../src/packet/index.js';

export interface Node {
  engine: WireGuardEngine;
  endpoint: { address: string; port: number };
  delivered: Buffer[];
}

export class MemoryNet {
  clock = 1_000_000;
  readonly nodes = new Map<string, Node>();
  pending: Array<{ to: string; from: { address: string; port: number }; data: Buffer }> = [];
  /** Every datagram ever sent (for replay attacks). */
  wire: Array<{ to: string; from: { address: string; port: number }; data: Buffer }> = [];
  /** Drop datagrams matching this. */
  filter: ((d: { to: string; data: Buffer }) => boolean) | undefined;

  add(address: string, port: number, opts: EngineOptions = {}): Node {
    const key = `${address}:${port}`;
    const node: Node = { endpoint: { address, port }, delivered: [], engine: undefined as unknown as WireGuardEngine };
    const io: EngineIo = {
      send: (to: ResolvedEndpoint, d: Packed) => {
        for (const datagram of batchViews(d)) {
          const data = Buffer.from(datagram);
          const item = { to: `${to.address}:${to.port}`, from: node.endpoint, data };
          this.wire.push(item);
          if (!this.filter || this.filter(item)) this.pending.push(item);
        }
        return true; // copied: the engine may reuse its buffer
      },
      deliver: (d) => {
        for (const p of batchViews(d)) node.delivered.push(Buffer.from(p));
        return true;
      },
    };
    node.engine = new WireGuardEngine(io, { privateKey: generatePrivateKey(), now: () => this.clock, ...opts });
    this.nodes.set(key, node);
    return node;
  }

  /** Delivers a datagram to the engine at `to` as if from `from`. */
  inject(to: string, from: { address: string; port: number }, data: Buffer): void {
    this.nodes.get(to)?.engine.receive(received([data], from));
  }

  /** Delivers queued datagrams (each destination gets its datagrams as one batch) until quiet. */
  pump(maxRounds = 20): void {
    for (let r = 0; r < maxRounds && this.pending.length > 0; r++) {
      const batch = this.pending;
      this.pending = [];
      const byDest = new Map<string, typeof batch>();
      for (const item of batch) {
        let list = byDest.get(item.to);
        if (!list) byDest.set(item.to, list = []);
        list.push(item);
      }
      for (const [to, items] of byDest) {
        const node = this.nodes.get(to);
        if (!node) continue;
        node.engine.receive(receivedFrom(items));
      }
    }
  }

  advance(ms: number, step = 100): void {
    for (let t = 0; t < ms; t += step) {
      this.clock += step;
      for (const n of this.nodes.values()) n.engine.tick();
      this.pump();
    }
  }
}

function receivedFrom(items: Array<{ from: { address: string; port: number }; data: Buffer }>): ReceivedDatagrams {
  const buffer = Buffer.concat(items.map((i) => i.data));
  const offsets = new Uint32Array(items.length);
  const lengths = new Uint32Array(items.length);
  const endpoints = new Uint8Array(items.length * ENDPOINT_SIZE);
  let at = 0;
  items.forEach((it, i) => {
    offsets[i] = at; lengths[i] = it.data.length; at += it.data.length;
    encodeEndpoint(it.from.address, it.from.port, endpoints, i * ENDPOINT_SIZE);
  });
  return { count: items.length, buffer, offsets, lengths, endpoints, endpointOffset: (i) => i * ENDPOINT_SIZE };
}

export function received(datas: Buffer[], from: { address: string; port: number }): ReceivedDatagrams {
  return receivedFrom(datas.map((data) => ({ from, data })));
}

/** A minimal IPv4 packet (enough for routing: version, total length, addresses). */
export function ipv4(src: string, dst: string, payload = Buffer.from('hello')): Buffer {
  const p = Buffer.alloc(20 + payload.length);
  p[0] = 0x45;
  p.writeUInt16BE(p.length, 2);
  p[8] = 64; p[9] = IpProtocol.UDP;
  Buffer.from(src.split('.').map(Number)).copy(p, 12);
  Buffer.from(dst.split('.').map(Number)).copy(p, 16);
  payload.copy(p, 20);
  return p;
}

export function ipv6(src: Buffer, dst: Buffer, payload = Buffer.from('hello6')): Buffer {
  const p = Buffer.alloc(40 + payload.length);
  p[0] = 0x60;
  p.writeUInt16BE(payload.length, 4);
  p[6] = IpProtocol.UDP; p[7] = 64;
  src.copy(p, 8);
  dst.copy(p, 24);
  payload.copy(p, 40);
  return p;
}

export function sendPackets(node: Node, packets: Buffer[]): void {
  const buf = Buffer.concat(packets);
  const offsets = new Uint32Array(packets.length);
  const lengths = new Uint32Array(packets.length);
  let at = 0;
  packets.forEach((p, i) => { offsets[i] = at; lengths[i] = p.length; at += p.length; });
  node.engine.sendPackets(buf, offsets, lengths, packets.length);
}

/**
 * A data message carrying `plaintext` on the engine's current session with `peer`, made as its
 * sender makes one but without its routing, which sends only whole IP packets: what a peer with
 * a faulty or hostile IP stack puts on the wire.
 */
export function sealOnSession(engine: WireGuardEngine, peer: Peer, plaintext: Buffer): Buffer {
  const kp = peer.current!;
  const counter = kp.sendCounter++;
  const out = Buffer.alloc(DATA_HEADER_SIZE + paddedLength(plaintext.length, engine.mtu) + TAG_SIZE);
  out.writeUInt32LE(MESSAGE_DATA, 0);
  out.writeUInt32LE(kp.remoteIndex, 4);
  out.writeUInt32LE(counter, 8); // tests stay far below 2^32 messages
  const one = (v: number) => Uint32Array.of(v);
  sealBatch({
    keys: engine.sessions.keys, keyIndex: one(kp.sendSlot), src: plaintext, srcOffsets: one(0), srcLengths: one(plaintext.length),
    counters: Uint32Array.of(counter, 0), dst: out, dstOffsets: one(DATA_HEADER_SIZE), dstLengths: one(0), count: 1,
  }, engine.mtu);
  return out;
}
