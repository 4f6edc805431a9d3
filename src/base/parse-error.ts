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

/** Throws a PacketParseError unless `end - off >= need`. */
export function need(protocol: string, off: number, end: number, need: number, what = 'header'): void {
  if (end - off < need) {
    throw new PacketParseError(protocol, `truncated ${what}: need ${need} bytes, have ${Math.max(0, end - off)}`, off);
  }
}
