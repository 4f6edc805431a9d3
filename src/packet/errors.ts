// The one error a packet parser may throw. Parsers check every length before reading, so a short
// or inconsistent packet becomes a PacketParseError naming the protocol and what was wrong.
export class PacketParseError extends Error {
  /** Protocol whose header was malformed ("ipv4", "tcp", ...). */
  readonly protocol: string;
  /** Byte offset (in the buffer given to the parser) where the problem was found. */
  readonly offset: number;

  constructor(protocol: string, message: string, offset = 0) {
    super(`${protocol}: ${message}`);
    this.name = 'PacketParseError';
    this.protocol = protocol;
    this.offset = offset;
  }
}

/**
 * What a header check found wrong, as plain data: the views' tryWrap() answers false with no
 * Error made (a flood of malformed packets must not cost a stack trace each), wrap() throws it.
 */
export interface ParseProblem { protocol: string; message: string; offset: number }

export function problem(protocol: string, message: string, offset: number): ParseProblem {
  return { protocol, message, offset };
}

export function parseError(p: ParseProblem): PacketParseError {
  return new PacketParseError(p.protocol, p.message, p.offset);
}

/** A problem unless `end - off >= need`. */
export function missing(protocol: string, off: number, end: number, need: number, what = 'header'): ParseProblem | undefined {
  if (end - off >= need) return undefined;
  return problem(protocol, `truncated ${what}: need ${need} bytes, have ${Math.max(0, end - off)}`, off);
}

/** Throws a PacketParseError unless `end - off >= need`. */
export function need(protocol: string, off: number, end: number, need: number, what = 'header'): void {
  if (end - off < need) throw parseError(missing(protocol, off, end, need, what)!);
}
