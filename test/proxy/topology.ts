// Three namespaces for the transparent-proxy tests and bench:
//   app (runs `tuntap socks|http --route`, curl, iperf3) ── proxy (microsocks, danted, tinyproxy)
//   ── server (HTTP + TCP echo in Node, iperf3, dnsmasq).
// The proxy namespace does not forward, so the app reaches the server only through a proxy.
// addNeighbour() adds a fourth, a host that routes through the app's host (a container on it).
import { mkdtempSync, chmodSync, mkdirSync, writeFileSync, rmSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import type { ChildProcess } from 'node:child_process';
import { TestNet, nsExec, nsSpawn } from '../helpers/netns.js';

const root = new URL('../..', import.meta.url).pathname;

export const SERVER4 = '198.18.2.2';
export const SERVER6 = 'fd00:2::2';
export const PROXY4 = '198.18.1.2';
export const APP4 = '198.18.1.1';
/** The neighbour's address and the app host's on their link (addNeighbour). */
export const NEIGHBOUR4 = '198.18.4.2';
export const GATEWAY4 = '198.18.4.1';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// Holds `n` connections to the echo server; the first `busy` of them keep 16 KiB in flight each
// (write, wait for the echo, write again) until stdin closes, then all close.
const HOLD_SCRIPT = `
const net = require('node:net');
const [n, busy, host] = [Number(process.argv[1]), Number(process.argv[2]), process.argv[3]];
const chunk = Buffer.alloc(16384, 0x61);
const socks = [];
let open = 0, stopping = false;
for (let i = 0; i < n; i++) {
  const s = net.connect({ host, port: 7000 });
  socks.push(s);
  s.on('connect', () => {
    if (++open === n) { console.log('open ' + open); for (let j = 0; j < busy; j++) socks[j].write(chunk); }
  });
  let back = 0;
  s.on('data', (d) => { back += d.length; if (back >= chunk.length) { back -= chunk.length; if (!stopping) s.write(chunk); } });
  s.on('error', () => {});
}
process.stdin.on('end', () => { stopping = true; for (const s of socks) s.destroy(); setTimeout(() => process.exit(0), 200); });
process.stdin.resume();
`;

/** Connections held open from the app namespace by a child process (ProxyTopology.holdConnections). */
export interface HeldConnections {
  readonly child: ChildProcess;
  /** Closes every connection (the holder then exits). */
  close(): void;
  /** Ends the holder at once if it still runs (for cleanup after a failure). */
  kill(): void;
}

/** Resident and peak resident bytes of process `pid` (VmRSS, VmHWM). */
export function memoryOf(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0) * 1024;
  return { rss: kib('VmRSS'), peak: kib('VmHWM') };
}

/**
 * Resident bytes of process `pid`'s glibc thread arenas (the heaps threads other than the main
 * one malloc from): each a read-write mapping at a 64 MiB boundary followed by the unused rest
 * of its 64 MiB reservation, inaccessible.
 */
export function threadArenasResident(pid: number): number {
  const HEAP_MAX = 64 * 2 ** 20;
  const maps: { start: number; end: number; perms: string; anonymous: boolean; rss: number }[] = [];
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (m) maps.push({ start: parseInt(m[1]!, 16), end: parseInt(m[2]!, 16), perms: m[3]!, anonymous: m[4]!.trim() === '', rss: 0 });
    else if (line.startsWith('Rss:') && maps.length > 0) maps[maps.length - 1]!.rss = Number(/(\d+)/.exec(line)![1]) * 1024;
  }
  let total = 0;
  maps.forEach((r, i) => {
    const rest = maps[i + 1];
    if (r.anonymous && r.perms.startsWith('rw') && r.start % HEAP_MAX === 0 && rest && rest.start === r.end
      && rest.perms.startsWith('---') && rest.end === r.start + HEAP_MAX) total += r.rss;
  });
  return total;
}

/** Restarts process `pid`'s peak (VmHWM) at its current RSS. */
export function resetPeak(pid: number): void {
  writeFileSync(`/proc/${pid}/clear_refs`, '5');
}

/** Waits until `ns` has a TCP (or UDP) listener on `port`. */
export async function waitListening(ns: string, port: number, udp = false, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const out = nsExec(ns, 'ss', udp ? '-lunH' : '-ltnH', `sport = :${port}`);
    if (out.trim()) return;
    await sleep(50);
  }
  throw new Error(`nothing listens on port ${port} in ${ns}`);
}

