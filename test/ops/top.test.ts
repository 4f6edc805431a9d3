// `tuntap top` in a real terminal (tmux) while traffic flows through a WireGuard pair (pings),
// a `socks --route` proxy (an iperf3 run at 4 Mbit/s, direct upstream) and a bridge of two TAPs
// (pings): one screen with all three, rates and sparklines, busiest first, redrawn in place,
// `q` quits and gives the terminal back; `--once --json` gives the same figures to scripts.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { WgTopology, type Side } from '../wireguard/topology.js';
import { keyToBase64 } from '../../src/wireguard/crypto.js';
import { nsRun, nsSpawn, uniqueName } from '../helpers/netns.js';
import { builtCli, readableDir, withUapiDir } from '../helpers/user.js';
import { sleep, waitFor } from '../helpers/wait.js';
import { moveLink } from '../../src/netlink/index.js';
import { startTuntap, type Running } from './helpers.js';
import type { TopView } from '../../src/ops/top.js';

const topo = new WgTopology(42);
const uapi = readableDir('tuntap-top-uapi-');
const control = readableDir('tuntap-top-ctl-');
const tmuxSocket = join(control, 'tmux');
const env = { TUNTAP_CONTROL_DIR: control };
const procs: Running[] = [];
const traffic: ChildProcess[] = [];
let a: Side;
let b: Side;
let proxyHost: string;
let tapA: string;

const tmux = (...args: string[]) => spawnSync('tmux', ['-S', tmuxSocket, ...args], { encoding: 'utf8' });
const screen = () => tmux('capture-pane', '-p', '-t', 'top').stdout;

before(async () => {
  // WireGuard: two `tuntap wg up`, their UAPI sockets in a directory of this test's.
  a = topo.side(1);
  b = topo.side(2);
  topo.link(a, b);
  for (const [s, peer] of [[a, b], [b, a]] as const) {
    const conf = join(topo.dir, `${s.name}.conf`);
    writeFileSync(conf, ['[Interface]', `PrivateKey = ${keyToBase64(s.privateKey)}`, `ListenPort = ${s.port}`, `Address = ${s.inner4}/24`,
      'Table = off', '', '[Peer]', `PublicKey = ${keyToBase64(peer.publicKey)}`, `AllowedIPs = ${peer.inner4}/32`,
      `Endpoint = ${peer.outer4}:${peer.port}`, ''].join('\n'), { mode: 0o600 });
    procs.push(await startTuntap(s.ns, ['wg', 'up', conf], { ready: `${s.name} is up`, prefix: withUapiDir(uapi), env }));
  }
  traffic.push(nsSpawn(a.ns, 'ping', ['-i', '0.2', '-s', '1000', b.inner4]));

  // The proxy: a host whose default route leads to a server; `socks --route` carries its
  // iperf3 through the TUN to a direct upstream connection.
  proxyHost = topo.net.namespace('tpp');
  const server = topo.net.namespace('tps');
  const link = topo.net.veth(proxyHost, server);
  // .1 is the direct upstream's source (kept off the TUN by --route's rule); the application
  // sends from .3, so its traffic enters the TUN.
  topo.net.configure(proxyHost, link.a, { addresses: ['198.18.71.1/24', '198.18.71.3/24'], routes: [{ dst: 'default', gateway: '198.18.71.2' }] });
  topo.net.configure(server, link.b, { addresses: ['198.18.71.2/24'] });
  // The server's address is off the link: only the default route, which --route takes over, leads there.
  topo.net.configure(server, 'lo', { addresses: ['198.18.73.1/32'] });
  nsSpawn(server, 'iperf3', ['-s', '-p', '5201']);
  await waitFor('iperf3', () => spawnSync('ip', ['netns', 'exec', server, 'ss', '-ltnH', 'sport = :5201'], { encoding: 'utf8' }).stdout.trim() !== '');
  procs.push(await startTuntap(proxyHost, ['socks', '--proxy', 'direct', '--route', '--no-ipv6', '--json', '--name', uniqueName('tpx')],
    { ready: '"event":"ready"', stream: 'stdout', env }));
  traffic.push(nsSpawn(proxyHost, 'iperf3', ['-c', '198.18.73.1', '-p', '5201', '-B', '198.18.71.3', '-t', '120', '-b', '4M']));

  // The bridge: two TAPs moved into two hosts that ping each other.
  const sw = topo.net.namespace('tpw');
  tapA = uniqueName('tpa');
  const tapB = uniqueName('tpb');
  procs.push(await startTuntap(sw, ['bridge', tapA, tapB], { ready: 'bridging', env }));
  const hosts = [topo.net.namespace('tph'), topo.net.namespace('tph')];
  moveLink(tapA, hosts[0]!, { netns: sw });
  moveLink(tapB, hosts[1]!, { netns: sw });
  topo.net.configure(hosts[0]!, tapA, { up: true, addresses: ['198.18.72.1/24'] });
  topo.net.configure(hosts[1]!, tapB, { up: true, addresses: ['198.18.72.2/24'] });
  traffic.push(nsSpawn(hosts[0]!, 'ping', ['-i', '0.05', '-s', '1200', '198.18.72.2']));
  await sleep(3000);
});

