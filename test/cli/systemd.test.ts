// The systemd units in systemd/, run as systemd runs a Type=notify service: the ExecStart line of
// the unit (its %i and $OPTIONS filled in, /etc paths moved into a temporary directory) with
// $NOTIFY_SOCKET naming an AF_UNIX datagram socket that a separate receiver reads, the way the
// service manager does: with SO_PASSCRED, so each notification carries the sender's pid, which
// must be the service's main pid (systemd's NotifyAccess=main), not a helper's. ExecReload's
// signal reloads, SIGTERM stops. The machine has no systemd as pid 1 to run the units for real;
// systemd-analyze verify checks them as systemd would load them.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestNet, nsExec, nsSpawn, nsRun, uniqueName } from '../helpers/netns.js';
import { waitFor } from '../helpers/wait.js';
import { builtCli } from '../helpers/user.js';
import { state } from './helpers.js';
import { ProxyTopology, PROXY4, SERVER4 } from '../proxy/topology.js';
import { generatePrivateKey, publicKey, keyToBase64 } from '../../src/wireguard/crypto.js';

const root = new URL('../..', import.meta.url).pathname;
const net = new TestNet();
const dir = mkdtempSync(join(tmpdir(), 'tuntap-systemd-'));
const started: ChildProcess[] = [];
/** WireGuard interfaces made here: a service killed before it could stop leaves its UAPI files. */
const interfaces: string[] = [];
after(async () => {
  for (const c of started) {
    if (c.exitCode !== null || c.signalCode !== null) continue;
    c.kill('SIGTERM');
    await Promise.race([new Promise((r) => c.once('exit', r)), new Promise((r) => setTimeout(r, 3000))]);
    if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  }
  for (const n of interfaces) for (const f of [`${n}.sock`, `${n}.tuntap.pid`]) rmSync(`/var/run/wireguard/${f}`, { force: true });
  net.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

// ---- the service manager's side ----

/** One notification as the manager receives it: the sender's pid (SCM_CREDENTIALS) and its text. */
interface Notification { pid: number; text: string; at: number }

// A datagram receiver with SO_PASSCRED, as systemd's notify socket is, printing one JSON line per
// datagram (so message boundaries survive) after a first line that says it is bound.
const RECEIVER = `
import json, socket, struct, sys
address = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
s.bind('\\0' + address[1:] if address.startswith('@') else address)
print(json.dumps({'bound': address}), flush=True)
while True:
    data, ancillary, _, _ = s.recvmsg(8192, socket.CMSG_SPACE(struct.calcsize('3i')))
    pid = next((struct.unpack('3i', d)[0] for level, kind, d in ancillary
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS), None)
    print(json.dumps({'pid': pid, 'text': data.decode('utf-8', 'replace')}), flush=True)
`;

class Receiver {
  readonly messages: Notification[] = [];
  private readonly listeners = new Set<(n: Notification) => void>();
  private constructor(readonly address: string, readonly child: ChildProcess) {}

  /** Binds `address` (a path, or @name: abstract, in `ns`'s network namespace). */
  static async start(address: string, ns?: string): Promise<Receiver> {
    const args = ['-c', RECEIVER, address];
    const child = ns ? nsSpawn(ns, 'python3', args) : spawn('python3', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    started.push(child);
    const r = new Receiver(address, child);
    let bound = false;
    let buf = '';
    child.stdout!.on('data', (d: Buffer) => {
      buf += d;
      for (let i; (i = buf.indexOf('\n')) >= 0;) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        const j = JSON.parse(line) as { bound?: string; pid?: number; text?: string };
        if (j.bound !== undefined) { bound = true; continue; }
        const n = { pid: j.pid!, text: j.text!, at: Date.now() };
        r.messages.push(n);
        for (const l of r.listeners) l(n);
      }
    });
    await waitFor('the notify receiver', () => {
      if (child.exitCode !== null) throw new Error(`the notify receiver exited (${child.exitCode})`);
      return bound;
    });
    return r;
  }

  /** Runs `check` the moment a notification holding `field` arrives (what the manager would act on). */
  next(field: string, check: (n: Notification) => void = () => {}, timeoutMs = 20_000): Promise<Notification> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => { this.listeners.delete(on); reject(new Error(`no ${field} within ${timeoutMs} ms: ${JSON.stringify(this.messages)}`)); }, timeoutMs);
      const on = (n: Notification): void => {
        if (!n.text.split('\n').includes(field)) return;
        this.listeners.delete(on);
        clearTimeout(timer);
        try { check(n); resolve(n); } catch (e) { reject(e); }
      };
      this.listeners.add(on);
    });
  }
}

