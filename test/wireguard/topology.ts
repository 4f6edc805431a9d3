// Two namespaces over a veth with a WireGuard interface on each side: ours (tuntap) or Debian's
// wireguard-go configured with `wg` and `ip` (the independent peer). Outer addresses come from
// 198.18.0.0/15 and fd00::/8; tunnel addresses from 198.19.0.0/16 and fd01::/64.
import { existsSync, mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestNet, nsSpawn, nsRun, uniqueName } from '../helpers/netns.js';
import { WireGuardInterface } from '../../src/wireguard/interface.js';
import { generatePrivateKey, publicKey, keyToBase64 } from '../../src/wireguard/crypto.js';
import { configureInterface } from '../../src/netlink/index.js';
import type { Timers } from '../../src/wireguard/constants.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export { sleep, waitFor } from '../helpers/wait.js';
import { sleep, waitFor } from '../helpers/wait.js';

export interface Side {
  ns: string;
  name: string;
  privateKey: Buffer;
  publicKey: Buffer;
  outer4: string;
  outer6: string;
  inner4: string;
  inner6: string;
  port: number;
  wg?: WireGuardInterface;
  proc?: ChildProcess;
}

// UAPI sockets and pid files of the interfaces made here. A run cut short (Ctrl-C on a bench, a
// dying test process) SIGKILLs the daemons, which then cannot remove their own files.
const uapiNames = new Set<string>();
process.on('exit', () => {
  for (const name of uapiNames) {
    for (const f of [`${name}.sock`, `${name}.tuntap.pid`]) rmSync(`/var/run/wireguard/${f}`, { force: true });
  }
});

export class WgTopology {
  readonly net = new TestNet();
  readonly dir = mkdtempSync(join(tmpdir(), 'wgtopo-'));
  readonly sides: Side[] = [];
  veth!: { a: string; b: string };

  /** Two namespaces joined by a veth, outer addresses v4+v6 on both ends. */
  constructor(readonly idx = 1) {}

  side(i: number): Side {
    const ns = this.net.namespace('wg');
    const priv = generatePrivateKey();
    const s: Side = {
      ns, name: uniqueName(`wgt${i}`), privateKey: priv, publicKey: publicKey(priv),
      outer4: `198.18.${this.idx}.${i}`, outer6: `fd00:${this.idx}::${i}`,
      inner4: `198.19.${this.idx}.${i}`, inner6: `fd01:${this.idx}::${i}`, port: 51820 + i,
    };
    this.sides.push(s);
    uapiNames.add(s.name);
    return s;
  }

  link(a: Side, b: Side): void {
    this.veth = this.net.veth(a.ns, b.ns);
    this.net.configure(a.ns, this.veth.a, { addresses: [`${a.outer4}/24`, { address: `${a.outer6}/64`, nodad: true }] });
    this.net.configure(b.ns, this.veth.b, { addresses: [`${b.outer4}/24`, { address: `${b.outer6}/64`, nodad: true }] });
  }

  /** Our interface on `s`, peered with `peers` (endpoint over v4 or v6 outer addresses, or none). */
  async tuntap(s: Side, peers: Array<{ side: Side; endpoint?: 4 | 6; allowed?: string[]; keepalive?: number; psk?: Buffer }>,
    timers?: Partial<Timers>, opts: { offload?: boolean } = {}): Promise<WireGuardInterface> {
    s.wg = await WireGuardInterface.open({
      name: s.name, netns: s.ns, privateKey: s.privateKey, listenPort: s.port, timers, offload: opts.offload,
      peers: peers.map((p) => ({
        publicKey: p.side.publicKey,
        presharedKey: p.psk,
        endpoint: p.endpoint ? { address: p.endpoint === 4 ? p.side.outer4 : p.side.outer6, port: p.side.port } : undefined,
        allowedIps: p.allowed ?? [`${p.side.inner4}/32`, `${p.side.inner6}/128`],
        persistentKeepalive: p.keepalive,
      })),
    });
    configureInterface(s.name, { mtu: 1420, addresses: [`${s.inner4}/24`, `${s.inner6}/64`], up: true }, { netns: s.ns });
    return s.wg;
  }

  /** Our interface on `s` in its own process (`tuntap wg up FILE`), as on a separate host. */
  async tuntapProcess(s: Side, peers: Array<{ side: Side; endpoint?: 4 | 6; allowed?: string[] }>, opts: { compiled?: boolean } = {}): Promise<void> {
    const conf = join(this.dir, `${s.name}.conf`);
    const lines = ['[Interface]', `PrivateKey = ${keyToBase64(s.privateKey)}`, `ListenPort = ${s.port}`,
      `Address = ${s.inner4}/24, ${s.inner6}/64`, 'Table = off'];
    for (const p of peers) {
      lines.push('', '[Peer]', `PublicKey = ${keyToBase64(p.side.publicKey)}`,
        `AllowedIPs = ${(p.allowed ?? [`${p.side.inner4}/32`, `${p.side.inner6}/128`]).join(', ')}`);
      if (p.endpoint) lines.push(`Endpoint = ${p.endpoint === 4 ? p.side.outer4 : `[${p.side.outer6}]`}:${p.side.port}`);
    }
    writeFileSync(conf, `${lines.join('\n')}\n`, { mode: 0o600 });
    // `compiled`: the built CLI (dist/), as users run it; otherwise the sources through tsx,
    // whose loader adds a thread and a second heap to the process.
    const main = fileURLToPath(new URL(opts.compiled ? '../../dist/src/cli/main.js' : '../../src/cli/main.ts', import.meta.url));
    const child = spawn(process.execPath, [...(opts.compiled ? [] : ['--import', 'tsx']), main, 'wg', 'up', conf, '--netns', s.ns],
      { stdio: ['ignore', 'ignore', 'pipe'] });
    s.proc = child;
    let err = '';
    child.stderr!.on('data', (d) => { err += d; });
    await waitFor(`tuntap wg up ${s.name}`, () => {
      if (child.exitCode !== null) throw new Error(`tuntap wg up exited: ${err}`);
      return err.includes(' is up');
    }, 20_000);
  }

