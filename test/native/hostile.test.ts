// Every native entry point, called with hostile arguments (wrong types, negative, fractional,
// huge and wrapping numbers, mismatched arrays, detached and shrunk buffers, closed handles,
// callbacks and getters that close or detach what the call is using), must answer with a clean
// JS exception (TypeError, RangeError, or an Error carrying errno) and never touch memory it does
// not own. Under `npm run test:asan` (AddressSanitizer + UBSan) any stray access aborts the run.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { TestNet } from '../helpers/netns.js';
import { sleep, waitFor } from '../helpers/wait.js';
import { sendUdp } from '../device/util.js';
import { addon } from '../../src/native.js';
import { inNetns } from '../../src/netns.js';
import { configureInterface } from '../../src/netlink/index.js';
import { encodeEndpoint } from '../../src/net/endpoint.js';

const net = new TestNet();
after(() => net.cleanup());

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/* eslint-disable @typescript-eslint/no-explicit-any */
type Fn = (...args: any[]) => any;
const N = addon as Record<string, any>;
const NL = N.netlink as Record<string, any>;
const BEST_CHACHA = N.aeadChaCha() as string;
const BEST_POLY = N.aeadPoly() as string;

const IFF_TUN = 0x0001;
const IFF_NO_PI = 0x1000;
const IFF_PI_TUN = IFF_TUN; // with the 4-byte packet information header
const EBADF = 9;
const EFAULT = 14;

// ---- what counts as a clean answer ----

const GETTER_THREW = 'a getter threw';

function isClean(e: unknown): boolean {
  if (e instanceof TypeError || e instanceof RangeError) return true;
  if (e instanceof Error && typeof (e as { errno?: unknown }).errno === 'number') return true;
  if (e instanceof Error && (e as { pcap?: unknown }).pcap === true) return true;  // libpcap refused the expression
  return e instanceof Error && e.message === GETTER_THREW;
}

function clean(what: string, fn: () => unknown): unknown {
  try {
    return fn();
  } catch (e) {
    assert.ok(isClean(e), `${what}: not a clean exception: ${String(e)}`);
    return undefined;
  }
}

function throwsErrno(fn: () => unknown, errno: number, what: string): void {
  assert.throws(fn, (e: Error & { errno?: number }) => e.errno === errno, what);
}

/** Values no argument of any entry point should be fooled by. */
function junk(): unknown[] {
  const throwing = [0];
  Object.defineProperty(throwing, 0, { get() { throw new Error(GETTER_THREW); } });
  const sparse: unknown[] = [];
  sparse.length = 2 ** 32 - 1;
  return [
    undefined, null, true, 0.5, -1, -(2 ** 31) - 1, 2 ** 31, 2 ** 32, 2 ** 32 + 1, 2 ** 53, -(2 ** 53), NaN,
    Infinity, -Infinity, '', '7', 'x'.repeat(5000), 'a\0b', Symbol('s'), 10n, {}, [], [1, 2, 3], throwing, sparse,
    () => 1, new Uint8Array(0), new Uint8Array(3), new Float64Array(4), new Uint16Array(3), new Int32Array(2),
    new DataView(new ArrayBuffer(8)), new ArrayBuffer(16), new Proxy({}, {}), new Proxy([], {}),
    new Uint32Array(resizable(8)),
  ];
}

// ---- resources the calls work on, all inside one test namespace ----

interface Env {
  ns: string;
  nsFd: number;
  tun: { fd: number; name: string };
  sock: number;
  nl: number;
  queue: any;
  udp: any;
  watcher: any;
  relay: any;
  /** Two connected Unix stream sockets (their fds: what RelaySet.add and attach take). */
  streams: { server: import('node:net').Server; a: import('node:net').Socket; b: import('node:net').Socket; path: string };
}

function tunFd(env: Env, flags = IFF_TUN | IFF_NO_PI): number {
  const { fd } = inNetns({ fd: env.nsFd }, () => N.tunOpen('hx%d', flags, 0));
  return fd;
}

function udpArea(batch = 4, slotSize = 2048) {
  return {
    data: new Uint8Array(batch * slotSize), slotSize, batch,
    lengths: new Uint32Array(batch), segmentSizes: new Uint32Array(batch), truncated: new Uint32Array(batch),
    endpoints: new Uint8Array(batch * 24), drops: new Uint32Array(3), sendResult: new Uint32Array(4),
  };
}

function sealArgs(): unknown[] {
  return [new Uint8Array(32), null, new Uint8Array(64), Uint32Array.of(0, 16), Uint32Array.of(16, 16),
    new BigUint64Array(2), new Uint8Array(128), Uint32Array.of(0, 64), new Uint32Array(2), 2, 0];
}

function openArgs(): unknown[] {
  const a = sealArgs();
  a[10] = new Uint8Array(2);
  return a;
}

const noop = () => {};

/** A resizable ArrayBuffer (ES2024; Node 20 has it, this TypeScript lib does not yet). */
function resizable(bytes: number): ArrayBuffer & { resize(n: number): void } {
  return new (ArrayBuffer as unknown as new (n: number, o: object) => ArrayBuffer & { resize(n: number): void })(bytes, { maxByteLength: bytes });
}

// Stand-ins for an fd made fresh for one call (an entry that takes ownership of, or closes, it).
const FRESH_TUN = Symbol('a fresh TUN fd');
const FRESH_FD = Symbol('a fresh fd');

/**
 * Each entry point with the arguments of a call that works (or fails only in the kernel), and
 * what to undo after a call that went through.
 */
interface Entry {
  args: (env: Env) => unknown[];
  /** For methods: a fresh object to call on (closed after), where the call consumes it. */
  self?: (env: Env) => any;
  /** Undoes what a call that went through did. */
  undo?: (result: any, env: Env, self: any) => void;
  /** Constructors: `new`. */
  construct?: boolean;
}