// A tiny server: HTTP on 8080 (GET /bytes/N returns N bytes) and a TCP echo on 7000, dual-stack.
const serverScript = `
const http = require('node:http'), net = require('node:net');
http.createServer((req, res) => {
  const m = /^\\/bytes\\/(\\d+)/.exec(req.url);
  if (m) { res.writeHead(200, {'content-type': 'application/octet-stream'}); res.end(Buffer.alloc(Number(m[1]), 120)); return; }
  res.end('hello from ' + req.socket.localAddress + ' to ' + req.socket.remoteAddress + ' host ' + req.headers.host + '\\n');
}).listen(8080, '::');
net.createServer({ allowHalfOpen: true }, (s) => { s.pipe(s); s.on('error', () => {}); }).listen({ port: 7000, host: '::', backlog: 4096 });
`;

export interface ProxyProcess {
  child: ChildProcess;
  stdout: string[];
  stderr: () => string;
  /** The newest stats line. */
  stats(): Record<string, number>;
  /** Resolves once a stats line satisfies `pred`. */
  waitStats(pred: (s: Record<string, number>) => boolean, timeoutMs?: number): Promise<Record<string, number>>;
  /** SIGTERM and wait for the exit code. */
  stop(): Promise<number | null>;
}

export class ProxyTopology {
  readonly net = new TestNet();
  readonly app: string;
  readonly proxy: string;
  readonly server: string;
  readonly dir: string;
  /** The server's end of the proxy–server link (tests add addresses to it). */
  readonly serverLink: string;
  private readonly etcDirs: string[] = [];
  /** Servers that fork (dante): stopped with SIGTERM so their children go too. */
  private readonly graceful: ChildProcess[] = [];

  constructor(opts: { mtu?: number } = {}) {
    this.app = this.net.namespace('pxa');
    this.proxy = this.net.namespace('pxp');
    this.server = this.net.namespace('pxs');
    const ap = this.net.veth(this.app, this.proxy, opts);
    const ps = this.net.veth(this.proxy, this.server, opts);
    nsExec(this.app, 'ip', 'addr', 'add', `${APP4}/24`, 'dev', ap.a);
    nsExec(this.app, 'ip', '-6', 'addr', 'add', 'fd00:1::1/64', 'dev', ap.a, 'nodad');
    nsExec(this.proxy, 'ip', 'addr', 'add', `${PROXY4}/24`, 'dev', ap.b);
    nsExec(this.proxy, 'ip', '-6', 'addr', 'add', 'fd00:1::2/64', 'dev', ap.b, 'nodad');
    nsExec(this.app, 'ip', 'route', 'add', 'default', 'via', PROXY4);
    nsExec(this.app, 'ip', '-6', 'route', 'add', 'default', 'via', 'fd00:1::2');
    nsExec(this.proxy, 'ip', 'addr', 'add', '198.18.2.1/24', 'dev', ps.a);
    nsExec(this.proxy, 'ip', '-6', 'addr', 'add', 'fd00:2::1/64', 'dev', ps.a, 'nodad');
    nsExec(this.server, 'ip', 'addr', 'add', `${SERVER4}/24`, 'dev', ps.b);
    nsExec(this.server, 'ip', '-6', 'addr', 'add', `${SERVER6}/64`, 'dev', ps.b, 'nodad');
    this.serverLink = ps.b;
    this.dir = mkdtempSync(join(tmpdir(), 'tuntap-proxy-'));
    chmodSync(this.dir, 0o777);
    // `ip netns exec` mounts /etc/netns/NS/resolv.conf: the proxies resolve names at dnsmasq.
    for (const ns of [this.proxy, this.app]) {
      const d = `/etc/netns/${ns}`;
      mkdirSync(d, { recursive: true });
      writeFileSync(join(d, 'resolv.conf'), `nameserver ${SERVER4}\n`);
      writeFileSync(join(d, 'hosts'), `127.0.0.1 localhost\n${PROXY4} socks.test\n`);
      this.etcDirs.push(d);
    }
  }

  async startServers(): Promise<void> {
    nsSpawn(this.server, process.execPath, ['-e', serverScript]);
    nsSpawn(this.server, 'iperf3', ['-s', '-p', '5201']);
    nsSpawn(this.server, 'dnsmasq', ['--no-daemon', '--no-resolv', '--no-hosts', `--listen-address=${SERVER4}`,
      '--bind-interfaces', '--address=/web.test/198.18.2.2', '--address=/web.test/fd00:2::2', '--log-queries',
      '--log-facility=-', '--pid-file=', '--user=root']);
    await waitListening(this.server, 8080);
    await waitListening(this.server, 7000);
    await waitListening(this.server, 5201);
    await waitListening(this.server, 53, true);
  }