  /** Debian's wireguard-go on `s`, configured with wg setconf and ip. */
  async wireguardGo(s: Side, peers: Array<{ side: Side; endpoint?: 4 | 6; allowed?: string[]; psk?: Buffer }>): Promise<void> {
    s.proc = nsSpawn(s.ns, 'wireguard-go', ['-f', s.name], { env: { ...process.env, WG_PROCESS_FOREGROUND: '1', LOG_LEVEL: 'error' } });
    await waitFor(`wireguard-go ${s.name}`, () => existsSync(`/var/run/wireguard/${s.name}.sock`));
    const conf = join(this.dir, `${s.name}.conf`);
    const lines = [`[Interface]`, `PrivateKey = ${keyToBase64(s.privateKey)}`, `ListenPort = ${s.port}`];
    for (const p of peers) {
      lines.push('', '[Peer]', `PublicKey = ${keyToBase64(p.side.publicKey)}`,
        `AllowedIPs = ${(p.allowed ?? [`${p.side.inner4}/32`, `${p.side.inner6}/128`]).join(', ')}`);
      if (p.endpoint) lines.push(`Endpoint = ${p.endpoint === 4 ? p.side.outer4 : `[${p.side.outer6}]`}:${p.side.port}`);
      if (p.psk) lines.push(`PresharedKey = ${keyToBase64(p.psk)}`);
    }
    writeFileSync(conf, `${lines.join('\n')}\n`, { mode: 0o600 });
    await nsRunOk(s.ns, 'wg', ['setconf', s.name, conf]);
    await nsRunOk(s.ns, 'ip', ['link', 'set', s.name, 'mtu', '1420', 'up']);
    await nsRunOk(s.ns, 'ip', ['addr', 'add', `${s.inner4}/24`, 'dev', s.name]);
    await nsRunOk(s.ns, 'ip', ['addr', 'add', `${s.inner6}/64`, 'dev', s.name, 'nodad']);
  }

  async cleanup(): Promise<void> {
    for (const s of this.sides) {
      await s.wg?.close();
      if (s.proc && s.proc.exitCode === null) {
        s.proc.kill('SIGTERM');
        await Promise.race([new Promise((r) => s.proc!.once('exit', r)), sleep(2000)]);
      }
      rmSync(`/var/run/wireguard/${s.name}.sock`, { force: true });
      rmSync(`/var/run/wireguard/${s.name}.tuntap.pid`, { force: true });
      uapiNames.delete(s.name);
    }
    this.net.cleanup();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Runs a command in a namespace without blocking the event loop (our interface lives in this process). */
export async function nsRunOk(ns: string, cmd: string, args: string[], timeoutMs = 30_000): Promise<string> {
  const r = await nsRun(ns, cmd, args, timeoutMs);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} in ${ns} failed (${r.code}): ${r.stderr}${r.stdout}`);
  return r.stdout;
}

export async function ping(ns: string, target: string, count = 3): Promise<{ ok: boolean; rttMs?: number; out: string }> {
  const args = [...(target.includes(':') ? ['-6'] : []), '-c', String(count), '-i', '0.2', '-W', '2', target];
  const r = await nsRun(ns, 'ping', args, 20_000);
  const m = /= [\d.]+\/([\d.]+)\//.exec(r.stdout);
  return { ok: r.code === 0, rttMs: m ? Number(m[1]) : undefined, out: r.stdout + r.stderr };
}

/** iperf3 from `client` to `server`'s address for `seconds`; returns bits/s received. */
export async function iperf(serverNs: string, clientNs: string, address: string, seconds: number, reverse = false): Promise<number> {
  const server = nsSpawn(serverNs, 'iperf3', ['-s', '-1', '-B', address]);
  try {
    await sleep(300);
    const args = ['-c', address, '-t', String(seconds), '-J', ...(reverse ? ['-R'] : [])];
    let out = '';
    for (let attempt = 0; attempt < 5; attempt++) {
      const r = await nsRun(clientNs, 'iperf3', args, (seconds + 20) * 1000);
      out = r.stdout;
      if (r.code === 0) break;
      await sleep(300);
    }
    const j = JSON.parse(out) as { end: { sum_received: { bits_per_second: number } } };
    return j.end.sum_received.bits_per_second;
  } finally {
    server.kill('SIGKILL');
  }
}
