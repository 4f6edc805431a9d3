// Runs inside a project that installed the packed tuntap, as a user's code would: imports every
// subpath export the package declares, opens a TUN inside the namespace argv[2] names, seals a
// packet with the addon's batched AEAD (OpenSSL functions the node binary exports) and compares
// it with node:crypto, and reports which addon file the process mapped. It keeps the device open
// until its stdin sends a line, so the test can look at it from outside.
import { createCipheriv } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';

const [ns, name] = process.argv.slice(2);
const manifest = JSON.parse(readFileSync('node_modules/tuntap/package.json', 'utf8'));
const exports = {};
for (const subpath of Object.keys(manifest.exports)) {
  const specifier = subpath === '.' ? 'tuntap' : `tuntap/${subpath.slice(2)}`;
  exports[specifier] = Object.keys(await import(specifier)).length;
}
const { openTun } = await import('tuntap/device');
const dev = openTun({ name, netns: ns });

const { sealBatch } = await import('tuntap/wireguard');
const key = Buffer.alloc(32, 7);
const plain = Buffer.from('a packet sealed by the installed addon');
const sealed = Buffer.alloc(plain.length + 16);
const lengths = new Uint32Array(1);
sealBatch({ keys: key, keyIndex: null, src: plain, srcOffsets: new Uint32Array([0]), srcLengths: new Uint32Array([plain.length]),
  counters: new BigUint64Array([5n]), dst: sealed, dstOffsets: new Uint32Array([0]), dstLengths: lengths, count: 1 });
const nonce = Buffer.alloc(12);
nonce.writeBigUInt64LE(5n, 4);
const cipher = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 });
const expected = Buffer.concat([cipher.update(plain), cipher.final(), cipher.getAuthTag()]);
const aead = lengths[0] === expected.length && sealed.equals(expected);

const addons = readFileSync('/proc/self/maps', 'utf8').split('\n')
  .map((line) => line.split(/\s+/)[5]).filter((path) => path?.endsWith('.node'));
console.log(JSON.stringify({ exports, device: dev.name, ifindex: dev.ifindex, aead, addons: [...new Set(addons)], arch: process.arch }));
for await (const _ of createInterface({ input: process.stdin })) break;
dev.closeSync();
