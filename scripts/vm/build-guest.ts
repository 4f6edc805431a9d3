// Builds a tiny QEMU guest for the VM test: a Debian kernel (from the linux-image package, only
// unpacked, never installed) and a busybox initramfs whose /init brings up virtio-net, pings a
// peer given on the kernel command line and powers off. Prints the two paths as JSON.
//
//   node --import tsx scripts/vm/build-guest.ts [outDir]      (default /var/tmp/tuntap-vm)
//
// Needs apt-get (to download the .debs) and dpkg-deb; the result is cached in outDir.
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';

export interface GuestImage {
  kernel: string;
  initrd: string;
}

const sh = (cmd: string, args: string[], cwd?: string) =>
  execFileSync(cmd, args, { encoding: 'utf8', cwd, stdio: ['ignore', 'pipe', 'pipe'] }).trim();

/** Downloads `pkg` (without installing it) and unpacks it under `into`; cached by name. */
function unpack(pkg: string, outDir: string): string {
  const into = join(outDir, pkg);
  if (existsSync(join(into, '.done'))) return into;
  const debs = join(outDir, 'debs');
  mkdirSync(debs, { recursive: true });
  for (const f of readdirSync(debs)) if (f.startsWith(`${pkg}_`)) rmSync(join(debs, f));
  try {
    sh('apt-get', ['download', pkg], debs);
  } catch {
    sh('apt-get', ['update', '-qq']);
    sh('apt-get', ['download', pkg], debs);
  }
  const deb = readdirSync(debs).find((f) => f.startsWith(`${pkg}_`) && f.endsWith('.deb'));
  if (!deb) throw new Error(`apt-get download ${pkg} produced no .deb`);
  rmSync(into, { recursive: true, force: true });
  sh('dpkg-deb', ['-x', join(debs, deb), into]);
  writeFileSync(join(into, '.done'), '');
  return into;
}

/** The versioned kernel package the linux-image-amd64 metapackage points at. */
function kernelPackage(): string {
  const deps = sh('apt-cache', ['depends', 'linux-image-amd64']);
  const m = /Depends:\s+(linux-image-[\w.+-]+)/.exec(deps);
  if (!m) throw new Error('cannot find the kernel package behind linux-image-amd64 (apt-get update?)');
  return m[1]!;
}

// --- a minimal "newc" cpio writer, so building needs no cpio binary ---
function cpio(entries: { name: string; mode: number; data?: Uint8Array }[]): Buffer {
  const parts: Buffer[] = [];
  const pad4 = (n: number) => Buffer.alloc((4 - (n % 4)) % 4);
  let ino = 1;
  const add = (name: string, mode: number, data: Uint8Array) => {
    const fields = [ino++, mode, 0, 0, 1, 0, data.length, 0, 0, 0, 0, name.length + 1, 0];
    const header = '070701' + fields.map((f) => f.toString(16).padStart(8, '0')).join('');
    const head = Buffer.from(`${header}${name}\0`, 'latin1');
    parts.push(head, pad4(head.length), Buffer.from(data), pad4(data.length));
  };
  for (const e of entries) add(e.name, e.mode, e.data ?? new Uint8Array(0));
  add('TRAILER!!!', 0, new Uint8Array(0));
  return Buffer.concat(parts);
}

// The guest's /init: load virtio-net, configure eth0 from the command line, ping the peer and
// report on the serial console, then power off (QEMU exits with the VM).
const INIT = `#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
for m in $(cat /lib/modules/order); do insmod /lib/modules/$m.ko || echo "TUNTAP-VM: insmod $m failed"; done
for kv in $(cat /proc/cmdline); do
  case "$kv" in
    tuntap.ip=*) IP="\${kv#tuntap.ip=}" ;;
    tuntap.ip6=*) IP6="\${kv#tuntap.ip6=}" ;;
    tuntap.peer=*) PEER="\${kv#tuntap.peer=}" ;;
    tuntap.peer6=*) PEER6="\${kv#tuntap.peer6=}" ;;
  esac
done
ip link set lo up
ip link set eth0 up
ip addr add "$IP" dev eth0
if [ -n "$IP6" ]; then
  echo 0 > /proc/sys/net/ipv6/conf/eth0/accept_dad
  ip -6 addr add "$IP6" dev eth0
fi
echo "TUNTAP-VM: eth0 $(cat /sys/class/net/eth0/address) up, pinging $PEER"
if ping -c 3 -W 3 -w 60 "$PEER"; then echo "TUNTAP-VM-PING-OK"; else echo "TUNTAP-VM-PING-FAILED"; fi
if [ -n "$PEER6" ]; then
  if ping -6 -c 3 -W 3 -w 60 "$PEER6"; then echo "TUNTAP-VM-PING6-OK"; else echo "TUNTAP-VM-PING6-FAILED"; fi
fi
echo "TUNTAP-VM-DONE"
poweroff -f
`;

