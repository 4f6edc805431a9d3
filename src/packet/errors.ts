// The one error a packet parser may throw (src/base/parse-error.ts, shared with the offload
// codecs), and the same finding as plain data for the views' tryWrap().
import { PacketParseError } from '../base/parse-error.js';
export { PacketParseError, need } from '../base/parse-error.js';

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