const ACCEPT_ALL = Uint8Array.of(0x06, 0, 0, 0, 0xff, 0xff, 0xff, 0xff);
const fd = (r: any) => N.closeFd(typeof r === 'number' ? r : r.fd);
const freshQueue = (env: Env) => {
  const held = tunFd(env);
  return Object.assign(new N.TunQueue(held), { heldFd: held });
};
const freshUdp = (env: Env) => inNetns({ fd: env.nsFd }, () => new N.UdpSocketNative(4));
const streamFd = (s: import('node:net').Socket): number => (s as any)._handle.fd;
// A relay set holding pair 1 with side A added, waiting for attach().
const freshRelay = (env: Env) => {
  const set = new N.RelaySet(4);
  set.add(streamFd(env.streams.a));
  return set;
};

const entries: Record<string, Entry> = {
  // netns.cc
  openPath: { args: () => ['/proc/self/ns/net'], undo: fd },
  setns: { args: (e) => [e.nsFd] },
  closeFd: { args: () => [FRESH_FD] },
  // tun.cc
  tunOpen: { args: () => ['hx%d', IFF_TUN | IFF_NO_PI, 0], undo: fd },
  tunIoctlValue: { args: (e) => [e.tun.fd, 'TUNSETOFFLOAD', 0] },
  tunIoctlInt: { args: (e) => [e.tun.fd, 'TUNSETSNDBUF', 1 << 20] },
  tunGetIff: { args: (e) => [e.tun.fd] },
  tunSetQueue: { args: (e) => [e.tun.fd, true] },
  tunGetHwaddr: { args: (e) => [e.tun.fd] },
  tunSetHwaddr: { args: (e) => [e.tun.fd, new Uint8Array(6)] },
  tunSetTxFilter: { args: (e) => [e.tun.fd, 0, new Uint8Array(12)] },
  tunAttachFilter: {
    // ret #0xffffffff: accept everything. The kernel keeps this pointer while attached.
    args: (e) => [e.tun.fd, ACCEPT_ALL],
    undo: (_r, e) => N.tunDetachFilter(e.tun.fd),
  },
  tunDetachFilter: { args: (e) => [e.tun.fd] },
  tunGetFilter: { args: (e) => [e.tun.fd, new Uint8Array(8)] },
  tunControlSocket: { args: () => [], undo: fd },
  tunIfGet: { args: (e) => [e.sock, e.tun.name, 'mtu'] },
  tunIfSet: { args: (e) => [e.sock, e.tun.name, 'mtu', 1400] },
  // queue.cc
  TunQueue: { construct: true, args: () => [FRESH_TUN], undo: (q) => q.close() },
  'TunQueue.setReadBuffers': { args: () => [new Uint8Array(8192), new Uint32Array(4), new Uint32Array(4), 0, 2048] },
  'TunQueue.read': { args: () => [] },
  'TunQueue.waitReadable': { args: () => [noop, false], undo: (_r, _e, q) => q.cancel('read') },
  'TunQueue.waitWritable': { args: () => [noop], undo: (_r, _e, q) => q.cancel('write') },
  'TunQueue.cancel': { args: () => ['read'] },
  'TunQueue.write': { args: () => [[new Uint8Array(20)], 0, new Uint8Array(4), 4] },
  'TunQueue.writeRanges': { args: () => [new Uint8Array(64), Uint32Array.of(0), Uint32Array.of(20), 0, 1, new Uint8Array(4), 4] },
  'TunQueue.writePieces': { args: () => [[new Uint8Array(64), new Uint8Array(32)], Uint32Array.of(0, 0, 8, 1, 4, 20), Uint32Array.of(2), 0, 1] },
  'TunQueue.release': { self: freshQueue, args: () => [], undo: (_r, _e, q) => N.closeFd(q.heldFd) },
  'TunQueue.close': { self: freshQueue, args: () => [] },
  'TunQueue.ref': { args: () => [] },
  'TunQueue.unref': { args: () => [] },
  // netlink.cc
  'netlink.open': { args: () => [0, [1]], undo: fd },
  'netlink.send': { args: (e) => [e.nl, new Uint8Array(16)] },
  'netlink.recv': { args: (e) => [e.nl, new Uint8Array(65536), 0] },
  'netlink.Watcher': { construct: true, args: (e) => [e.nl, new Uint8Array(65536)], undo: (w) => w.close() },
  'NetlinkWatcher.read': { args: () => [] },
  'NetlinkWatcher.waitReadable': { args: () => [noop, true], undo: (_r, _e, w) => w.cancel('read') },
  'NetlinkWatcher.waitWritable': { args: () => [noop], undo: (_r, _e, w) => w.cancel('write') },
  'NetlinkWatcher.cancel': { args: () => ['read'] },
  'NetlinkWatcher.ref': { args: () => [] },
  'NetlinkWatcher.unref': { args: () => [] },
  'NetlinkWatcher.close': { self: (e) => new NL.Watcher(e.nl, new Uint8Array(65536)), args: () => [] },
  // udp.cc
  UdpSocketNative: { construct: true, args: () => [4], undo: (s) => s.close() },
  'UdpSocketNative.fd': { args: () => [] },
  'UdpSocketNative.bind': { self: freshUdp, args: () => [encodeEndpoint('127.0.0.1', 0)] },
  'UdpSocketNative.connect': { args: () => [encodeEndpoint('127.0.0.1', 9)] },
  'UdpSocketNative.localEndpoint': { args: () => [new Uint8Array(24)] },
  'UdpSocketNative.setIntOption': { args: () => [1, 7, 65536, 'setsockopt(SO_SNDBUF)'] },
  'UdpSocketNative.getIntOption': { args: () => [1, 7] },
  'UdpSocketNative.bindToDevice': { self: freshUdp, args: () => ['lo'] },
  'UdpSocketNative.setRecvArea': { args: () => [udpArea()] },
  'UdpSocketNative.read': { args: () => [] },
  'UdpSocketNative.send': {
    args: () => [new Uint8Array(64), Uint32Array.of(0, 32), Uint32Array.of(32, 32), 0, 2, encodeEndpoint('127.0.0.1', 9), Uint32Array.of(0, 0), 0],
  },
  'UdpSocketNative.sendPieces': {
    args: () => [[new Uint8Array(64), new Uint8Array(64)], Uint32Array.of(0, 0, 8, 1, 0, 24, 0, 8, 8, 1, 24, 20), Uint32Array.of(2, 4), 0, 2,
      encodeEndpoint('127.0.0.1', 9), Uint32Array.of(0, 0), -1],
  },
  'UdpSocketNative.waitReadable': { args: () => [noop, true], undo: (_r, _e, s) => s.cancel('read') },
  'UdpSocketNative.waitWritable': { self: freshUdp, args: () => [noop] },
  'UdpSocketNative.cancel': { args: () => ['read'] },
  'UdpSocketNative.ref': { args: () => [] },
  'UdpSocketNative.unref': { args: () => [] },
  'UdpSocketNative.close': { self: freshUdp, args: () => [] },
  unshareNet: { args: () => [] }, // moves the thread into a new namespace; each call runs inside inNetns, which brings it back
  // relay.cc
  RelaySet: { construct: true, args: () => [16, 1 << 20, 65536, 1 << 20], undo: (s) => s.close() },
  'RelaySet.add': { args: (e) => [streamFd(e.streams.a)], undo: (id, _e, s) => s.drop(id) },
  'RelaySet.attach': { self: freshRelay, args: (e) => [1, streamFd(e.streams.b), new Uint8Array(4), new Uint8Array(4)] },
  'RelaySet.drop': { args: () => [1, true] },
  'RelaySet.bytes': { args: () => [1] },
  'RelaySet.takeFinished': { args: () => [new Float64Array(10)] },
  'RelaySet.takeActive': { args: () => [new Uint32Array(4)] },
  'RelaySet.trim': { args: () => [] },
  'RelaySet.size': { args: () => [] },
  'RelaySet.held': { args: () => [] },
  'RelaySet.read': { args: () => [] },
  'RelaySet.waitReadable': { args: () => [noop, true], undo: (_r, _e, s) => s.cancel('read') },
  'RelaySet.waitWritable': { args: () => [noop], undo: (_r, _e, s) => s.cancel('write') },
  'RelaySet.cancel': { args: () => ['read'] },
  'RelaySet.ref': { args: () => [] },
  'RelaySet.unref': { args: () => [] },
  'RelaySet.close': { self: freshRelay, args: () => [] },
  // aead.cc
  aeadBackend: { args: () => ['direct'] },
  aeadChaCha: { args: () => ['portable'] },  // every CPU has it; the best width comes back after
  aeadPoly: { args: () => ['openssl'] },  // the best comes back after
  aeadPoly1305: { args: () => ['lanes', new Uint8Array(64), new Uint8Array(100), Uint32Array.of(0, 40), Uint32Array.of(40, 60), new Uint8Array(32)] },
  aeadSealBatch: { args: sealArgs },
  aeadOpenBatch: { args: openArgs },
  // aead_residue.cc (test hook: the same arguments, then the stack search)
  aeadSealResidue: { args: sealArgs },
  aeadOpenResidue: { args: openArgs },
  // pcap.cc (libpcap loaded at run time; without it the calls answer with an Error marked pcap)
  pcapLoad: { args: () => [] },
  pcapCompile: { args: () => ['udp port 53', 1, 262144, true] },
  // notify.cc (no receiver at that path: the kernel's ENOENT is the answer)
  notifySend: { args: () => ['/run/tuntap-hostile-test-none/notify', 'READY=1'] },
  // checksum.cc
  checksumRanges: { args: () => [new Uint8Array(64), Uint32Array.of(0, 3), Uint32Array.of(64, 61), new Uint32Array(2), 2] },
  // malloc.cc
  setMallocTrimThreshold: { args: () => [128 * 1024] },
  // packet_pair.cc (takes no arguments: any given are ignored)
  packetPairOpen: { args: () => [], undo: (r: number[]) => { for (const f of r) N.closeFd(f); } },
};

