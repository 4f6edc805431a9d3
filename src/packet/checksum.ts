// Internet checksums live in the base layer (src/base/checksum.ts), below the device, which
// completes them for offloaded packets; the packet layer offers them to its users from here.
export * from '../base/checksum.js';
