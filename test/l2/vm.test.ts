// A QEMU guest on a tuntap-made TAP reaches a namespace on the far side of our switch.
//   guest (virtio-net, mq) ══ QEMU as user nobody ══ vmtap (persistent, owner nobody, 2 queues,
//   vnet hdr) ── tc mirred "patch cable" ── tapS ══ our switch ══ tapB ── hostB (198.18.50.2)
// The guest is a Debian kernel plus a busybox initramfs (scripts/vm/build-guest.ts) that pings
// hostB and prints the result on the serial console. QEMU runs under TCG (KVM is not assumed).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TestNet, nsExec, nsSpawn, uniqueName } from '../helpers/netns.js';
import { LearningSwitch } from '../../src/l2/switch.js';
import { TapPort } from '../../src/l2/tap-port.js';
import { createVmTap, deleteVmTap } from '../../src/l2/vm-tap.js';
import { buildGuest, type GuestImage } from '../../scripts/vm/build-guest.js';
import { tapIntoHost } from './helpers.js';
import { asUser } from '../helpers/user.js';

const NOBODY = 65534;
const GUEST_MAC = '52:54:00:12:34:56';

/** Connects two netdevs back to back with tc: whatever enters one leaves through the other. */
function patch(ns: string, a: string, b: string): void {
  for (const [from, to] of [[a, b], [b, a]]) {
    nsExec(ns, 'tc', 'qdisc', 'add', 'dev', from, 'ingress');
    nsExec(ns, 'tc', 'filter', 'add', 'dev', from, 'parent', 'ffff:', 'protocol', 'all', 'u32', 'match', 'u32', '0', '0',
      'action', 'mirred', 'egress', 'redirect', 'dev', to);
  }
}

function runGuest(ns: string, image: GuestImage, ifname: string, timeoutMs: number): Promise<string> {
  // As nobody, with an openable /dev/net/tun whatever the host's node allows (asUser).
  const [cmd, ...args] = asUser(NOBODY, NOBODY, [
    'qemu-system-x86_64', '-accel', 'tcg', '-m', '256', '-nographic', '-no-reboot', '-nodefaults', '-serial', 'stdio',
    '-kernel', image.kernel, '-initrd', image.initrd,
    '-append', 'console=ttyS0 quiet panic=-1 tuntap.ip=198.18.50.1/24 tuntap.peer=198.18.50.2 tuntap.ip6=fd00:50::1/64 tuntap.peer6=fd00:50::2',
    '-netdev', `tap,id=n0,ifname=${ifname},script=no,downscript=no,vhost=off,queues=2`,
    '-device', `virtio-net-pci,netdev=n0,mq=on,vectors=6,romfile=,mac=${GUEST_MAC}`]);
  const qemu = nsSpawn(ns, cmd!, args);
  return new Promise((resolve) => {
    let out = '';
    const timer = setTimeout(() => qemu.kill('SIGKILL'), timeoutMs);
    qemu.stdout!.on('data', (d) => { out += d; });
    qemu.stderr!.on('data', (d) => { out += d; });
    qemu.once('close', () => { clearTimeout(timer); resolve(out); });
  });
}

describe('QEMU guest on a tuntap TAP, through our switch', () => {
  const net = new TestNet();
  let sw: string; let hostB: string;
  let bridge: LearningSwitch;
  let vmtap: string; let tapS: TapPort;
  let image: GuestImage;

  before(() => {
    image = buildGuest();
    sw = net.namespace('l2vm');
    hostB = net.namespace('l2vb');
    vmtap = createVmTap({ name: uniqueName('vm'), user: NOBODY, queues: 2, netns: sw });
    net.configure(sw, vmtap, { up: true });
    tapS = TapPort.open({ name: uniqueName('ts'), netns: sw });
    patch(sw, vmtap, tapS.name);
    const tapB = tapIntoHost(sw, hostB, '198.18.50.2', 'fd00:50::2');
    bridge = new LearningSwitch();
    bridge.addPort(tapS);
    bridge.addPort(tapB);
  });
  after(async () => {
    await bridge?.close();
    try { if (vmtap) deleteVmTap(vmtap, { netns: sw }); } catch { /* the namespace goes anyway */ }
    net.cleanup();
  });

  it('creates a persistent multi-queue vnet-header TAP owned by an unprivileged user', () => {
    const details = nsExec(sw, 'ip', '-d', 'link', 'show', vmtap);
    assert.match(details, /tun type tap/);
    assert.match(details, /vnet_hdr on/);
    assert.match(details, /multi_queue/);
    assert.match(details, /persist on/);
    assert.match(details, new RegExp(`user (${NOBODY}|nobody)`));
  });

  it('the guest, run by that user, pings a namespace behind our switch (v4 and v6)', async () => {
    const out = await runGuest(sw, image, vmtap, 150_000);
    assert.match(out, /TUNTAP-VM-PING-OK/, out.slice(-3000));
    assert.match(out, /TUNTAP-VM-PING6-OK/, out.slice(-3000));
    const row = bridge.macTable().find((r) => r.mac === GUEST_MAC);
    assert.equal(row?.port, tapS.name, 'the switch learned the guest behind the VM-side port');
  });
});
