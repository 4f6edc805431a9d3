// The upstream proxy's password: taken from the proxy URL, a file or an environment variable (the
// last two keep it out of the argv that `ps` shows every user), and kept out of every message
// and log line.
import { readFileSync, statSync } from 'node:fs';
import { checkCredentials, type Upstream } from './upstream.js';

/** The environment variable a password may come from. */
export const PASSWORD_ENV = 'TUNTAP_PROXY_PASSWORD';

export interface PasswordSources {
  /** A file holding the password (one trailing newline is ignored). */
  file?: string;
  /** The environment (default process.env). */
  env?: NodeJS.ProcessEnv;
}

export interface ResolvedUpstream {
  upstream: Upstream;
  /** Where the password came from, if there is one. */
  passwordFrom?: 'url' | 'file' | 'env';
  /** Something for the user to know (a file readable by others). */
  warning?: string;
}

/**
 * Fills in the upstream's password from `file` or the environment when the URL has none.
 * Throws TypeError (with no secret in its message) when both the URL and a file give one, or the
 * file cannot be read.
 */
export function resolvePassword(up: Upstream, sources: PasswordSources = {}): ResolvedUpstream {
  const env = sources.env ?? process.env;
  if (sources.file !== undefined) {
    if (up.password !== undefined) throw new TypeError('the proxy URL has a password and --proxy-password-file gives another: keep one');
    let text: string;
    try {
      text = readFileSync(sources.file, 'utf8');
    } catch (e) {
      throw new TypeError(`cannot read the password file ${sources.file} (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
    }
    const withPassword = { ...up, password: text.replace(/\r?\n$/, '') };
    checkCredentials(withPassword);
    const mode = statSync(sources.file).mode;
    const warning = mode & 0o077 ? `the password file ${sources.file} is readable by other users (chmod 600 it)` : undefined;
    return { upstream: withPassword, passwordFrom: 'file', ...(warning ? { warning } : {}) };
  }
  if (up.password !== undefined) return { upstream: up, passwordFrom: 'url' };
  const fromEnv = env[PASSWORD_ENV];
  if (fromEnv !== undefined && fromEnv !== '' && up.kind !== 'direct' && up.kind !== 'reject') {
    const withPassword = { ...up, password: fromEnv };
    checkCredentials(withPassword);
    return { upstream: withPassword, passwordFrom: 'env' };
  }
  return { upstream: up };
}

/** A function that replaces each secret (as written, and %-encoded as in a URL) with `***`. */
export function redactor(secrets: readonly (string | undefined)[]): (text: string) => string {
  const forms = new Set<string>();
  for (const s of secrets) {
    if (!s) continue;
    forms.add(s);
    forms.add(encodeURIComponent(s));
  }
  const sorted = [...forms].sort((a, b) => b.length - a.length);
  if (sorted.length === 0) return (text) => text;
  return (text) => {
    let out = text;
    for (const f of sorted) out = out.split(f).join('***');
    return out;
  };
}
