// Running code as an unprivileged user the way a freshly booted host allows it: /dev/net/tun
// may still be mode 0600 (udev makes it 0666 later, or never), and the checkout may be readable
// by root only (a mktemp -d clone, a home directory of mode 0700).
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));

/**
 * An argv prefix that runs the rest in a private mount namespace whose /dev/net is a tmpfs with
 * its own node of the TUN device (char 10:200) of `mode`. Nothing on the host changes, and the
 * driver's owner/group check on TUNSETIFF still decides who may attach to a device.
 */
export function withTunNode(mode: number): string[] {
  const script = 'mount -t tmpfs -o mode=0755,size=16k tuntap-test /dev/net && ' +
    `mknod -m ${mode.toString(8).padStart(4, '0')} /dev/net/tun c 10 200 && exec "$@"`;
  return ['unshare', '--mount', '--propagation', 'private', '--', 'sh', '-c', script, 'sh'];
}

/**
 * The argv that runs `command` as uid:gid (no capabilities, no supplementary groups) with an
 * openable /dev/net/tun; prefix it with `ip netns exec NS` or pass it to nsRun/nsSpawn.
 */
export function asUser(uid: number, gid: number, command: string[]): string[] {
  return [...withTunNode(0o666), 'setpriv', `--reuid=${uid}`, `--regid=${gid}`, '--clear-groups', '--', ...command];
}

/**
 * An argv prefix that runs the rest with `dir` in place of /var/run/wireguard (a bind mount in a
 * private mount namespace): interfaces of other tests running meanwhile, whose UAPI sockets come
 * and go there, stay out of what a test lists.
 */
export function withUapiDir(dir: string): string[] {
  return ['unshare', '--mount', '--propagation', 'private', '--', 'sh', '-c',
    'mkdir -p /var/run/wireguard && mount --bind "$0" /var/run/wireguard && exec "$@"', dir];
}

/** A new directory every user may read (and nobody else may write); the caller removes it. */
export function readableDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  chmodSync(dir, 0o755);
  return dir;
}

/** The built native addon of this checkout. */
export function addonPath(): string {
  for (const kind of ['Release', 'Debug']) {
    const p = join(root, 'build', kind, 'tuntap.node');
    if (existsSync(p)) return p;
  }
  throw new Error('the addon is not built (npm run build:native)');
}

function newestSource(dir: string): number {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    newest = Math.max(newest, e.isDirectory() ? newestSource(p) : e.name.endsWith('.ts') ? statSync(p).mtimeMs : 0);
  }
  return newest;
}

/** dist/src/cli/main.js as users run it, compiled first when a source is newer than it. */
export function builtCli(): string {
  const main = join(root, 'dist/src/cli/main.js');
  if (!existsSync(main) || statSync(main).mtimeMs < newestSource(join(root, 'src'))) {
    execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(root, 'tsconfig.build.json')], { stdio: 'inherit' });
  }
  return main;
}

/**
 * A copy of the built package (dist/src, the addon, package.json) every user can read, for a
 * CLI run as another user; returns its main.js and a function that removes the copy.
 */
export function stageBuiltCli(): { main: string; remove(): void } {
  builtCli();
  const dir = readableDir('tuntap-cli-');
  cpSync(join(root, 'dist/src'), join(dir, 'dist/src'), { recursive: true });
  cpSync(join(root, 'package.json'), join(dir, 'package.json'));
  // The runtime dependencies the built code imports (@noble/*), as an install would place them.
  const { dependencies = {} } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> };
  for (const name of Object.keys(dependencies)) {
    cpSync(join(root, 'node_modules', name), join(dir, 'node_modules', name), { recursive: true });
  }
  mkdirSync(join(dir, 'build/Release'), { recursive: true });
  copyFileSync(addonPath(), join(dir, 'build/Release/tuntap.node'));
  execFileSync('chmod', ['-R', 'a+rX', dir]);  // whatever root's umask was
  return { main: join(dir, 'dist/src/cli/main.js'), remove: () => rmSync(dir, { recursive: true, force: true }) };
}
