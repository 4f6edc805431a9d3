// Key hygiene: handshake secrets are zeroed when a handshake is dropped, the static private key
// and preshared keys when the engine closes; TAI64N timestamps show no clock finer than 2^24 ns.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { MemoryNet, ipv4, sendPackets } from './harness.js';
import { StaticKey, generatePrivateKey } from '../../src/wireguard/crypto.js';
import {
  createInitiation, consumeInitiation, createResponse, tai64n, TAI64N_STEP_NS, type InitiatorState,
} from '../../src/wireguard/noise.js';

const zero = (b: Uint8Array) => b.every((x) => x === 0);

function pair() {
  const net = new MemoryNet();
  const a = net.add('198.18.0.1', 51820, { timers: { rekeyTimeout: 500, rekeyAttemptTime: 2000 } });
  const b = net.add('198.18.0.2', 51821);
  const psk = randomBytes(32);
  a.engine.setPeer({ publicKey: b.engine.publicKey!, presharedKey: psk, endpoint: b.endpoint, allowedIps: ['10.0.0.2/32'] });
  b.engine.setPeer({ publicKey: a.engine.publicKey!, presharedKey: psk, allowedIps: ['10.0.0.1/32'] });
  return { net, a, b, pa: a.engine.getPeer(b.engine.publicKey!)!, pb: b.engine.getPeer(a.engine.publicKey!)! };
}

/** The secrets an initiator's state holds, zeroed or not. */
function assertWiped(state: InitiatorState, when: string): void {
  assert.ok(zero(state.ck), `${when}: chaining key zeroed`);
  assert.ok(zero(state.presharedKey), `${when}: the state's copy of the preshared key zeroed`);
  assert.equal(state.ephemeralPrivate, undefined, `${when}: ephemeral private key let go`);
}

test('an initiator\'s handshake state is zeroed when the response completes it, a retransmission replaces it, or the attempt gives up', () => {
  const { net, a, b, pa } = pair();
  sendPackets(a, [ipv4('10.0.0.1', '10.0.0.2')]);
  const first = pa.handshake!;
  assert.ok(!zero(first.ck) && !zero(first.presharedKey));
  net.pending = []; // the initiation is lost
  a.engine.initiateHandshake(pa, true); // retransmitted: a new state
  const second = pa.handshake!;
  assert.notEqual(second, first);
  assertWiped(first, 'replaced by a retransmission');
  net.pump();
  assert.equal(b.delivered.length, 1);
  assert.equal(pa.handshake, undefined);
  assertWiped(second, 'completed');
  // the peer goes away: the attempt gives up
  net.filter = () => false;
  a.engine.initiateHandshake(pa, false);
  const third = pa.handshake!;
  net.advance(3000);
  assert.equal(pa.handshake, undefined);
  assertWiped(third, 'given up');
});

test('a responder zeroes the initiation it consumed once it has answered', () => {
  const alice = new StaticKey(generatePrivateKey());
  const bob = new StaticKey(generatePrivateKey());
  const made = createInitiation(alice, bob.public, Buffer.alloc(32), 1, tai64n())!;
  const init = consumeInitiation(bob, made.message)!;
  assert.ok(!zero(init.ck));
  createResponse(init, Buffer.alloc(32), 2);
  assert.ok(zero(init.ck) && zero(init.h), 'answered');
});

test('closing the engine zeroes the static private key and the preshared keys; removing a peer zeroes its preshared key', () => {
  const { net, a, b, pa } = pair();
  sendPackets(a, [ipv4('10.0.0.1', '10.0.0.2')]);
  net.pump();
  const bPsk = b.engine.getPeer(a.engine.publicKey!)!.presharedKey;
  b.engine.removePeer(a.engine.publicKey!);
  assert.ok(zero(bPsk), 'removed peer');
  const priv = a.engine.privateKey!;
  const psk = pa.presharedKey;
  assert.ok(!zero(priv) && !zero(psk));
  a.engine.close();
  assert.ok(zero(priv), 'static private key');
  assert.ok(zero(psk), 'preshared key');
  assert.equal(a.engine.privateKey, undefined);
  assert.equal(a.engine.holdsSessionKeys(), false);
  // a new private key replaces the old one, which is zeroed
  const c = net.add('198.18.0.3', 1);
  const old = c.engine.privateKey!;
  c.engine.setPrivateKey(generatePrivateKey());
  assert.ok(zero(old));
});

test('TAI64N timestamps are rounded down to 2^24 ns, and still grow from one initiation to the next', () => {
  for (const ms of [0, 1, 16, 17, 999, 1_700_000_000_123, 1_700_000_000_999]) {
    const t = tai64n(ms);
    const nanos = t.readUInt32BE(8);
    assert.equal(nanos % TAI64N_STEP_NS, 0, `${ms}`);
    assert.equal(t.readBigUInt64BE(0), 0x4000000000000000n + BigInt(Math.floor(ms / 1000)));
    const exact = (ms % 1000) * 1e6;
    assert.ok(nanos <= exact && exact - nanos < TAI64N_STEP_NS, `${ms}`);
  }
  // What a responder decrypts from the engine's initiations, sent faster than the rounding step.
  const { net, a, b, pa } = pair();
  const bKey = new StaticKey(b.engine.privateKey!);
  const seen: Buffer[] = [];
  for (let i = 0; i < 80; i++) {
    a.engine.initiateHandshake(pa, true);
    seen.push(consumeInitiation(bKey, net.pending.pop()!.data)!.timestamp);
  }
  for (let i = 0; i < seen.length; i++) {
    assert.equal(seen[i]!.readUInt32BE(8) % TAI64N_STEP_NS, 0, `initiation ${i}`);
    if (i > 0) assert.ok(Buffer.compare(seen[i]!, seen[i - 1]!) > 0, `initiation ${i} grows`);
  }
});
