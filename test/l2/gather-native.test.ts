// The gathered writes and sends (native/gather.h: TunQueue.writePieces, UdpSocketNative.sendPieces)
// with hostile piece lists: offsets and lengths that wrap or run past their source, ends that go
// backwards or past the pieces, too many sources or pieces, a getter that detaches a source while
// the list is read. Each must be refused with a RangeError or TypeError and write nothing; under
// `npm run test:asan` a stray access aborts the run. Valid lists go through a real TUN and a real
// UDP socket pair in a test namespace, byte for byte.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TestNet, nsExec } from '../helpers/netns.js';
import { addon } from '../../src/native.js';
import { inNetns } from '../../src/netns.js';
import { UdpSocket } from '../../src/net/index.js';
import { PieceBuffer } from '../../src/base/batch.js';
import { internetChecksum } from '../../src/base/checksum.js';
import { put16 } from '../../src/base/bytes.js';

/* eslint-disable @typescript-eslint/no-explicit-any */
const N = addon as Record<string, any>;

function detach(b: Uint8Array): void {
  structuredClone(b.buffer, { transfer: [b.buffer as ArrayBuffer] });
}

/** Piece lists no gathered call may take: [what, sources, pieces, ends, start, count]. */
function hostileLists(): [string, unknown, Uint32Array, Uint32Array, number, number][] {
  const a = new Uint8Array(64);
  const b = new Uint8Array(32);
  const detaching: Uint8Array[] = [a, b];
  Object.defineProperty(detaching, 1, { get() { detach(a); return b; } });
  return [
    ['an offset past its source', [a], Uint32Array.of(0, 65, 0), Uint32Array.of(1), 0, 1],
    ['a range running past its source', [a], Uint32Array.of(0, 60, 8), Uint32Array.of(1), 0, 1],
    ['an offset + length that wraps', [a], Uint32Array.of(0, 0xffffffff, 2), Uint32Array.of(1), 0, 1],
    ['a length that wraps the total', [a, a], Uint32Array.of(0, 0, 64, 1, 0, 0xffffffff), Uint32Array.of(2), 0, 1],
    ['a source index past the sources', [a], Uint32Array.of(1, 0, 8), Uint32Array.of(1), 0, 1],
    ['a source index of 2^32-1', [a], Uint32Array.of(0xffffffff, 0, 8), Uint32Array.of(1), 0, 1],
    ['ends past the pieces', [a], Uint32Array.of(0, 0, 8), Uint32Array.of(2), 0, 1],
    ['ends going backwards', [a], Uint32Array.of(0, 0, 8, 0, 8, 8), Uint32Array.of(2, 1), 0, 2],
    ['an output with no pieces', [a], Uint32Array.of(0, 0, 8), Uint32Array.of(1, 1), 0, 2],
    ['start past count', [a], Uint32Array.of(0, 0, 8), Uint32Array.of(1), 2, 1],
    ['a start whose first piece is past the pieces', [a], Uint32Array.of(0, 0, 8, 0, 8, 8), Uint32Array.of(0xffffffff, 2), 1, 2],
    ['count past ends', [a], Uint32Array.of(0, 0, 8), Uint32Array.of(1), 0, 5],
    ['count of 2^32', [a], Uint32Array.of(0, 0, 8), Uint32Array.of(1), 0, 2 ** 32],
    ['no sources', [], Uint32Array.of(0, 0, 8), Uint32Array.of(1), 0, 1],
    ['17 sources', Array.from({ length: 17 }, () => a), Uint32Array.of(0, 0, 8), Uint32Array.of(1), 0, 1],
    ['a source that is not bytes', [a, 7], Uint32Array.of(1, 0, 8), Uint32Array.of(1), 0, 1],
    ['sources that are not an Array', a, Uint32Array.of(0, 0, 8), Uint32Array.of(1), 0, 1],
    ['more than 1024 pieces in one output', [a], new Uint32Array(3 * 1025), Uint32Array.of(1025), 0, 1],
    ['a getter that detaches a source read before it', detaching, Uint32Array.of(0, 0, 64, 1, 0, 32), Uint32Array.of(2), 0, 1],
  ];
}

function refused(what: string, fn: () => unknown): void {
  assert.throws(fn, (e: unknown) => e instanceof RangeError || e instanceof TypeError, what);
}