/** Every function the addon exports, and every method of the classes it exports. */
function nativeEntryPoints(): string[] {
  const names: string[] = [];
  const classes: Record<string, string> = { TunQueue: 'TunQueue', UdpSocketNative: 'UdpSocketNative', Watcher: 'NetlinkWatcher' };
  const visit = (obj: Record<string, unknown>, prefix: string) => {
    for (const [key, value] of Object.entries(obj)) {
      if (typeof value === 'function') {
        names.push(prefix + key);
        const proto = (value as { prototype?: object }).prototype;
        const methods = proto ? Object.getOwnPropertyNames(proto).filter((m) => m !== 'constructor') : [];
        for (const m of methods) names.push(`${classes[key] ?? key}.${m}`);
      } else if (value && typeof value === 'object') {
        visit(value as Record<string, unknown>, `${key}.`);
      }
    }
  };
  visit(N, '');
  return names.sort();
}

const CLASSES: Record<string, () => any> = {
  TunQueue: () => N.TunQueue, UdpSocketNative: () => N.UdpSocketNative, NetlinkWatcher: () => NL.Watcher,
  RelaySet: () => N.RelaySet,
};

/** The function behind an entry name, and the object a method runs on. */
function resolve(name: string, env: Env): { fn: Fn; self: any; construct: boolean } {
  const entry = entries[name]!;
  if (entry.construct) return { fn: name === 'netlink.Watcher' ? NL.Watcher : N[name], self: undefined, construct: true };
  if (name.startsWith('netlink.')) return { fn: NL[name.slice('netlink.'.length)], self: undefined, construct: false };
  const dot = name.indexOf('.');
  if (dot < 0) return { fn: N[name], self: undefined, construct: false };
  const proto = CLASSES[name.slice(0, dot)]!().prototype;
  const member = name.slice(dot + 1);
  const descriptor = Object.getOwnPropertyDescriptor(proto, member)!;
  const shared: Record<string, unknown> = { TunQueue: env.queue, UdpSocketNative: env.udp, NetlinkWatcher: env.watcher, RelaySet: env.relay };
  const self = entry.self?.(env) ?? shared[name.slice(0, dot)];
  return { fn: descriptor.get ?? descriptor.value, self, construct: false };
}