after(async () => {
  tmux('kill-server');
  for (const c of traffic) c.kill('SIGKILL');
  for (const p of procs) assert.equal(await p.stop(), 0, p.stderr());
  await topo.cleanup();
  rmSync(uapi, { recursive: true, force: true });
  rmSync(control, { recursive: true, force: true });
});

/** The rate text of a screen line ("1.2Mb/s") in bytes a second. */
function rateOf(text: string): number {
  const m = /^([\d.]+)(b|Kb|Mb|Gb)\/s$/.exec(text);
  assert.ok(m, `not a rate: ${text}`);
  return (Number(m[1]) * { b: 1, Kb: 1e3, Mb: 1e6, Gb: 1e9 }[m[2] as 'b']) / 8;
}

/** in and out of a screen line (the two rate columns before the sparkline). */
function rates(line: string): { in: number; out: number } {
  const m = /\s(\S+b\/s)\s+(\S+b\/s) (.*)$/.exec(line);
  assert.ok(m, `no rates in: ${line}`);
  return { in: rateOf(m[1]!), out: rateOf(m[2]!) };
}

test('one screen in tmux: every process, rates and sparklines, busiest first, redrawn in place, q quits', async () => {
  const cmd = [...withUapiDir(uapi), 'env', `TUNTAP_CONTROL_DIR=${control}`, process.execPath, builtCli(), 'top', '--interval', '0.5']
    .map((s) => `'${s.replace(/'/g, "'\\''")}'`).join(' ');
  const started = tmux('new-session', '-d', '-s', 'top', '-x', '120', '-y', '40', `${cmd}; echo top-exited-$?; sleep 60`);
  assert.equal(started.status, 0, started.stderr);
  await waitFor('the proxy session on the screen', () => /→ 198\.18\.73\.1:5201 open/.test(screen()), 15_000);
  await sleep(4000); // a few seconds of sparkline
  const first = screen();
  const lines = first.split('\n');
  assert.equal(lines.filter((l) => l.startsWith('tuntap top')).length, 1, first);
  assert.match(lines[0]!, /^tuntap top {2}\d\d:\d\d:\d\d {2}2 wireguard, 1 proxy, 1 bridge {2}q quits/, first);
  const group = (re: RegExp) => {
    const i = lines.findIndex((l) => re.test(l));
    assert.ok(i >= 0, `${re} on the screen:\n${first}`);
    return i;
  };
  const wgA = group(new RegExp(`^${a.name} {2}wireguard, port ${a.port}, 1 peer`));
  // iperf3 makes two connections: its control connection (quiet) and the data.
  const proxy = group(/^tpx\w+ {2}socks via direct, pid \d+, 2 tcp \+ 0 udp, 0 failed/);
  const bridge = group(new RegExp(`^${tapA} {2}bridge, pid \\d+, 2 ports, 2 MACs`));
  // The peer's row under its interface: the pings, both ways, with a sparkline.
  const peer = lines[wgA + 1]!;
  assert.match(peer, new RegExp(`^  ${keyToBase64(b.publicKey).slice(0, 8).replace(/[+/]/g, '\\$&')}… ${b.outer4}:${b.port} hs \\d+s ago`));
  assert.ok(rates(peer).in > 1000 && rates(peer).out > 1000, peer);
  // A sparkline of 20 characters for the minute, so 3 s each: filled from the right.
  assert.match(peer.slice(-20), /^ *[▁▂▃▄▅▆▇█]{2,}$/, peer);
  // The proxy's busiest session: iperf3's 4 Mbit/s up (out).
  const session = lines[proxy + 1]!;
  assert.match(session, /^ {2}198\.18\.71\.3:\d+ → 198\.18\.73\.1:5201 open/);
  const up = rates(session).out;
  assert.ok(up > 350_000 && up < 700_000, `the session's rate out: ${up} B/s\n${first}`);
  assert.match(lines[bridge + 1]!, new RegExp(`^  (${tapA}|tpb\\w+) {2}\\d+/\\d+ frames, 0 dropped`));
  // Groups busiest first.
  const order = lines.filter((l) => /^\S/.test(l) && !l.startsWith('tuntap top')).map((l) => rates(l).in + rates(l).out);
  assert.equal(order.length, 4);
  assert.deepEqual(order, [...order].sort((x, y) => y - x), first);

  // Redrawn in place: a later screen has the same shape and a later time.
  await sleep(1500);
  const second = screen();
  assert.notEqual(second.split('\n')[0], lines[0]);
  assert.equal(second.split('\n').filter((l) => l.startsWith('tuntap top')).length, 1);
  assert.equal(second.split('\n').length, lines.length);

  tmux('send-keys', '-t', 'top', 'q');
  await waitFor('top to quit', () => screen().includes('top-exited-0'), 5000);
  assert.doesNotMatch(screen(), /tuntap top/, 'the terminal\'s own screen is back');
});