// ---- the unit files, read as systemd reads them (the few settings they use) ----

function unitSetting(unit: string, key: string): string {
  const text = readFileSync(join(root, 'systemd', unit), 'utf8');
  const m = new RegExp(`^${key}=(.*)$`, 'm').exec(text);
  assert.ok(m, `${unit} has ${key}=`);
  return m[1]!;
}

/**
 * An Exec line as argv: %i is the instance, a bare $VAR is split on white space and ${VAR} is one
 * word (as systemd does), `tuntap` is the built CLI, /etc/wireguard and /etc/tuntap are `etc`.
 */
function execLine(unit: string, key: string, instance: string, env: Record<string, string>, etc: string): string[] {
  const line = unitSetting(unit, key).replaceAll('%i', instance);
  const words = line.split(/\s+/).flatMap((w) => {
    const bare = /^\$(\w+)$/.exec(w);
    if (bare) return (env[bare[1]!] ?? '').split(/\s+/).filter(Boolean);
    return [w.replace(/\$\{(\w+)\}/g, (_, k: string) => env[k] ?? '')];
  }).map((w) => w.replace(/^\/etc\/(wireguard|tuntap)\//, `${etc}/`));
  return words[0] === 'tuntap' ? [process.execPath, builtCli(), ...words.slice(1)] : words;
}

/** systemd's EnvironmentFile: KEY=VALUE lines. */
function environmentFile(path: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    const m = /^(\w+)=(.*)$/.exec(line.trim());
    if (m) env[m[1]!] = m[2]!;
  }
  return env;
}

/** Runs the unit's ExecStart in `ns` with NOTIFY_SOCKET, as the unit's main process. */
function execStart(ns: string, argv: string[], env: Record<string, string>): { child: ChildProcess; stderr: () => string; exited: Promise<number | null> } {
  const child = nsSpawn(ns, argv[0]!, argv.slice(1), { env: { ...process.env, ...env } });
  started.push(child);
  let err = '';
  child.stderr!.on('data', (d) => { err += d; });
  child.stdout!.resume();
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return { child, stderr: () => err, exited };
}

/** ExecReload as systemd runs it: $MAINPID is the main process. */
function execReload(unit: string, mainPid: number): void {
  const [cmd, ...args] = unitSetting(unit, 'ExecReload').replaceAll('$MAINPID', String(mainPid)).split(/\s+/);
  execFileSync(cmd!, args);
}

test('systemd-analyze verify accepts the units as they are installed', () => {
  const units = mkdtempSync(join(dir, 'units-'));
  const names = ['tuntap-wg@.service', 'tuntap-socks@.service', 'tuntap-http@.service'];
  for (const n of names) writeFileSync(join(units, n.replace('@', '@x0')), readFileSync(join(root, 'systemd', n)));
  // ExecStart names `tuntap`, which systemd looks up in its fixed search path: in a private mount
  // namespace, /usr/local/bin (where npm -g puts it) holds one for the check.
  const script = `mount -t tmpfs none /usr/local/bin && printf '#!/bin/sh\\nexec node ${builtCli()} "$@"\\n' > /usr/local/bin/tuntap ` +
    `&& chmod 755 /usr/local/bin/tuntap && cd ${units} && systemd-analyze verify ${names.map((n) => `./${n.replace('@', '@x0')}`).join(' ')} 2>&1`;
  const out = execFileSync('unshare', ['-m', 'sh', '-c', script], { encoding: 'utf8' });
  assert.equal(out, '', 'no warning either (an unknown key is only a warning)');
});

test('tuntap-wg@: READY=1 once the interface is up, RELOADING=1/READY=1 around a reload, STOPPING=1 on stop, all from the main process', async () => {
  const unit = 'tuntap-wg@.service';
  assert.equal(unitSetting(unit, 'Type'), 'notify');
  const ns = net.namespace('sdw');
  const name = uniqueName('sdw');
  interfaces.push(name);
  const etc = mkdtempSync(join(dir, 'etc-'));
  const receiver = await Receiver.start(join(etc, 'notify'));
  // The receiver reads what systemd's own client sends.
  execFileSync('systemd-notify', ['--ready', 'STATUS=probe'], { env: { ...process.env, NOTIFY_SOCKET: receiver.address } });
  await waitFor('systemd-notify\'s messages', () => receiver.messages.some((m) => m.text.includes('READY=1') && m.text.includes('STATUS=probe'))
    && receiver.messages.some((m) => m.text === 'BARRIER=1'));
  const probes = receiver.messages.length;

  const marker = join(etc, 'post-up-done');
  const keys = [1, 2].map(() => keyToBase64(publicKey(generatePrivateKey())));
  const peer = (k: 1 | 2) => `[Peer]\nPublicKey = ${keys[k - 1]}\nAllowedIPs = 198.19.${70 + k}.0/24\n`;
  const conf = join(etc, `${name}.conf`);
  const head = `[Interface]\nPrivateKey = ${keyToBase64(generatePrivateKey())}\nAddress = 198.19.70.1/24\n`;
  // READY must wait for the PostUp hook, which takes a second.
  writeFileSync(conf, `${head}PostUp = sleep 1; touch ${marker}\n${peer(1)}`, { mode: 0o600 });
  const before = state(ns);
  const argv = execLine(unit, 'ExecStart', name, {}, etc);
  assert.deepEqual(argv.slice(2), ['wg', 'up', conf]);
  const service = execStart(ns, argv, { NOTIFY_SOCKET: receiver.address });
  const mainPid = service.child.pid!;

  await receiver.next('READY=1', (n) => {
    // What the manager now starts the units ordered after this one on: it must all be there.
    assert.ok(existsSync(marker), 'PostUp had finished');
    assert.match(nsExec(ns, 'ip', '-o', 'addr', 'show', 'dev', name), /198\.19\.70\.1\/24/);
    assert.match(nsExec(ns, 'ip', 'link', 'show', name), /[<,]UP[,>]/);
    assert.match(nsExec(ns, 'ip', 'route'), /^198\.19\.71\.0\/24 dev /m);
    assert.match(n.text, new RegExp(`^STATUS=${name} is up, 1 peers`, 'm'));
  }).catch((e: Error) => { throw new Error(`${e.message}\n${service.stderr()}`); });

  // systemctl reload: a peer added.
  writeFileSync(conf, `${head}${peer(1)}${peer(2)}`, { mode: 0o600 });
  const reloading = receiver.next('RELOADING=1', (n) => assert.match(n.text, /^MONOTONIC_USEC=\d+$/m));
  const reloaded = receiver.next('READY=1', (n) => {
    assert.match(nsExec(ns, 'ip', 'route'), /^198\.19\.72\.0\/24 dev /m, 'applied before READY=1');
    assert.match(n.text, /^STATUS=.*reloaded: 1 peers added, 0 removed, 0 updated, 1 unchanged/m);
  });
  execReload(unit, mainPid);
  const [r1, r2] = await Promise.all([reloading, reloaded]);
  assert.ok(r1.at <= r2.at);

  // A reload that fails still ends in READY=1, saying so, and the service goes on as it was.
  writeFileSync(conf, `${head}[Peer]\nPublicKey = not a key\n`, { mode: 0o600 });
  const failed = receiver.next('READY=1', (n) => assert.match(n.text, /^STATUS=reload failed: .*PublicKey/m));
  execReload(unit, mainPid);
  await failed;
  assert.equal(service.child.exitCode, null);
  assert.match(nsExec(ns, 'ip', 'route'), /^198\.19\.72\.0\/24 dev /m);

  // systemctl stop: SIGTERM.
  const stopping = receiver.next('STOPPING=1');
  service.child.kill('SIGTERM');
  await stopping;
  assert.equal(await service.exited, 0, service.stderr());
  for (const m of receiver.messages.slice(probes)) {
    assert.equal(m.pid, mainPid, `"${m.text}" came from the main process, not a helper`);
  }
  assert.equal(state(ns), before, 'nothing left behind');
});

test('tuntap-socks@: a reload reads the rules file again; new connections follow it, a live one is kept (abstract NOTIFY_SOCKET)', async () => {
  const unit = 'tuntap-socks@.service';
  assert.equal(unitSetting(unit, 'Type'), 'notify');
  const topo = new ProxyTopology();
  try {
    await topo.startServers();
    await topo.startDante(1081);
    const name = uniqueName('sds');
    const etc = mkdtempSync(join(dir, 'etc-'));
    const rules = join(etc, `${name}.rules`);
    writeFileSync(rules, '# nothing yet\n');
    const envFile = join(etc, `socks-${name}.env`);
    writeFileSync(envFile, `OPTIONS=--proxy socks5://${PROXY4}:1081 --route --rules-file /etc/tuntap/${name}.rules\n`, { mode: 0o600 });
    const envPath = unitSetting(unit, 'EnvironmentFile').replaceAll('%i', name).replace('/etc/tuntap/', `${etc}/`);
    assert.equal(envPath, envFile);
    const argv = execLine(unit, 'ExecStart', name, environmentFile(envPath), etc);
    assert.deepEqual(argv.slice(2), ['socks', '--name', name, '--quiet', '--proxy', `socks5://${PROXY4}:1081`, '--route', '--rules-file', rules]);
    // An abstract socket, as systemd names it inside containers; abstract names belong to a network namespace.
    const receiver = await Receiver.start(`@tuntap-test-${randomUUID()}`, topo.app);
    const service = execStart(topo.app, argv, { NOTIFY_SOCKET: receiver.address });
    const mainPid = service.child.pid!;
    await receiver.next('READY=1', () => {
      assert.match(nsExec(topo.app, 'ip', '-o', 'addr', 'show', 'dev', name), /198\.19\.0\.1\//);
    }).catch((e: Error) => { throw new Error(`${e.message}\n${service.stderr()}`); });

    // A live connection to the echo server through the proxy.
    const live = nsSpawn(topo.app, 'socat', ['-', `TCP:${SERVER4}:7000`], { stdio: ['pipe', 'pipe', 'pipe'] });
    started.push(live);
    let echoed = '';
    live.stdout!.on('data', (d) => { echoed += d; });
    live.stdin!.write('one\n');
    await waitFor('the first echo', () => echoed.includes('one\n'));
    const connect = async () => (await nsRun(topo.app, 'socat', ['-T', '3', '-u', 'OPEN:/dev/null', `TCP:${SERVER4}:7000,connect-timeout=3`], 10_000)).code;
    assert.equal(await connect(), 0, 'connections to port 7000 are carried before the reload');

    writeFileSync(rules, `# no more new connections to the echo server\nreject cidr=${SERVER4}/32 port=7000\n`);
    const reloaded = receiver.next('READY=1', (n) => assert.match(n.text, /^STATUS=rules reloaded from .*: 1 rules$/m));
    execReload(unit, mainPid);
    await reloaded;
    assert.notEqual(await connect(), 0, 'a new connection to port 7000 is rejected');
    const web = await nsRun(topo.app, 'curl', ['-s', '-m', '5', `http://${SERVER4}:8080/`]);
    assert.match(web.stdout, /hello from/, 'other destinations still go through the proxy');
    live.stdin!.write('two\n');
    await waitFor('the live connection\'s echo after the reload', () => echoed.includes('two\n'));

    // A rules file with a bad line: the reload fails, the rules in force stay.
    writeFileSync(rules, 'reject port=70000\n');
    const failed = receiver.next('READY=1', (n) => assert.match(n.text, new RegExp(`^STATUS=reload failed: ${rules}:1: .*port must be 1\\.\\.65535`, 'm')));
    execReload(unit, mainPid);
    await failed;
    assert.notEqual(await connect(), 0, 'the reject rule is still in force');
    live.stdin!.write('three\n');
    await waitFor('the live connection\'s echo after the failed reload', () => echoed.includes('three\n'));
    live.stdin!.end();

    const stopping = receiver.next('STOPPING=1');
    service.child.kill('SIGTERM');
    await stopping;
    assert.equal(await service.exited, 0, service.stderr());
    for (const m of receiver.messages) assert.equal(m.pid, mainPid, `"${m.text}" came from the main process`);
  } finally {
    await topo.cleanup();
  }
});

test('a rules file is checked as strictly as --rule: each bad line is FILE:LINE and why, and the number of rules is bounded', async () => {
  const { parseRulesFile, MAX_RULES } = await import('../../src/proxy/rules.js');
  const { UserError } = await import('../../src/errors.js');
  const bad = (text: string, line: number, why: RegExp) => assert.throws(() => parseRulesFile(text, 'r.rules'),
    (e: Error) => e instanceof UserError && new RegExp(`^r\\.rules:${line}: `).test(e.message) && why.test(e.message), JSON.stringify(text.slice(0, 40)));
  assert.equal(parseRulesFile('# comment\n\n  direct cidr=198.18.0.0/15   # the test nets\r\nreject port=25\n', 'r.rules').length, 2);
  bad('reject port=abc\n', 1, /port must be 1\.\.65535/);
  bad('\nreject port=0x19\n', 2, /port must be 1\.\.65535/);
  bad('reject port=65536\n', 1, /port must be 1\.\.65535/);
  bad('reject domain=a\u0000b\n', 1, /not a domain name/);
  bad('direct domain=ex ample.test\n', 1, /unknown matcher|not key=value/);
  bad('reject domain=bad_name.test\n', 1, /not a domain name/);
  bad('direct cidr=198.18.0.0/33\n', 1, /prefix length/);
  bad('allow cidr=198.18.0.0/15\n', 1, /proxy, direct or reject/);
  bad('reject port=25\n'.repeat(MAX_RULES + 1), MAX_RULES + 1, /more than 10000 rules/);
  // The file is bounded before it is read into a string: 1 MiB (comments count), not a byte more.
  const { readRulesFile } = await import('../../src/proxy/rules.js');
  const dir = mkdtempSync(join(tmpdir(), 'tuntap-rules-'));
  try {
    const file = join(dir, 'big.rules');
    const comment = `#${'x'.repeat(1022)}\n`; // 1 KiB a line
    writeFileSync(file, `reject port=25\n${comment.repeat(1023)}${'#'.repeat(1024 - 15 - 1)}\n`);
    assert.equal(readRulesFile(file).length, 1, 'a file of exactly 1 MiB is read');
    writeFileSync(file, `reject port=25\n${comment.repeat(1024)}`);
    assert.throws(() => readRulesFile(file), (e: Error) => e instanceof UserError && /big\.rules: over 1048576 bytes, too large for a rules file/.test(e.message));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