/** Calls one entry; a throw must be clean. Fresh fds a call did not take are closed. */
function callEntry(name: string, env: Env, given: unknown[]): void {
  const entry = entries[name]!;
  const fresh: number[] = [];
  const args = given.map((v) => {
    if (v !== FRESH_TUN && v !== FRESH_FD) return v;
    const made = v === FRESH_TUN ? tunFd(env) : N.openPath('/proc/self/ns/net') as number;
    fresh.push(made);
    return made;
  });
  const { fn, self, construct } = resolve(name, env);
  try {
    let result: unknown;
    try {
      result = construct ? new (fn as unknown as new (...a: unknown[]) => unknown)(...args) : fn.apply(self, args);
    } catch (e) {
      assert.ok(isClean(e), `${name}(${given.map(describe).join(', ')}): not a clean exception: ${String(e)}`);
      for (const f of fresh) clean('closing an fd the call did not take', () => N.closeFd(f));
      return;
    }
    entry.undo?.(result, env, self);
  } finally {
    if (entry.self) clean(`${name}: releasing its object`, () => (self.close ?? self.stop).call(self));
  }
}

function describe(v: unknown): string {
  if (v === FRESH_TUN || v === FRESH_FD) return 'fd';
  if (typeof v === 'string') return v.length > 20 ? `'${v.slice(0, 10)}…'(${v.length})` : JSON.stringify(v);
  if (typeof v === 'symbol' || typeof v === 'bigint') return String(v) + (typeof v === 'bigint' ? 'n' : '');
  if (Array.isArray(v)) return `Array(${v.length})`;
  if (ArrayBuffer.isView(v)) return `${v.constructor.name}(${(v as Uint8Array).length ?? v.byteLength})`;
  if (typeof v === 'function') return 'function';
  return String(v);
}

async function makeEnv(): Promise<Env> {
  const ns = net.namespace('nh');
  const nsFd = N.openPath(`/var/run/netns/${ns}`) as number;
  const env = { ns, nsFd } as Env;
  const tun = inNetns({ fd: nsFd }, () => N.tunOpen('hx%d', IFF_TUN | IFF_NO_PI, 0));
  env.tun = tun;
  env.sock = inNetns({ fd: nsFd }, () => N.tunControlSocket());
  env.nl = inNetns({ fd: nsFd }, () => NL.open(0, [])).fd;
  env.queue = freshQueue(env);
  env.queue.setReadBuffers(new Uint8Array(8192), new Uint32Array(4), new Uint32Array(4), 0, 2048);
  env.udp = freshUdp(env);
  env.udp.setRecvArea(udpArea());
  env.watcher = new NL.Watcher(env.nl, new Uint8Array(65536));
  env.relay = new N.RelaySet(16);
  env.streams = await unixStreams();
  // The set opens its spare fd at its first add: open it now, before fds are counted.
  env.relay.drop(env.relay.add(streamFd(env.streams.a)));
  return env;
}

/** A connected pair of Unix stream sockets (no network traffic; the relay takes any stream socket). */
async function unixStreams(): Promise<Env['streams']> {
  const { createServer, connect } = await import('node:net');
  const path = join(mkdtempSync(join(tmpdir(), 'tuntap-hostile-')), 'relay.sock');
  let accepted!: (s: import('node:net').Socket) => void;
  const got = new Promise<import('node:net').Socket>((r) => { accepted = r; });
  const server = createServer({ pauseOnConnect: true }, (s) => accepted(s));
  await new Promise<void>((r) => server.listen(path, r));
  const a = connect(path);
  a.pause();
  await new Promise((r) => a.once('connect', r));
  return { server, a, b: await got, path };
}

/** Runs a test body on a fresh Env and closes it after, even when the body fails. */
async function withEnv(body: (env: Env) => Promise<void> | void): Promise<void> {
  const env = await makeEnv();
  try {
    await body(env);
  } finally {
    closeEnv(env);
  }
}

function closeEnv(env: Env): void {
  env.queue.close();
  env.udp.close();
  env.watcher.close();
  env.relay.close();
  env.streams.a.destroy();
  env.streams.b.destroy();
  env.streams.server.close();
  rmSync(dirname(env.streams.path), { recursive: true, force: true });
  for (const f of [env.tun.fd, env.sock, env.nl, env.nsFd]) N.closeFd(f);
}

test('the table below covers every native entry point', () => {
  assert.deepEqual(nativeEntryPoints(), Object.keys(entries).sort(),
    'a new native function needs its hostile-argument case here');
});

/** The process's open fds, each with what it refers to (so a failure names the fd). */
function openFds(): string[] {
  const fds: string[] = [];
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      fds.push(`${fd} -> ${readlinkSync(`/proc/self/fd/${fd}`)}`);
    } catch {
      // The directory's own fd, closed once read.
    }
  }
  return fds.sort();
}