describe('gathered native writes and sends', () => {
  const net = new TestNet();
  let ns: string;
  let nsFd: { fd: number };
  let rx: UdpSocket;
  let tx: UdpSocket;

  before(() => {
    ns = net.namespace('l2gn');
    nsFd = { fd: N.openPath(`/run/netns/${ns}`) as number };
    rx = UdpSocket.open({ netns: ns, bind: { address: '127.0.0.1', port: 0 } });
    tx = UdpSocket.open({ netns: ns, bind: { address: '127.0.0.1', port: 0 } });
    net.configure(ns, 'lo', { up: true });
  });
  after(async () => {
    await rx?.close();
    await tx?.close();
    N.closeFd(nsFd.fd);
    net.cleanup();
  });

  it('TunQueue.writePieces refuses every hostile piece list and writes nothing; a valid list goes out', () => {
    const { fd, name } = inNetns(nsFd, () => N.tunOpen('gx%d', 0x1001 /* IFF_TUN | IFF_NO_PI */, 0)) as { fd: number; name: string };
    const queue = new N.TunQueue(fd);
    try {
      nsExec(ns, 'ip', 'link', 'set', name, 'up');
      const written = () => Number(nsExec(ns, 'cat', `/sys/class/net/${name}/statistics/rx_packets`).trim());
      const before = written();
      for (const [what, sources, pieces, ends, start, count] of hostileLists()) {
        refused(what, () => queue.writePieces(sources, pieces, ends, start, count));
      }
      assert.equal(written(), before, 'nothing reached the device');
      // An IPv4/UDP packet to a documentation address, its header and payload from two buffers.
      const header = Uint8Array.of(0x45, 0, 0, 36, 0, 0, 0x40, 0, 64, 17, 0, 0, 198, 18, 0, 1, 192, 0, 2, 1, 0x30, 0x39, 0, 9, 0, 16, 0, 0);
      put16(header, 10, internetChecksum(header, 0, 20));
      assert.equal(queue.writePieces([header, new Uint8Array(8)], Uint32Array.of(0, 0, 28, 1, 0, 8), Uint32Array.of(2), 0, 1), 1);
      assert.equal(written(), before + 1);
    } finally {
      queue.close();
    }
  });

  it('UdpSocketNative.sendPieces refuses every hostile piece list and sends nothing', () => {
    const sock = inNetns(nsFd, () => new N.UdpSocketNative(4));
    try {
      sock.setRecvArea({
        data: new Uint8Array(2048), slotSize: 2048, batch: 1, lengths: new Uint32Array(1), segmentSizes: new Uint32Array(1),
        truncated: new Uint32Array(1), endpoints: new Uint8Array(24), drops: new Uint32Array(3), sendResult: new Uint32Array(4),
      });
      const to = new Uint8Array(24);
      to.set([127, 0, 0, 1]); to[16] = rx.localEndpoint.port >> 8; to[17] = rx.localEndpoint.port & 0xff; to[18] = 4;
      for (const [what, sources, pieces, ends, start, count] of hostileLists()) {
        refused(what, () => sock.sendPieces(sources, pieces, ends, start, count, to, null, -1));
      }
      refused('a destination id past the records', () => sock.sendPieces([new Uint8Array(8)], Uint32Array.of(0, 0, 8), Uint32Array.of(1), 0, 1, to, Uint32Array.of(1), 0));
      refused('destIds shorter than the datagrams', () => sock.sendPieces([new Uint8Array(8)], Uint32Array.of(0, 0, 8, 0, 0, 8), Uint32Array.of(1, 2), 0, 2, to, Uint32Array.of(0), 0));
    } finally {
      sock.close();
    }
    assert.equal(rx.stats.received, 0);
  });

  it('sends gathered datagrams byte for byte, joined into one UDP GSO message', async () => {
    const headers = Buffer.from('HDR0HDR1HDR2');
    const payload = Buffer.alloc(3000);
    for (let i = 0; i < payload.length; i++) payload[i] = (i * 7) & 0xff;
    const list = new PieceBuffer();
    list.sources.push(headers, payload);
    // Three datagrams of 4 + 1000 bytes, the last 4 + 500: header piece, payload piece.
    for (let i = 0; i < 3; i++) {
      list.add(0, 4 * i, 4);
      list.add(1, 1000 * i, i === 2 ? 500 : 1000);
      list.end();
    }
    const got = rx.receive();
    await tx.sendGathered(list, rx.localEndpoint, { gsoSize: 'auto' });
    assert.equal(tx.stats.sendMessages, 1, 'the three datagrams left as one GSO message');
    const batch = (await got)!;
    const seen: Buffer[] = [];
    for (const d of batch) seen.push(Buffer.from(d));
    for (let more = 0; seen.length < 3 && more < 3; more++) for (const d of (await rx.receive())!) seen.push(Buffer.from(d));
    assert.deepEqual(seen, [0, 1, 2].map((i) => Buffer.concat([headers.subarray(4 * i, 4 * i + 4), payload.subarray(1000 * i, 1000 * i + (i === 2 ? 500 : 1000))])));
  });
});
