// Test topology helpers: private network namespaces joined by veth pairs, addresses from
// 198.18.0.0/15 and fd00::/8 only. Everything made here is removed in `cleanup()`, which tests
// call from `after()`; an exit hook removes leftovers if a test process dies early.
import { execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { createVeth, configureInterface, type InterfaceConfig } from '../../src/netlink/index.js';

const made = new Set<string>();
const children = new Set<ChildProcess>();
let hooked = false;

function hookExit(): void {
  if (hooked) return;
  hooked = true;
  const sweep = () => {
    for (const child of children) { try { child.kill('SIGKILL'); } catch { /* already gone */ } }
    for (const ns of made) { try { execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' }); } catch { /* gone */ } }
  };
  process.on('exit', sweep);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => { sweep(); process.exit(130); });
}

let counter = 0;
/** A short unique name (network device names are limited to 15 bytes). */
export function uniqueName(prefix: string): string {
  counter++;
  return `${prefix}${(process.pid % 10000).toString(36)}${counter.toString(36)}`.slice(0, 15);
}

export function sh(cmd: string, args: string[], opts: { input?: string } = {}): string {
  return execFileSync(cmd, args, { encoding: 'utf8', input: opts.input, stdio: ['pipe', 'pipe', 'pipe'] });
}

/** Runs a command inside namespace `ns` and returns its stdout (throws on non-zero exit). */
export function nsExec(ns: string, cmd: string, ...args: string[]): string {
  return sh('ip', ['netns', 'exec', ns, cmd, ...args]);
}

/** Starts a long-running process inside `ns`; it is killed (by PID) at cleanup. */
export function nsSpawn(ns: string, cmd: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
  hookExit();
  const child = spawn('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** Runs a process in `ns` to completion, resolving with its output (never rejects; check `code`). */
export function nsRun(ns: string, cmd: string, args: string[], timeoutMs = 30_000):
  Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = nsSpawn(ns, cmd, args);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d) => { stdout += d; });
    child.stderr!.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }); });
  });
}

export class TestNet {
  readonly namespaces: string[] = [];

  /** Creates a namespace with loopback up. */
  namespace(prefix = 'tt'): string {
    hookExit();
    const ns = uniqueName(`${prefix}-`);
    sh('ip', ['netns', 'add', ns]);
    made.add(ns);
    this.namespaces.push(ns);
    configureInterface('lo', { up: true }, { netns: ns });
    return ns;
  }

  /** Joins two namespaces with a veth pair; returns the device names (a in nsA, b in nsB). */
  veth(nsA: string, nsB: string, opts: { mtu?: number } = {}): { a: string; b: string } {
    const a = uniqueName('va');
    const b = uniqueName('vb');
    // Over rtnetlink (tuntap/netlink): one request makes the pair with the peer in nsB.
    createVeth(a, b, { peerNetns: nsB, mtu: opts.mtu || undefined, up: true }, { netns: nsA });
    return { a, b };
  }

  /** Configures an interface over tuntap's rtnetlink (addresses, MTU, up, routes). */
  configure(ns: string, dev: string, config: InterfaceConfig): void {
    configureInterface(dev, config, { netns: ns });
  }

  cleanup(): void {
    for (const child of children) { try { child.kill('SIGKILL'); } catch { /* gone */ } }
    for (const ns of this.namespaces.splice(0)) {
      try { sh('ip', ['netns', 'del', ns]); } catch { /* already gone */ }
      made.delete(ns);
    }
  }
}