test('every entry point, every argument replaced by hostile values: a clean exception or a normal return', async () => {
  const env = await makeEnv();
  const fds = openFds();
  try {
    for (const name of Object.keys(entries)) {
      const width = Math.max(entries[name]!.args(env).length + 1, 2);
      for (let at = 0; at < width; at++) {
        for (const bad of junk()) {
          const args = entries[name]!.args(env);
          args[at] = bad;
          inNetns({ fd: env.nsFd }, () => callEntry(name, env, args));
        }
      }
      // Fewer arguments than it takes, down to none.
      for (let n = entries[name]!.args(env).length - 1; n >= 0; n--) {
        inNetns({ fd: env.nsFd }, () => callEntry(name, env, entries[name]!.args(env).slice(0, n)));
      }
    }
    N.aeadBackend('direct');
    N.aeadChaCha(BEST_CHACHA);
    N.aeadPoly(BEST_POLY);
    gc();
    assert.deepEqual(openFds(), fds, 'no fd was leaked or closed by mistake');
  } finally {
    closeEnv(env);
  }
});

test('methods called on an object of another class (or none) are a TypeError, never run on it', async () => {
  await withEnv(async (env) => {
    const watcher = new NL.Watcher(env.nl, new Uint8Array(65536));
    const others: Record<string, unknown[]> = {
      TunQueue: [env.udp, watcher, {}, Object.create(N.TunQueue.prototype), 5, undefined],
      UdpSocketNative: [env.queue, watcher, {}, Object.create(N.UdpSocketNative.prototype), 'x', null],
      NetlinkWatcher: [env.queue, env.udp, {}, Object.create(NL.Watcher.prototype), true],
      RelaySet: [env.queue, env.udp, watcher, {}, Object.create(N.RelaySet.prototype), 7],
    };
    for (const [cls, strangers] of Object.entries(others)) {
      const proto = CLASSES[cls]!().prototype;
      for (const member of Object.getOwnPropertyNames(proto).filter((m) => m !== 'constructor')) {
        const d = Object.getOwnPropertyDescriptor(proto, member)!;
        const fn = (d.get ?? d.value) as Fn;
        const args = entries[`${cls}.${member}`]!.args(env);
        for (const stranger of strangers) {
          assert.throws(() => fn.apply(stranger, args), (e: unknown) => e instanceof TypeError || (e instanceof Error && /object/i.test(e.message)),
            `${cls}.${member} on ${describe(stranger)}`);
        }
      }
    }
    watcher.close();
  });
});

test('queue: the read area is checked whole, and a too-short lengths array bounds the batch', async () => {
  await withEnv(async (env) => {
    const q = env.queue;
    assert.throws(() => q.setReadBuffers(new Uint8Array(4096), new Uint8Array(16), new Uint32Array(4), 0, 2048), TypeError);
    assert.throws(() => q.setReadBuffers(new Uint8Array(4096), new Uint32Array(4), new Float64Array(4), 0, 2048), TypeError);
    assert.throws(() => q.setReadBuffers(new Uint8Array(4096), new Uint32Array(4), new Uint32Array(4), 0, 8192), RangeError);
    assert.throws(() => q.setReadBuffers(new Uint8Array(4096), new Uint32Array(4), new Uint32Array(4), 2048, 2048), RangeError);
    // A header length the core allows, and a read size that leaves no room after it.
    assert.throws(() => q.setReadBuffers(new Uint8Array(4096), new Uint32Array(4), new Uint32Array(4), 12, 12), RangeError);
    assert.throws(() => q.setReadBuffers(new Uint8Array(4096), new Uint32Array(4), new Uint32Array(4), 12, 4), RangeError);
    assert.throws(() => q.setReadBuffers(new Uint8Array(4096), new Uint32Array(0), new Uint32Array(4), 0, 2048), RangeError);
    assert.throws(() => q.waitReadable('not a function'), TypeError);
    assert.throws(() => q.waitReadable(noop, 'yes'), TypeError);
    assert.throws(() => q.cancel('both'), TypeError);
    assert.throws(() => new N.TunQueue(env.sock), TypeError, 'a socket is not a TUN fd: a queue would close it');

    // Three packets waiting, eight offsets but one length slot: one packet is read, not three.
    const dev = await upTun(env);
    try {
      dev.q.setReadBuffers(new Uint8Array(8 * 2048), new Uint32Array(8), new Uint32Array(1), 0, 2048);
      await sendUdp(env.ns, '198.18.66.2', 9, { rounds: 3 }); // queued on the TUN once the sender exits
      assert.equal(dev.q.read(), 1);
    } finally {
      dev.close();
    }
  });
});

test('queue: writes check the heads, the ranges and start..end without wrapping', async () => {
  await withEnv(async (env) => {
    const q = env.queue;
    const buf = new Uint8Array(64);
    // Two packets, heads for one: the second head would be read past the heads array.
    assert.throws(() => q.writeRanges(buf, Uint32Array.of(0, 20), Uint32Array.of(20, 20), 0, 2, new Uint8Array(4), 4), RangeError);
    assert.throws(() => q.write([buf, buf], 0, new Uint8Array(4), 4), RangeError);
    assert.throws(() => q.writeRanges(buf, Uint32Array.of(0), Uint32Array.of(20), 0xffffffff, 1), RangeError);
    assert.throws(() => q.writeRanges(buf, Uint32Array.of(0), Uint32Array.of(20), 1, 0), RangeError);
    assert.throws(() => q.writeRanges(buf, Uint32Array.of(0), Uint32Array.of(20), 0, 2), RangeError);
    assert.throws(() => q.writeRanges(buf, Uint8Array.of(0, 0, 0, 0), Uint32Array.of(20), 0, 1), TypeError);
    assert.throws(() => q.write([buf], 2), RangeError);
    assert.throws(() => q.write(buf, 0), TypeError);
    // A range past the buffer, or one whose offset + length wraps 32 bits, is EFAULT, with the
    // count written before it.
    for (const [off, len] of [[60, 20], [0xfffffff0, 0x20], [8, 0xffffffff]]) {
      assert.throws(() => q.writeRanges(buf, Uint32Array.of(off!), Uint32Array.of(len!), 0, 1),
        (e: Error & { errno?: number; written?: number }) => e.errno === EFAULT && e.written === 0);
    }
  });
});