function findModules(dir: string, out = new Map<string, string>()): Map<string, string> {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) findModules(p, out);
    else if (/\.ko(\.xz)?$/.test(e.name)) out.set(e.name.replace(/\.ko(\.xz)?$/, '').replace(/-/g, '_'), p);
  }
  return out;
}

/**
 * `wanted` modules and everything they depend on, dependencies first. The dependency list is
 * read from each module's own .modinfo ("depends=a,b"), since the unpacked package has no
 * modules.dep (depmod never ran) and the build should not need kmod.
 */
function moduleClosure(modDir: string, wanted: string[], kpkg: string): { name: string; data: Buffer }[] {
  const paths = findModules(modDir);
  const done = new Map<string, Buffer>();
  const visit = (name: string) => {
    if (done.has(name)) return;
    const path = paths.get(name);
    if (!path) return; // built into the kernel
    const data = path.endsWith('.xz') ? execFileSync('xz', ['-dc', path]) : readFileSync(path);
    const deps = /\0depends=([^\0]*)\0/.exec(data.toString('latin1'))?.[1] ?? '';
    for (const d of deps.split(',').filter(Boolean)) visit(d.replace(/-/g, '_'));
    done.set(name, data);
  };
  for (const w of wanted) {
    if (!paths.has(w) && !readFileSync(join(modDir, '..', 'modules.builtin'), 'utf8').includes(`/${w}.ko`)) {
      throw new Error(`${kpkg}: module ${w} is neither built in nor in the package`);
    }
    visit(w);
  }
  return [...done].map(([name, data]) => ({ name, data }));
}

export function buildGuest(outDir = '/var/tmp/tuntap-vm'): GuestImage {
  mkdirSync(outDir, { recursive: true });
  const kpkg = kernelPackage();
  const kroot = unpack(kpkg, outDir);
  const bbroot = unpack('busybox-static', outDir);
  const version = readdirSync(join(kroot, 'lib/modules'))[0];
  if (!version) throw new Error(`${kpkg} has no modules directory`);
  const kernel = join(kroot, 'boot', `vmlinuz-${version}`);
  const modDir = join(kroot, 'lib/modules', version, 'kernel');
  const entries: { name: string; mode: number; data?: Uint8Array }[] = [];
  for (const d of ['bin', 'dev', 'proc', 'sys', 'lib', 'lib/modules']) entries.push({ name: d, mode: 0o40755 });
  entries.push({ name: 'bin/busybox', mode: 0o100755, data: readFileSync(join(bbroot, 'bin/busybox')) });
  entries.push({ name: 'init', mode: 0o100755, data: Buffer.from(INIT) });
  const order = moduleClosure(modDir, ['virtio_pci', 'virtio_net'], kpkg);
  for (const m of order) entries.push({ name: `lib/modules/${m.name}.ko`, mode: 0o100644, data: m.data });
  entries.push({ name: 'lib/modules/order', mode: 0o100644, data: Buffer.from(order.map((m) => m.name).join('\n') + '\n') });
  const initrd = join(outDir, 'initramfs.gz');
  writeFileSync(initrd, gzipSync(cpio(entries)));
  // QEMU may run as an unprivileged user: whatever root's umask was, it must read these.
  for (const dir of [outDir, kroot, join(kroot, 'boot')]) chmodSync(dir, 0o755);
  for (const file of [kernel, initrd]) chmodSync(file, 0o644);
  return { kernel, initrd };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  console.log(JSON.stringify(buildGuest(process.argv[2])));
}
