// The control socket of `tuntap socks`, `http` and `bridge` (WireGuard has its UAPI socket):
// /run/tuntap/KIND-NAME-PID.sock, born 0600 in a directory only its owner may write. A client
// sends one line, `status`, and gets one line of JSON (the process's counters) before the
// socket closes. Whoever can connect is root, but the requests are still bounded: a short line
// within a deadline, a few clients at once; anything else is closed without an answer.
import { createServer, Socket, type Server } from 'node:net';
import { lstatSync, mkdirSync, readdirSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';

export const CONTROL_DIR = '/run/tuntap';

/** The directory of the control sockets: $TUNTAP_CONTROL_DIR, else /run/tuntap. */
export function controlDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.TUNTAP_CONTROL_DIR || CONTROL_DIR;
}

export type ControlKind = 'socks' | 'http' | 'bridge';

// A socket's file name says what serves it; the pid keeps two processes (a `socks` in each of
// two namespaces, whose TUNs may share a name) apart.
const SOCKET_NAME = /^(socks|http|bridge)-([A-Za-z0-9_.:-]{1,64})-([1-9]\d{0,9})\.sock$/;

export function controlSocketName(kind: ControlKind, name: string, pid = process.pid): string {
  const file = `${kind}-${name}-${pid}.sock`;
  if (!SOCKET_NAME.test(file)) throw new RangeError(`cannot name a control socket after "${name}"`);
  return file;
}

/** The control sockets in `dir` as { kind, name, pid, path }, by file name. */
export function listControlSockets(dir = controlDir()): Array<{ kind: ControlKind; name: string; pid: number; path: string }> {
  let files: string[];
  try {
    files = readdirSync(dir);
  } catch {
    return [];
  }
  return files.flatMap((f) => {
    const m = SOCKET_NAME.exec(f);
    return m ? [{ kind: m[1] as ControlKind, name: m[2]!, pid: Number(m[3]), path: join(dir, f) }] : [];
  }).sort((a, b) => a.path.localeCompare(b.path));
}

/**
 * Makes `dir` if missing and checks it is safe to put a socket in: a real directory (not a
 * symlink) owned by this user that nobody else may write to, so no one else can replace the
 * socket or plant one for `tuntap top` to read. Throws an Error saying what is wrong.
 */
export function prepareControlDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const st = lstatSync(dir);
  if (!st.isDirectory()) throw new Error(`${dir} is not a directory`);
  const uid = process.geteuid?.() ?? 0;
  if (st.uid !== uid) throw new Error(`${dir} belongs to uid ${st.uid}, not to this user (${uid})`);
  if ((st.mode & 0o022) !== 0) throw new Error(`${dir} is writable by others (mode ${(st.mode & 0o7777).toString(8)})`);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export const CONTROL_LIMITS = {
  /** Bytes of request before its newline. */
  requestBytes: 256,
  /** Time a client has to send its line. */
  timeoutMs: 2000,
  /** Clients served at once. */
  clients: 8,
};

export interface ControlServerOptions {
  kind: ControlKind;
  /** What the process serves (its TUN's name, its first bridge port). */
  name: string;
  /** The answer to `status`: a JSON-serializable snapshot of the counters. */
  status: () => unknown;
  dir?: string;
}

export class ControlServer {
  private readonly clients = new Set<Socket>();
  private readonly onExit = (): void => { try { unlinkSync(this.path); } catch { /* gone */ } };

  private constructor(private readonly server: Server, readonly path: string, private readonly status: () => unknown) {
    // A crash still removes the socket; a SIGKILL leaves it for the next start to sweep.
    process.on('exit', this.onExit);
  }

  static async listen(opts: ControlServerOptions): Promise<ControlServer> {
    const dir = opts.dir ?? controlDir();
    prepareControlDir(dir);
    // Sockets whose process is gone (killed before it could remove them).
    for (const s of listControlSockets(dir)) {
      if (s.pid === process.pid || !alive(s.pid)) { try { unlinkSync(s.path); } catch { /* raced */ } }
    }
    const path = join(dir, controlSocketName(opts.kind, opts.name));
    let self: ControlServer | undefined;
    const server = createServer((sock) => self!.serve(sock));
    server.maxConnections = CONTROL_LIMITS.clients;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      // bind() inside listen() creates the socket synchronously: with this umask it is born
      // 0600, with no moment in which others could connect.
      const umask = process.umask(0o177);
      try {
        server.listen(path, () => { server.off('error', reject); resolve(); });
      } finally {
        process.umask(umask);
      }
    });
    self = new ControlServer(server, path, opts.status);
    return self;
  }

  private serve(sock: Socket): void {
    this.clients.add(sock);
    sock.once('close', () => this.clients.delete(sock));
    sock.on('error', () => sock.destroy());
    sock.setTimeout(CONTROL_LIMITS.timeoutMs, () => sock.destroy());
    let pending = '';
    sock.setEncoding('latin1');
    const onData = (chunk: string): void => {
      pending += chunk;
      const end = pending.indexOf('\n');
      if (end < 0) {
        if (pending.length > CONTROL_LIMITS.requestBytes) sock.destroy();
        return;
      }
      sock.off('data', onData);
      sock.pause();
      const request = pending.slice(0, end).trim();
      if (end > CONTROL_LIMITS.requestBytes) { sock.destroy(); return; }
      let answer: unknown;
      if (request === 'status') {
        try {
          answer = this.status();
        } catch (e) {
          answer = { error: `status failed: ${(e as Error).message}` };
        }
      } else {
        answer = { error: 'unknown request (the only one is "status")' };
      }
      sock.end(`${JSON.stringify(answer)}\n`);
    };
    sock.on('data', onData);
  }

  async close(): Promise<void> {
    process.off('exit', this.onExit);
    for (const s of this.clients) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.onExit();
  }
}