test('--once --json: the same figures for scripts', async () => {
  const r = await nsRun(proxyHost, withUapiDir(uapi)[0]!, [...withUapiDir(uapi).slice(1), 'env', `TUNTAP_CONTROL_DIR=${control}`,
    process.execPath, builtCli(), 'top', '--once', '--json', '--interval', '1'], 30_000);
  assert.equal(r.code, 0, r.stderr);
  const view = JSON.parse(r.stdout) as TopView;
  assert.deepEqual(view.groups.map((g) => g.kind).sort(), ['bridge', 'proxy', 'wireguard', 'wireguard']);
  assert.deepEqual(view.errors, []);
  const proxy = view.groups.find((g) => g.kind === 'proxy')!;
  assert.equal(proxy.rows.length, 2);
  assert.ok(proxy.rows.every((r) => r.details.destination === '198.18.73.1:5201'));
  assert.ok(proxy.rows[0]!.outRate > 350_000 && proxy.rows[0]!.outRate < 700_000, JSON.stringify(proxy.rows[0]));
  const wg = view.groups.find((g) => g.kind === 'wireguard' && g.name === a.name)!;
  assert.equal(wg.rows[0]!.details.endpoint, `${b.outer4}:${b.port}`);
  assert.ok(wg.rows[0]!.inBytes > 0 && wg.rows[0]!.inRate > 0);
  assert.ok(view.groups.every((g, i) => i === 0 || g.inRate + g.outRate <= view.groups[i - 1]!.inRate + view.groups[i - 1]!.outRate));
});