test('queue: a detached or shrunk read buffer is EFAULT, never written', async () => {
  const env = await makeEnv();
  const dev = await upTun(env);
  try {
    await sendUdp(env.ns, '198.18.66.2', 9, { rounds: 4 });
    let buffer = new Uint8Array(8 * 2048);
    dev.q.setReadBuffers(buffer, new Uint32Array(8), new Uint32Array(8), 0, 2048);
    structuredClone(buffer.buffer, { transfer: [buffer.buffer] });
    gc(); // the memory the queue was given is freed now
    throwsErrno(() => dev.q.read(), EFAULT, 'detached buffer');

    const offsets = new Uint32Array(8);
    buffer = new Uint8Array(8 * 2048);
    dev.q.setReadBuffers(buffer, offsets, new Uint32Array(8), 0, 2048);
    structuredClone(offsets.buffer, { transfer: [offsets.buffer] });
    throwsErrno(() => dev.q.read(), EFAULT, 'detached offsets');

    const rab = resizable(8 * 2048);
    dev.q.setReadBuffers(new Uint8Array(rab), new Uint32Array(8), new Uint32Array(8), 0, 2048);
    rab.resize(1024);
    throwsErrno(() => dev.q.read(), EFAULT, 'shrunk buffer');

    // The same with the wait armed: the wake-up reports EFAULT to the callback.
    const buf2 = new Uint8Array(8 * 2048);
    dev.q.setReadBuffers(buf2, new Uint32Array(8), new Uint32Array(8), 0, 2048);
    structuredClone(buf2.buffer, { transfer: [buf2.buffer] });
    const err = await new Promise<Error & { errno?: number }>((resolve) => dev.q.waitReadable((e: Error) => resolve(e)));
    assert.equal(err?.errno, EFAULT);
  } finally {
    dev.close();
    closeEnv(env);
  }
});

test('queue: a read callback that closes its queue, and a getter that closes or detaches mid-write', async () => {
  await withEnv(async (env) => {
    for (const [k, persistent] of [[1, false], [2, true]] as const) {
      const dev = await upTun(env, k);
      try {
        const q = dev.q;
        let calls = 0;
        q.waitReadable(() => {
          calls++;
          q.close();
          q.close();
          throwsErrno(() => q.read(), EBADF, 'read after close');
        }, persistent);
        await sendUdp(env.ns, `198.18.${66 + k}.2`, 9, { rounds: 2 });
        await waitFor('the callback', () => calls > 0);
        await sleep(50);
        assert.equal(calls, 1, 'called once, then nothing');
        throwsErrno(() => q.waitReadable(noop), EBADF, 'wait after close');
        throwsErrno(() => q.write([ipPacket()], 0), EBADF, 'write after close');
      } finally {
        dev.close();
      }
    }

    // A getter on the packet array closes the queue: the write then finds it closed.
    const q3 = new N.TunQueue(tunFd(env));
    const packets = [ipPacket(), ipPacket()];
    Object.defineProperty(packets, 1, { get() { q3.close(); return ipPacket(); } });
    throwsErrno(() => q3.write(packets, 0), EBADF, 'closed by a getter');

    // A getter detaches the heads array: the heads are looked up after it ran, and found short.
    const pi = new N.TunQueue(tunFd(env, IFF_PI_TUN));
    const heads = new Uint8Array(8);
    const two = [ipPacket(), ipPacket()];
    Object.defineProperty(two, 1, { get() { structuredClone(heads.buffer, { transfer: [heads.buffer] }); gc(); return ipPacket(); } });
    assert.throws(() => pi.write(two, 0, heads, 4), RangeError);
    pi.close();
  });
});

