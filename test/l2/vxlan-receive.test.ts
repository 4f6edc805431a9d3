// VxlanPort's receive loop reuses its frame objects, its frames array and the views of received
// datagrams from one batch to the next (kept per message and place in the message). Datagrams
// from a real UDP socket in another namespace: a smaller batch after a larger one must yield
// only its own frames (no stale ones from the array), and datagrams of other lengths at the
// same places must be seen with their own bytes and lengths (no stale views).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TestNet } from '../helpers/netns.js';
import { VxlanPort } from '../../src/l2/vxlan.js';
import type { Frame } from '../../src/l2/port.js';
import { encapsulate } from '../../src/packet/vxlan.js';
import { UdpSocket } from '../../src/net/index.js';

const VNI = 77;
const PORT_ADDRESS = '198.18.44.1';
const SENDER = '198.18.44.2';

/** An Ethernet frame (broadcast, from 02:00:00:00:00:01, EtherType 0x88b5) of `length` bytes, filled with `mark`. */
function frame(mark: number, length: number): Uint8Array {
  const f = new Uint8Array(length).fill(mark);
  f.set([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 0x01, 0x88, 0xb5]);
  return f;
}

describe('VxlanPort receive batches', () => {
  const net = new TestNet();
  let port: VxlanPort;
  let sender: UdpSocket;
  let frames: AsyncIterator<readonly Frame[]>;
  const abort = new AbortController();

  before(async () => {
    const ours = net.namespace('l2vr'); const theirs = net.namespace('l2vs');
    const v = net.veth(ours, theirs);
    net.configure(ours, v.a, { addresses: [`${PORT_ADDRESS}/24`] });
    net.configure(theirs, v.b, { addresses: [`${SENDER}/24`] });
    port = await VxlanPort.open({ vni: VNI, local: PORT_ADDRESS, netns: ours });
    sender = UdpSocket.open({ netns: theirs, bind: { address: SENDER, port: 0 } });
    frames = port.receive(abort.signal)[Symbol.asyncIterator]();
  });
  after(async () => {
    abort.abort();
    await sender?.close();
    await port?.close();
    net.cleanup();
  });

  // A batch asked for and not yet taken (a wait that timed out leaves it for the next one).
  let waiting: Promise<IteratorResult<readonly Frame[]>> | undefined;

  /** The port's next batch's frames, copied, or null after `ms`. */
  async function nextBatch(ms: number): Promise<Uint8Array[] | null> {
    const next = (waiting ??= frames.next());
    let timer: NodeJS.Timeout | undefined;
    const r = await Promise.race([next, new Promise<null>((res) => { timer = setTimeout(() => res(null), ms); })]);
    clearTimeout(timer);
    if (r === null) return null;
    waiting = undefined;
    return r.done ? null : r.value.map((f) => new Uint8Array(f.data));
  }

  /** Sends `sent` and copies what the port yields until as many frames came (1 s at most), and then 200 ms more. */
  async function exchange(sent: Uint8Array[]): Promise<Uint8Array[]> {
    await sender.sendBatch(sent.map((f) => encapsulate(VNI, f)), { address: PORT_ADDRESS, port: 4789 });
    const got: Uint8Array[] = [];
    const deadline = Date.now() + 1000;
    while (got.length < sent.length && Date.now() < deadline) {
      const batch = await nextBatch(deadline - Date.now());
      if (batch === null) break;
      got.push(...batch);
    }
    // Anything more the port has would show up at once.
    const extra = await nextBatch(200);
    if (extra !== null) got.push(...extra);
    return got;
  }

  it('yields a smaller batch after a larger one with only its own frames', async () => {
    const large = Array.from({ length: 12 }, (_, i) => frame(0x10 + i, 200));
    assert.deepEqual(await exchange(large), large);
    const small = [frame(0x40, 200), frame(0x41, 200)];
    assert.deepEqual(await exchange(small), small, 'only the two new frames, none left from the batch before');
  });

  it('sees datagrams of other lengths at the same places with their own bytes', async () => {
    const first = Array.from({ length: 6 }, (_, i) => frame(0x50 + i, 300));
    assert.deepEqual(await exchange(first), first);
    const shorter = Array.from({ length: 6 }, (_, i) => frame(0x60 + i, 120 + i));
    assert.deepEqual(await exchange(shorter), shorter);
    const longer = Array.from({ length: 6 }, (_, i) => frame(0x70 + i, 900 - i));
    assert.deepEqual(await exchange(longer), longer);
  });
});
