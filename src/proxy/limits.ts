// File descriptors against the open-files limit. Each proxied TCP connection holds two (the
// accepted socket and the upstream one), each UDP session two (its socket and, through SOCKS5,
// the association's control connection). Node raises the soft RLIMIT_NOFILE to the hard limit
// when it starts; what is left to do is to say so when the sessions allowed cannot fit.
import { readFileSync } from 'node:fs';

export interface DescriptorLimit {
  soft: number;
  hard: number;
}

/** This process's RLIMIT_NOFILE, from /proc/self/limits (Infinity for "unlimited"); undefined if unreadable. */
export function descriptorLimit(limitsText?: string): DescriptorLimit | undefined {
  let text = limitsText;
  try {
    text ??= readFileSync('/proc/self/limits', 'utf8');
  } catch {
    return undefined;
  }
  const m = /^Max open files\s+(\S+)\s+(\S+)/m.exec(text);
  if (!m) return undefined;
  const value = (v: string): number => (v === 'unlimited' ? Infinity : Number(v));
  return { soft: value(m[1]!), hard: value(m[2]!) };
}

/** TCP sessions when the user sets no --max-sessions and the open-files limit has room. */
export const DEFAULT_MAX_SESSIONS = 20000;
/** UDP sessions at once (each a socket, and through SOCKS5 a control connection). */
export const MAX_UDP_SESSIONS = 4096;

/** Descriptors the proxy may hold at once besides its sessions: listeners, TUN, DNS over TCP, Node's own. */
const FIXED_DESCRIPTORS = 64 + 16 + 256;

export interface DescriptorNeeds {
  maxSessions: number;
  /** UDP sessions (0 when UDP is not relayed). */
  udpSessions: number;
}

/** The descriptors the configured sessions can need at once. */
export function descriptorsNeeded(needs: DescriptorNeeds): number {
  return FIXED_DESCRIPTORS + 2 * needs.maxSessions + 2 * needs.udpSessions;
}

/**
 * How many TCP sessions the limit holds descriptors for (at least 1, at most `cap`): what the
 * proxy allows when the user did not choose, so a default start never warns and never hits EMFILE.
 */
export function sessionsThatFit(udpSessions: number, cap: number, limit = descriptorLimit()): number {
  if (!limit) return cap;
  return Math.max(1, Math.min(cap, Math.floor((limit.soft - FIXED_DESCRIPTORS - 2 * udpSessions) / 2)));
}

/** A warning when the limit cannot hold what `needs` allows, else undefined. */
export function checkDescriptors(needs: DescriptorNeeds, limit = descriptorLimit()): string | undefined {
  if (!limit) return undefined;
  const needed = descriptorsNeeded(needs);
  const notes: string[] = [];
  if (limit.soft < limit.hard) notes.push(`the open-files soft limit (${limit.soft}) is below the hard one (${limit.hard})`);
  if (needed > limit.soft) {
    const fits = sessionsThatFit(needs.udpSessions, needs.maxSessions, limit);
    notes.push(`${needs.maxSessions} sessions need up to ${needed} file descriptors but the limit is ${limit.soft}: `
      + `about ${fits} fit; beyond that connections fail with EMFILE (raise the hard limit, e.g. ulimit -Hn, or lower --max-sessions)`);
  }
  return notes.length ? notes.join('; ') : undefined;
}
