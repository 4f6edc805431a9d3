// Persistent devices, owner and group: the device outlives its fd; the owner uid (not root)
// may attach, other uids get EPERM; TUN_EXCL refuses an existing device.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { TestNet, nsExec, nsRun } from '../helpers/netns.js';
import { copyFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { addonPath, asUser, readableDir } from '../helpers/user.js';
import { TuntapError, toTuntapError } from '../../src/errors.js';
import { explainOpen } from '../../src/device/explain.js';
import { openTun, IFF } from '../../src/device/index.js';

const net = new TestNet();
after(() => net.cleanup());

// The unprivileged child may not be able to read the checkout (e.g. under /root), so it runs
// from a world-readable temp dir with a copy of the addon, calls the same native open, and
// reports errno; the parent turns that into the TuntapError our API would throw. It may not be
// able to open /dev/net/tun either (0600 on a fresh boot): asUser gives it an openable node.
const childDir = readableDir('tuntap-attach-');
copyFileSync(addonPath(), join(childDir, 'tuntap.node'));
writeFileSync(join(childDir, 'attach.cjs'), `
const addon = require(${JSON.stringify(join(childDir, 'tuntap.node'))});
try {
  const r = addon.tunOpen(process.argv[2], ${IFF.TUN | IFF.NO_PI}, 0);
  addon.closeFd(r.fd);
  console.log(JSON.stringify({ ok: true, name: r.name, uid: process.getuid() }));
} catch (e) {
  console.log(JSON.stringify({ ok: false, errno: e.errno, syscall: e.syscall, message: e.message }));
}`);
after(() => rmSync(childDir, { recursive: true, force: true }));

/** Tries to attach to `name` inside `ns` as uid:gid (no capabilities, no supplementary groups). */
async function attachAs(ns: string, uid: number, gid: number, name: string): Promise<{ ok: boolean; code?: string; message?: string; uid?: number; name?: string }> {
  const [cmd, ...args] = asUser(uid, gid, [process.execPath, join(childDir, 'attach.cjs'), name]);
  const r = await nsRun(ns, cmd!, args);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { ok: boolean; errno?: number; syscall?: string; message?: string; uid?: number; name?: string };
  if (out.ok) return { ok: true, name: out.name, uid: out.uid };
  const err = toTuntapError(out, `opening ${name}`, explainOpen(name, { exclusive: false, multiQueue: false, mode: 'tun' })) as TuntapError;
  assert.ok(err instanceof TuntapError, out.message);
  return { ok: false, code: err.code, message: err.message };
}

function linkExists(ns: string, name: string): boolean {
  return nsExec(ns, 'ip', '-o', 'link').includes(` ${name}:`);
}

test('a persistent device outlives its fd and can be attached again, then removed', async () => {
  const ns = net.namespace('ds');
  const dev = openTun({ netns: ns, name: 'keep0', persist: true });
  assert.equal(dev.persistent, true);
  assert.ok(dev.iff().flags & IFF.PERSIST);
  await dev.close();
  assert.ok(linkExists(ns, 'keep0'), 'the device is still there after close');

  assert.throws(() => openTun({ netns: ns, name: 'keep0', exclusive: true }),
    (e: unknown) => e instanceof TuntapError && e.code === 'EBUSY' && /already exists/.test(e.message));
  const again = openTun({ netns: ns, name: 'keep0' });
  assert.equal(again.name, 'keep0');
  again.setPersist(false);
  await again.close();
  assert.equal(linkExists(ns, 'keep0'), false, 'no longer persistent: it disappears with its last fd');
});

test('the owner uid may attach without privileges; another uid gets EPERM', async () => {
  const ns = net.namespace('ds');
  const dev = openTun({ netns: ns, name: 'own0', persist: true, owner: 4321 });
  await dev.close();
  try {
    const owner = await attachAs(ns, 4321, 4321, 'own0');
    assert.deepEqual(owner, { ok: true, name: 'own0', uid: 4321 });
    const other = await attachAs(ns, 4322, 4322, 'own0');
    assert.equal(other.ok, false);
    assert.equal(other.code, 'EPERM');
    assert.match(other.message!, /owner uid or group/);
    // Creating a device is CAP_NET_ADMIN only.
    const creator = await attachAs(ns, 4321, 4321, 'new0');
    assert.equal(creator.code, 'EPERM');
    assert.match(creator.message!, /creating new0 needs CAP_NET_ADMIN/);
  } finally {
    const d = openTun({ netns: ns, name: 'own0' });
    d.setPersist(false);
    await d.close();
  }
});

test('the group may attach; a uid outside it gets EPERM', async () => {
  const ns = net.namespace('ds');
  const dev = openTun({ netns: ns, name: 'grp0', persist: true, group: 5555 });
  await dev.close();
  try {
    assert.equal((await attachAs(ns, 4323, 5555, 'grp0')).ok, true);
    const outsider = await attachAs(ns, 4323, 5556, 'grp0');
    assert.equal(outsider.code, 'EPERM');
  } finally {
    const d = openTun({ netns: ns, name: 'grp0' });
    d.setPersist(false);
    await d.close();
  }
  assert.equal(linkExists(ns, 'grp0'), false);
});
