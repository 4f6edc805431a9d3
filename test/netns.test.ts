import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readlinkSync } from 'node:fs';
import { inNetns, TuntapError } from '../src/index.js';
import { TestNet } from './helpers/netns.js';

const net = new TestNet();
after(() => net.cleanup());

const here = () => readlinkSync('/proc/thread-self/ns/net');

test('inNetns runs the body inside the namespace and returns', () => {
  const ns = net.namespace();
  const home = here();
  const inside = inNetns(ns, here);
  assert.notEqual(inside, home);
  assert.equal(here(), home);
  assert.equal(inNetns(`/var/run/netns/${ns}`, here), inside);
});

test('inNetns returns home even when the body throws', () => {
  const ns = net.namespace();
  const home = here();
  assert.throws(() => inNetns(ns, () => { throw new Error('boom'); }), /boom/);
  assert.equal(here(), home);
});

test('a missing namespace is a TuntapError with ENOENT', () => {
  assert.throws(() => inNetns('tt-does-not-exist', here), (e: unknown) =>
    e instanceof TuntapError && e.code === 'ENOENT' && /no such namespace/.test(e.message));
});

test('Netns.create makes a private namespace; children spawned inside stay inside', async () => {
  const { Netns } = await import('../src/netns.js');
  const { execFileSync } = await import('node:child_process');
  const ns = Netns.create();
  try {
    const home = here();
    const inside = ns.run(here);
    assert.notEqual(inside, home);
    assert.equal(here(), home);
    const child = ns.run(() => execFileSync('readlink', ['/proc/self/ns/net'], { encoding: 'utf8' }).trim());
    assert.equal(child, inside);
  } finally {
    ns.close();
  }
});