  /** microsocks on 198.18.1.2:1080 (optionally with user/pass); returns its log accessor. */
  async startMicrosocks(port = 1080, auth?: { user: string; pass: string }, listen = '0.0.0.0'): Promise<{ child: ChildProcess; log: () => string }> {
    const args = ['-i', listen, '-p', String(port), ...(auth ? ['-u', auth.user, '-P', auth.pass] : [])];
    const child = nsSpawn(this.proxy, 'microsocks', args);
    let log = '';
    child.stdout!.on('data', (d) => { log += d; });
    child.stderr!.on('data', (d) => { log += d; });
    await waitListening(this.proxy, port);
    return { child, log: () => log };
  }

  /**
   * dante-server on 198.18.1.2:1081 with CONNECT and UDP ASSOCIATE, logging each connect.
   * `udp: false` refuses UDP ASSOCIATE; `udpConnectDst: false` relays UDP answers from any
   * address, not only the one a client sent to (as many SOCKS5 servers do).
   */
  async startDante(port = 1081, opts: { udp?: boolean; udpConnectDst?: boolean } = {}): Promise<{ child: ChildProcess; log: () => string }> {
    const logFile = join(this.dir, `danted-${port}.log`);
    const external = nsExec(this.proxy, 'ip', '-o', 'addr', 'show', 'to', '198.18.2.0/24').split(/\s+/)[1]!;
    const conf = join(this.dir, `danted-${port}.conf`);
    writeFileSync(conf, `logoutput: ${logFile}
internal: 0.0.0.0 port = ${port}
external: ${external}
socksmethod: none
clientmethod: none
user.privileged: root
user.unprivileged: nobody
timeout.negotiate: 30
timeout.io: 0
${opts.udpConnectDst === false ? 'udp.connectdst: no\n' : ''}client pass {
  from: 0/0 to: 0/0
  log: error
}
socks pass {
  from: 0/0 to: 0/0
  command: ${opts.udp === false ? 'connect' : 'connect udpassociate bindreply udpreply'}
  log: connect error
}
`);
    writeFileSync(logFile, '');
    chmodSync(logFile, 0o666);
    const child = nsSpawn(this.proxy, 'danted', ['-f', conf, '-N', '1']);
    this.graceful.push(child);
    await waitListening(this.proxy, port);
    return { child, log: () => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : '') };
  }

  /** tinyproxy on 198.18.1.2:3128 with Basic auth user/pass. */
  async startTinyproxy(port = 3128, auth = { user: 'web', pass: 'secret' }): Promise<{ child: ChildProcess; log: () => string }> {
    const logFile = join(this.dir, `tinyproxy-${port}.log`);
    const conf = join(this.dir, `tinyproxy-${port}.conf`);
    writeFileSync(conf, `User nobody
Group nogroup
Port ${port}
Listen ${PROXY4}
Timeout 600
LogFile "${logFile}"
LogLevel Connect
MaxClients 200
Allow 198.18.0.0/15
BasicAuth ${auth.user} ${auth.pass}
DisableViaHeader Yes
`);
    writeFileSync(logFile, '');
    chmodSync(logFile, 0o666);
    const child = nsSpawn(this.proxy, 'tinyproxy', ['-d', '-c', conf]);
    await waitListening(this.proxy, port);
    return { child, log: () => readFileSync(logFile, 'utf8') };
  }

  /**
   * Runs `tuntap <command> ...args --json` in the app namespace and waits for it to be ready.
   * `wrapper` runs it through a command that execs it (e.g. prlimit), `env` adds variables.
   */
  async startTuntap(command: 'socks' | 'http', args: string[],
    opts: { wrapper?: string[]; env?: Record<string, string> } = {}): Promise<ProxyProcess> {
    // TUNTAP_PROXY_CLI runs a compiled CLI (e.g. dist/src/cli/main.js) instead of the sources via tsx.
    const entry = process.env.TUNTAP_PROXY_CLI ? [process.env.TUNTAP_PROXY_CLI] : ['--import', 'tsx', join(root, 'src/cli/main.ts')];
    const argv = [process.execPath, ...entry, command, ...args, '--json', '--interval', '1'];
    const [cmd, ...rest] = [...(opts.wrapper ?? []), ...argv];
    const child = nsSpawn(this.app, cmd!, rest,
      { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], ...(opts.env ? { env: { ...process.env, ...opts.env } } : {}) });
    const stdout: string[] = [];
    let stderr = '';
    let latest: Record<string, number> = {};
    const waiters = new Set<() => void>();
    let buf = '';
    child.stdout!.on('data', (d: Buffer) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        stdout.push(line);
        try {
          const j = JSON.parse(line) as Record<string, number> & { event?: string };
          if (j.event === 'stats') latest = j;
        } catch { /* not JSON */ }
        for (const w of waiters) w();
      }
    });
    child.stderr!.on('data', (d) => { stderr += d; });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => { for (const w of waiters) w(); resolve(code); }));
    const until = (pred: () => boolean, timeoutMs: number, what: string): Promise<void> => new Promise((resolve, reject) => {
      const check = (): void => {
        if (pred()) { done(); resolve(); } else if (child.exitCode !== null) { done(); reject(new Error(`tuntap exited (${child.exitCode}) before ${what}: ${stderr}`)); }
      };
      const timer = setTimeout(() => { done(); reject(new Error(`timed out waiting for ${what}; stderr: ${stderr}; last stats ${JSON.stringify(latest)}`)); }, timeoutMs);
      const done = (): void => { clearTimeout(timer); waiters.delete(check); };
      waiters.add(check);
      check();
    });
    await until(() => stdout.some((l) => l.includes('"event":"ready"')), 20_000, 'ready');
    return {
      child, stdout, stderr: () => stderr,
      stats: () => latest,
      waitStats: async (pred, timeoutMs = 15_000) => {
        await until(() => latest.event !== undefined && pred(latest), timeoutMs, 'stats condition');
        return latest;
      },
      stop: async () => {
        if (child.exitCode === null) child.kill('SIGTERM');
        return exited;
      },
    };
  }

  /** Runs `tuntap` as startTuntap does, gives it to `body`, and checks that it then exits cleanly. */
  async withTuntap<T>(command: 'socks' | 'http', args: string[], body: (p: ProxyProcess) => Promise<T>,
    opts: { wrapper?: string[]; env?: Record<string, string> } = {}): Promise<T> {
    const p = await this.startTuntap(command, args, opts);
    try {
      return await body(p);
    } finally {
      const code = await p.stop();
      if (code !== 0) throw new Error(`tuntap exited with ${code}: ${p.stderr()}`);
    }
  }

  /**
   * Opens `n` TCP connections from the app namespace to the server's echo port (through the
   * proxy when its routes are in place), the first `busy` of them kept busy; resolves once all
   * are open.
   */
  async holdConnections(n: number, busy = 0, timeoutMs = 60_000): Promise<HeldConnections> {
    const child = nsSpawn(this.app, process.execPath, ['-e', HOLD_SCRIPT, String(n), String(busy), SERVER4],
      { stdio: ['pipe', 'pipe', 'inherit'] });
    const kill = (): void => { if (child.exitCode === null && child.signalCode === null) child.kill(); };
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${n} connections were not all open after ${timeoutMs} ms`)), timeoutMs);
        child.stdout!.on('data', (d) => { if (String(d).includes('open')) { clearTimeout(timer); resolve(); } });
        child.once('exit', (c) => { clearTimeout(timer); reject(new Error(`the connection holder exited (${c}) before its ${n} connections were open`)); });
      });
    } catch (e) {
      kill();
      throw e;
    }
    return { child, close: () => child.stdin!.end(), kill };
  }

  /**
   * A fourth namespace whose default route leads through the app's host (198.18.4.2 → .1), and
   * that host forwarding (ip_forward=1), as a container or a LAN neighbour would use it.
   */
  addNeighbour(): { ns: string; link: string; appLink: string } {
    const ns = this.net.namespace('pxn');
    const l = this.net.veth(this.app, ns);
    nsExec(this.app, 'ip', 'addr', 'add', `${GATEWAY4}/24`, 'dev', l.a);
    nsExec(ns, 'ip', 'addr', 'add', `${NEIGHBOUR4}/24`, 'dev', l.b);
    nsExec(ns, 'ip', 'route', 'add', 'default', 'via', GATEWAY4);
    nsExec(this.app, 'sysctl', '-qw', 'net.ipv4.ip_forward=1');
    return { ns, link: l.b, appLink: l.a };
  }

  async cleanup(): Promise<void> {
    await Promise.all(this.graceful.map((c) => new Promise<void>((resolve) => {
      if (c.exitCode !== null || c.signalCode !== null) { resolve(); return; }
      const timer = setTimeout(resolve, 3000);
      c.once('exit', () => { clearTimeout(timer); resolve(); });
      c.kill('SIGTERM');
    })));
    this.net.cleanup();
    for (const d of this.etcDirs) rmSync(d, { recursive: true, force: true });
    rmSync(this.dir, { recursive: true, force: true });
  }
}
