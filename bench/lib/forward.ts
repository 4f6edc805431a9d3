// A TUN <-> UDP forwarder on tuntap's device layer and UdpSocket, started by the forwarder
// benchmark (and its test) inside one namespace:
//
//   node --import tsx bench/lib/forward.ts --mode plain|offload --tun NAME --local IP:PORT --peer IP:PORT
//
// plain:   a batch read from the TUN goes out as one sendmmsg straight from the read buffer,
//          equal-size runs as UDP GSO; received with UDP GRO, written to the TUN as one batch.
// offload: the TUN has a vnet header with TSO4/6 + CSUM, so reads are TCP super-packets up to
//          64 KiB. They are split into MTU-size segments (what the wire carries) sent as UDP
//          GSO groups; the receiver reads with UDP GRO, re-coalesces the TCP segments into
//          super-packets and writes them with a virtio_net_hdr, so the kernel on either side
//          handles one packet per ~45 segments.
// Prints "ready NAME" once both ends are open; runs until killed.
import { openTun, type TunDevice } from '../../src/device/index.js';
import { UdpSocket, type DatagramBatch, type Endpoint } from '../../src/net/index.js';
import { gsoSplit, GroCoalescer } from '../../src/packet/index.js';

function endpoint(text: string): Endpoint {
  const at = text.lastIndexOf(':');
  return { address: text.slice(0, at).replace(/^\[|\]$/g, ''), port: Number(text.slice(at + 1)) };
}

function parseArgs(argv: string[]): { mode: 'plain' | 'offload'; tun: string; local: Endpoint; peer: Endpoint } {
  const get = (flag: string) => {
    const i = argv.indexOf(flag);
    if (i < 0 || i + 1 >= argv.length) throw new Error(`forward.ts: missing ${flag}`);
    return argv[i + 1]!;
  };
  const mode = get('--mode');
  if (mode !== 'plain' && mode !== 'offload') throw new Error(`forward.ts: --mode plain|offload, not ${mode}`);
  return { mode, tun: get('--tun'), local: endpoint(get('--local')), peer: endpoint(get('--peer')) };
}

// Largest segment on the wire: the TUN's MTU is 1420; leave room for any MTU up to 1500.
const SEGMENT_SLOT = 1500;
const MAX_SEGMENTS = 64;

/**
 * TUN -> UDP without device offload: the batch is sent straight from the read buffer in one
 * sendmmsg, runs of equal-size packets (a TCP stream's full segments) joined into UDP GSO sends.
 */
async function tunToUdpPlain(dev: TunDevice, sock: UdpSocket): Promise<void> {
  for await (const batch of dev.queues[0]!.batches()) await sock.sendPacked(batch, undefined, { gsoSize: 'auto' });
}

/** UDP -> TUN without offload: the received batch is written in place, one native call. */
async function udpToTunPlain(sock: UdpSocket, dev: TunDevice): Promise<void> {
  const queue = dev.queues[0]!;
  for await (const batch of sock) await queue.writeRanges(batch.buffer, batch.offsets, batch.lengths, batch.count);
}

/** TUN (super-packets) -> MTU-size segments -> UDP GSO groups. */
async function tunToUdpOffload(dev: TunDevice, sock: UdpSocket, batchSize: number): Promise<void> {
  const slots = batchSize * MAX_SEGMENTS;
  const arena = Buffer.allocUnsafeSlow(slots * SEGMENT_SLOT);
  const views = Array.from({ length: slots }, (_, i) => arena.subarray(i * SEGMENT_SLOT, (i + 1) * SEGMENT_SLOT));
  const offsets = new Uint32Array(slots).map((_, i) => i * SEGMENT_SLOT);
  const lengths = new Uint32Array(slots);
  const sizes = new Uint32Array(MAX_SEGMENTS);
  const out = { buffer: arena, offsets, lengths, count: 0 };
  let malformed = 0;
  for await (const batch of dev.queues[0]!.batches()) {
    let k = 0;
    for (let i = 0; i < batch.count; i++) {
      if (k + MAX_SEGMENTS > slots) break;
      try {
        const n = gsoSplit(batch.packet(i), batch.vnet(i)!, views.slice(k, k + MAX_SEGMENTS), sizes);
        for (let j = 0; j < n; j++) lengths[k + j] = sizes[j]!;
        k += n;
      } catch {
        malformed++; // a packet whose header and body disagree is dropped, never forwarded
      }
    }
    out.count = k;
    if (k > 0) await sock.sendPacked(out, undefined, { gsoSize: 'auto' });
  }
  if (malformed > 0) console.error(`dropped ${malformed} malformed super-packets`);
}

/** UDP GRO -> TCP GRO -> super-packets written with a virtio_net_hdr. */
async function udpToTunOffload(sock: UdpSocket, dev: TunDevice, maxDatagrams: number): Promise<void> {
  // The inner packets were checksummed by the sending forwarder's split and travelled under the
  // outer UDP checksum (or the link's checksum offload); verifying each TCP checksum again here
  // would repeat that work, and the super-packet is written with NEEDS_CSUM anyway.
  const gro = new GroCoalescer({ verifyChecksums: false });
  const groOut = Buffer.allocUnsafeSlow(maxDatagrams * (SEGMENT_SLOT + 10));
  const packets: Buffer[] = [];
  const queue = dev.queues[0]!;
  for await (const batch of sock as AsyncIterable<DatagramBatch>) {
    packets.length = 0;
    for (let i = 0; i < batch.count; i++) packets.push(batch.datagram(i));
    const r = gro.coalesce(packets, groOut);
    // Each output range is virtio_net_hdr + packet, exactly what the TUN takes.
    await queue.writeRanges(groOut, r.offsets, r.lengths, r.count, { raw: true });
  }
}

async function main(): Promise<void> {
  const { mode, tun, local, peer } = parseArgs(process.argv.slice(2));
  const offload = mode === 'offload';
  const batchSize = offload ? 32 : 64;
  const dev = openTun({
    name: tun, batchSize,
    ...(offload ? { vnetHdr: true, offload: { csum: true, tso4: true, tso6: true } } : {}),
  });
  const sock = UdpSocket.open({
    bind: local, connect: peer, gro: true, batchSize,
    recvBufferSize: 4 << 20, sendBufferSize: 4 << 20,
  });
  process.stdout.write(`ready ${dev.name}\n`);
  const stop = () => { void sock.close(); void dev.close(); };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  const fail = (e: unknown) => { console.error(e); process.exitCode = 1; stop(); };
  await Promise.all(offload
    ? [tunToUdpOffload(dev, sock, batchSize).catch(fail), udpToTunOffload(sock, dev, batchSize * MAX_SEGMENTS).catch(fail)]
    : [tunToUdpPlain(dev, sock).catch(fail), udpToTunPlain(sock, dev).catch(fail)]);
}

await main();
