// The byte helpers the protocol views share (src/base/bytes.ts), and address text ⇄ bytes
// (src/addr.ts): one implementation each for every layer.
export { u16, u32, put16, put32, bytesEqual, copyBytes } from '../base/bytes.js';
export { formatMac, parseMac, formatIPv4, parseIPv4, formatIPv6, parseIPv6, parseIP, formatIP } from '../addr.js';
