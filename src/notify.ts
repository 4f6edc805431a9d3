// Telling a service manager where a long-running command stands (sd_notify(3)): READY=1 once it
// serves, RELOADING=1 / READY=1 around a reload, STOPPING=1 on the way down, STATUS= in words.
// systemd names its socket in $NOTIFY_SOCKET (a path, or @ and an abstract name); without it
// there is no manager to tell and nothing is sent. The datagram goes out from the native core
// (native/notify.cc): Node has no AF_UNIX datagram socket.
import { addon } from './native.js';
import { call, UserError } from './errors.js';

interface NotifyNative {
  notifySend(address: string, message: string): void;
}
const native = addon as NotifyNative;

/** What one notification may hold: systemd reads at most this many bytes of it. */
export const NOTIFY_MAX_BYTES = 4096;

/** The state as the protocol writes it: `KEY=VALUE` lines, keys in capitals. */
export type NotifyState = Record<string, string | number>;

function format(state: NotifyState): string {
  const lines: string[] = [];
  for (const [key, value] of Object.entries(state)) {
    const text = String(value);
    // A newline in a value would start a line of its own, i.e. another key (READY=1 forged
    // from a STATUS that carries an interface or host name).
    if (!/^[A-Z][A-Z0-9_]*$/.test(key)) throw new RangeError(`notify: "${key}" is not a notification key`);
    if (/[\n\0]/.test(text)) throw new RangeError(`notify: the value of ${key} holds a newline or NUL`);
    lines.push(`${key}=${text}`);
  }
  const message = lines.join('\n');
  if (message.length === 0) throw new RangeError('notify: nothing to send');
  if (Buffer.byteLength(message) > NOTIFY_MAX_BYTES) throw new RangeError(`notify: the message is over ${NOTIFY_MAX_BYTES} bytes`);
  return message;
}

/** The socket $NOTIFY_SOCKET names, checked as systemd's own client checks it; undefined when unset. */
export function notifySocket(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const address = env.NOTIFY_SOCKET;
  if (address === undefined || address === '') return undefined;
  if (!/^[/@]./.test(address)) {
    throw new UserError(`NOTIFY_SOCKET="${address}" is neither an absolute path nor an abstract name (@name)`);
  }
  return address;
}

/**
 * Sends one notification to the service manager, if there is one: true when sent, false without
 * $NOTIFY_SOCKET. A socket that cannot be reached is a TuntapError (the manager will time out
 * waiting; the caller says so).
 */
export function notifyManager(state: NotifyState, env: NodeJS.ProcessEnv = process.env): boolean {
  const address = notifySocket(env);
  if (address === undefined) return false;
  const message = format(state);
  call(`notifying the service manager at ${address}`, () => native.notifySend(address, message), (code) => ({
    ENOENT: 'no socket at that path',
    ECONNREFUSED: 'nothing receives on that socket',
    EAGAIN: 'its queue is full',
  })[code]);
  return true;
}