test('udp: wrapping start + count, mismatched arrays, a detached area, closed sockets and re-entrant callbacks', async () => {
  await withEnv(async (env) => {
    const s = env.udp;
    const data = new Uint8Array(64);
    const rec = encodeEndpoint('127.0.0.1', 9);
    // start + count wraps in 32 bits to something small; it must still be refused.
    assert.throws(() => s.send(data, Uint32Array.of(0), Uint32Array.of(8), 0xffffffff, 2, rec, null, 0), RangeError);
    assert.throws(() => s.send([data], null, null, 0xffffffff, 2, rec, null, 0), RangeError);
    assert.throws(() => s.send(data, Uint32Array.of(0, 0), Uint32Array.of(8), 0, 2, rec, null, 0), RangeError);
    assert.throws(() => s.send(data, Uint32Array.of(0), Uint32Array.of(8), 0, 1, rec, Uint32Array.of(), 0), RangeError);
    assert.throws(() => s.send(data, Uint32Array.of(0), Uint32Array.of(8), 0, 1, rec, Uint32Array.of(1), 0), RangeError);
    assert.throws(() => s.send(data, Uint8Array.of(0, 0, 0, 0), Uint32Array.of(8), 0, 1, rec, null, 0), TypeError);
    assert.throws(() => s.send(data, Uint32Array.of(60), Uint32Array.of(8), 0, 1, rec, null, 0), RangeError);
    assert.throws(() => s.send(data, Uint32Array.of(8), Uint32Array.of(0xfffffffc), 0, 1, rec, null, 0), RangeError);
    assert.throws(() => s.send(data, Uint32Array.of(0), Uint32Array.of(8), 0, 1, rec, null, 70000), RangeError);
    assert.throws(() => s.bind(new Uint8Array(8)), RangeError);
    assert.throws(() => s.setRecvArea({ ...udpArea(), lengths: new Uint8Array(16) }), TypeError);
    assert.throws(() => s.setRecvArea({ ...udpArea(), endpoints: new Uint8Array(8) }), TypeError);
    assert.throws(() => s.setRecvArea({ ...udpArea(), batch: 5 }), TypeError, 'arrays shorter than the batch');
    assert.throws(() => s.setRecvArea({ ...udpArea(), batch: 2 ** 31, slotSize: 2 ** 31 }), RangeError);
    assert.throws(() => new N.UdpSocketNative(5), RangeError);

    // A datagram waits; its area is detached before the receive: EFAULT, nothing written.
    const rx = freshUdp(env);
    rx.bind(encodeEndpoint('127.0.0.1', 0));
    const local = new Uint8Array(24);
    rx.localEndpoint(local);
    const area = udpArea();
    rx.setRecvArea(area);
    const tx = freshUdp(env);
    tx.setRecvArea(udpArea());
    tx.send([new Uint8Array(100)], null, null, 0, 1, local, null, 0);
    structuredClone(area.data.buffer, { transfer: [area.data.buffer] });
    gc();
    throwsErrno(() => rx.read(), EFAULT, 'detached receive area');
    // An Array send whose element getter closes the socket: the send then fails as closed.
    const list = [new Uint8Array(10), new Uint8Array(10)];
    Object.defineProperty(list, 1, { get() { tx.close(); return new Uint8Array(10); } });
    throwsErrno(() => tx.send(list, null, null, 0, 2, local, null, 0), EBADF, 'closed by a getter');
    // And one whose getter detaches the endpoint records: they are taken after the getter.
    const tx2 = freshUdp(env);
    tx2.setRecvArea(udpArea());
    const eps = new Uint8Array(local);
    const list2 = [new Uint8Array(10), new Uint8Array(10)];
    Object.defineProperty(list2, 1, { get() { structuredClone(eps.buffer, { transfer: [eps.buffer] }); gc(); return new Uint8Array(10); } });
    assert.throws(() => tx2.send(list2, null, null, 0, 2, eps, null, 0), RangeError, 'no endpoint record is left');
    // Closed: every call that needs the socket is EBADF; closing again is harmless.
    tx2.close();
    tx2.close();
    for (const call of [() => tx2.read(), () => tx2.waitReadable(noop), () => tx2.waitWritable(noop), () => tx2.bind(local),
      () => tx2.getIntOption(1, 7), () => tx2.send([data], null, null, 0, 1, local, null, 0)]) throwsErrno(call, EBADF, 'closed socket');
    tx2.cancel('read');

    // A persistent read callback that closes its socket runs once.
    const rx2 = freshUdp(env);
    rx2.bind(encodeEndpoint('127.0.0.1', 0));
    const local2 = new Uint8Array(24);
    rx2.localEndpoint(local2);
    rx2.setRecvArea(udpArea());
    let calls = 0;
    rx2.waitReadable(() => { calls++; rx2.close(); throwsErrno(() => rx2.read(), EBADF, 'read after close'); }, true);
    const tx3 = freshUdp(env);
    tx3.setRecvArea(udpArea());
    tx3.send([new Uint8Array(10), new Uint8Array(10)], null, null, 0, 2, local2, null, 0);
    tx3.waitWritable(() => tx3.close());
    await waitFor('the read callback', () => calls > 0);
    await sleep(50);
    assert.equal(calls, 1);
    rx.close();
  });
});

test('tun, netlink and netns: names, lengths and timeouts are checked before they reach the kernel', async () => {
  await withEnv(async (env) => {
    inNetns({ fd: env.nsFd }, () => {
      // A 16-byte name would be cut to 15 and open (or create) another device.
      assert.throws(() => N.tunOpen('abcdefghijklmnop', IFF_TUN | IFF_NO_PI, 0), RangeError);
      assert.throws(() => N.tunOpen('ab\0cd', IFF_TUN | IFF_NO_PI, 0), RangeError);
      assert.throws(() => N.tunOpen('hx%d', 0x10000, 0), RangeError);
    });
    assert.throws(() => N.tunIfGet(env.sock, 'abcdefghijklmnop', 'mtu'), RangeError);
    assert.throws(() => N.tunIfSet(env.sock, env.tun.name, 'flags', 0x10000), RangeError);
    assert.throws(() => N.tunIfSet(env.sock, env.tun.name, 'mtu', -1), RangeError);
    assert.throws(() => N.tunIfSet(env.sock, env.tun.name, 'index', 1), TypeError);
    assert.throws(() => N.tunSetHwaddr(env.tun.fd, new Uint8Array(5)), RangeError);
    // The kernel's counts are 16 bits: longer lists would be cut to something else.
    assert.throws(() => N.tunSetTxFilter(env.tun.fd, 0, new Uint8Array(6 * 70000)), RangeError);
    assert.throws(() => N.tunSetTxFilter(env.tun.fd, 0, new Uint8Array(7)), RangeError);
    assert.throws(() => N.tunAttachFilter(env.tun.fd, new Uint8Array(8 * 65537)), RangeError);
    assert.throws(() => N.tunAttachFilter(env.tun.fd, new Uint8Array(12)), RangeError);
    assert.throws(() => N.tunIoctlInt(env.tun.fd, 'TUNSETIFF'), TypeError);
    // A negative timeout would block the JS thread in poll() forever.
    assert.throws(() => NL.recv(env.nl, new Uint8Array(65536), -1), RangeError);
    assert.throws(() => NL.recv(env.nl, new Uint8Array(1024), 0), RangeError);
    assert.throws(() => NL.open(0, [0]), RangeError);
    assert.throws(() => NL.open(32, []), RangeError);
    assert.throws(() => new NL.Watcher(env.nl, new Uint8Array(1024)), RangeError);
    // A watcher whose buffer is detached reports EFAULT on the next wake-up.
    const buf = new Uint8Array(65536);
    const nl2 = inNetns({ fd: env.nsFd }, () => NL.open(0, [1])).fd; // RTNLGRP_LINK
    const seen: Array<Error | undefined> = [];
    const w = new NL.Watcher(nl2, buf);
    w.waitReadable((err: Error | null) => { seen.push(err ?? undefined); w.close(); w.close(); }, true);
    structuredClone(buf.buffer, { transfer: [buf.buffer] });
    gc();
    configureInterface(env.tun.name, { up: true }, { netns: env.ns });
    await waitFor('the watcher callback', () => seen.length > 0);
    assert.equal((seen[0] as Error & { errno?: number })?.errno, EFAULT);
    N.closeFd(nl2);
    assert.throws(() => N.openPath('/proc/self/ns/net\0/x'), RangeError);
    assert.throws(() => N.closeFd(-1), RangeError);
    throwsErrno(() => N.closeFd(2 ** 31 - 1), EBADF, 'close of an fd that is not open');
  });
});

