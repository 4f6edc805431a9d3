// The one error a packet parser may throw (src/base/parse-error.ts, shared with the offload codecs).
export { PacketParseError, need } from '../base/parse-error.js';
