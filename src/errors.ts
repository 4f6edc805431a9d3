// Typed errors. The native core throws plain errors carrying `errno` and `syscall`; every layer
// turns them into a TuntapError whose message is a sentence a user can act on.
import { constants } from 'node:os';

const errnoNames = new Map<number, string>();
for (const [name, value] of Object.entries(constants.errno)) {
  if (!errnoNames.has(value)) errnoNames.set(value, name);
}

/** errno number → its symbolic name (EPERM, EBUSY, ...). */
export function errnoName(errno: number): string {
  return errnoNames.get(errno) ?? `E${errno}`;
}

/**
 * A failure the user caused or can fix: bad input, a missing file or privilege, a name already
 * taken. Its message names what failed and why in one sentence, and the CLI prints it as one
 * line. Any other error that reaches the CLI is a bug in tuntap.
 */
export class UserError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'UserError';
  }
}

/** A failed system call, in words (a UserError: the usual causes are privilege, names, state). */
export class TuntapError extends UserError {
  /** Symbolic errno name, e.g. "EBUSY" (like Node's own system errors). */
  readonly code: string;
  readonly errno: number;
  readonly syscall: string;

  constructor(syscall: string, errno: number, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TuntapError';
    this.syscall = syscall;
    this.errno = errno;
    this.code = errnoName(errno);
  }
}

/** Describes one failure for the user: `explain(code)` returns the sentence, or undefined for a generic one. */
export type Explain = (code: string) => string | undefined;

interface NativeError { errno: number; syscall: string; message: string }

function isNativeError(e: unknown): e is NativeError {
  return typeof e === 'object' && e !== null && typeof (e as NativeError).errno === 'number'
    && typeof (e as NativeError).syscall === 'string';
}

const generic: Record<string, string> = {
  EPERM: 'operation not permitted: it needs CAP_NET_ADMIN (run as root)',
  EACCES: 'permission denied',
  ENOENT: 'no such file or device',
  ENODEV: 'no such device',
  EBUSY: 'the device is busy',
  EEXIST: 'it already exists',
  EINVAL: 'the kernel rejected an invalid argument',
  EBADF: 'the file descriptor is closed',
  EBADFD: 'the file descriptor is not attached to a device',
  EMSGSIZE: 'the message is too long',
  ENOBUFS: 'no buffer space available',
  ENOMEM: 'out of memory',
};

/** Turns a native error into a TuntapError, with `what` naming the action ("creating tun0"). */
export function toTuntapError(e: unknown, what: string, explain?: Explain): unknown {
  if (!isNativeError(e)) return e;
  const code = errnoName(e.errno);
  const sentence = explain?.(code) ?? generic[code] ?? `failed with ${code}`;
  return new TuntapError(e.syscall, e.errno, `${what}: ${sentence} (${e.syscall}: ${code})`, { cause: e });
}

/** Runs a native call, rethrowing its failure as a TuntapError. */
export function call<T>(what: string, fn: () => T, explain?: Explain): T {
  try {
    return fn();
  } catch (e) {
    throw toTuntapError(e, what, explain);
  }
}

const fileReasons: Record<string, string> = {
  ENOENT: 'no such file or directory',
  ENOTDIR: 'a component of the path is not a directory',
  EISDIR: 'it is a directory',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'the file system is read-only',
  ENOSPC: 'no space left on the device',
  EEXIST: 'it already exists',
  ENAMETOOLONG: 'the name is too long',
  ELOOP: 'too many symbolic links',
};

/**
 * A failed file operation (a Node system error) as a UserError: "PATH: cannot DOING: reason".
 * Anything that is not a system error is returned as it is.
 */
export function fileError(path: string, doing: string, e: unknown): unknown {
  const code = (e as NodeJS.ErrnoException | null)?.code;
  if (typeof code !== 'string' || !/^E[A-Z0-9]+$/.test(code)) return e;
  return new UserError(`${path}: cannot ${doing}: ${fileReasons[code] ?? code} (${code})`, { cause: e });
}