test('aead: arrays that alias the output cannot steer a write outside it', () => {
  const plain = new Uint8Array(16);
  // dst and dstOffsets share memory: sealing packet 0 overwrites dstOffsets[1] with ciphertext.
  const shared = new ArrayBuffer(4096);
  const dst = new Uint8Array(shared);
  const dstOffsets = new Uint32Array(shared, 0, 2);
  dstOffsets[0] = 0;
  dstOffsets[1] = 64;
  const dstLengths = new Uint32Array(2);
  for (const backend of ['direct', 'evp']) {
    N.aeadBackend(backend);
    dstOffsets[0] = 0;
    dstOffsets[1] = 64;
    const sealed = N.aeadSealBatch(new Uint8Array(32).fill(7), null, plain, Uint32Array.of(0, 0), Uint32Array.of(16, 16),
      BigUint64Array.of(1n, 2n), dst, dstOffsets, dstLengths, 2, 0);
    // Packet 1's offset is now whatever the ciphertext says: sealed only if it still fits.
    assert.ok(sealed === 2 ? dstOffsets[1]! + 32 <= dst.length : sealed === 1, `${backend}: sealed ${sealed}`);
    const ok = new Uint8Array(2);
    dstOffsets[0] = 0;
    dstOffsets[1] = 64;
    const opened = N.aeadOpenBatch(new Uint8Array(32).fill(7), null, dst, Uint32Array.of(0, 0), Uint32Array.of(32, 32),
      BigUint64Array.of(1n, 2n), dst, dstOffsets, dstLengths, 2, ok);
    assert.ok(opened <= 2);
  }
  N.aeadBackend('direct');
  assert.throws(() => N.aeadSealBatch(...sealArgs().map((v, i) => (i === 9 ? 1.5 : v))), RangeError);
  assert.throws(() => N.aeadSealBatch(...sealArgs().map((v, i) => (i === 10 ? -1 : v))), RangeError);
  assert.throws(() => N.aeadSealBatch(...sealArgs().map((v, i) => (i === 3 ? new Uint8Array(8) : v))), TypeError);
  assert.throws(() => N.aeadBackend('fast'), TypeError);
  assert.throws(() => N.aeadChaCha('fast'), TypeError);
  assert.throws(() => N.aeadChaCha(512), TypeError);
  assert.equal(N.aeadChaCha(), BEST_CHACHA);
});

test('notifySend: the address fits sun_path (a path with its NUL), the message fits one notification', () => {
  const ENOENT = 2;
  const ECONNREFUSED = 111;
  const refused = (address: string) => assert.throws(() => N.notifySend(address, 'READY=1'),
    (e: Error & { errno?: number }) => e.errno === ENOENT || e.errno === ECONNREFUSED, address.slice(0, 12));
  refused(`/${'p'.repeat(106)}`);  // 107 bytes and the NUL: the longest path
  assert.throws(() => N.notifySend(`/${'p'.repeat(107)}`, 'READY=1'), RangeError);
  refused(`@${'a'.repeat(107)}`);  // an abstract name has no NUL: 108 bytes fit
  assert.throws(() => N.notifySend(`@${'a'.repeat(108)}`, 'READY=1'), RangeError);
  for (const address of ['', '@', '/', 'relative/path', ' /x', 'READY=1']) {
    assert.throws(() => N.notifySend(address, 'READY=1'), RangeError, JSON.stringify(address));
  }
  assert.throws(() => N.notifySend('/run/none', ''), RangeError);
  assert.throws(() => N.notifySend('/run/none', 'X'.repeat(4097)), RangeError);
  assert.throws(() => N.notifySend('/run/none', 'READY=1\0STOPPING=1'), RangeError);
  assert.throws(() => N.notifySend('@x\0y', 'READY=1'), RangeError);
});

// ---- helpers for the tests with traffic ----

interface UpTun { name: string; q: any; close(): void }

/** A TUN with a queue, up with 198.18.(65+k).1/24: traffic to 198.18.(65+k).2 queues on it. */
async function upTun(env: Env, k = 1): Promise<UpTun> {
  const { fd: tfd, name } = inNetns({ fd: env.nsFd }, () => N.tunOpen('hq%d', IFF_TUN | IFF_NO_PI, 0));
  const q = new N.TunQueue(tfd);
  q.setReadBuffers(new Uint8Array(8 * 2048), new Uint32Array(8), new Uint32Array(8), 0, 2048);
  configureInterface(name, { addresses: [`198.18.${65 + k}.1/24`], up: true }, { netns: env.ns });
  return { name, q, close: () => q.close() };
}

function ipPacket(): Uint8Array {
  const p = new Uint8Array(28);
  p[0] = 0x45;
  p[3] = 28;
  p[8] = 64;
  p[9] = 17;
  return p;
}
