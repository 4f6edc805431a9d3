// Loads the native addon the way the package's install script chose it (node-gyp-build): a
// build from source in build/Release (a checkout, or an install that fell back to node-gyp),
// else the prebuild for this platform in prebuilds/linux-<arch>/; or the file TUNTAP_ADDON
// names (the ASan build). Each layer declares the slice of the addon it uses as its own
// interface and casts `addon` to it, so layers stay independent.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UserError } from './errors.js';

const require = createRequire(import.meta.url);
const nodeGypBuild = require('node-gyp-build') as { path(dir: string): string };

const rebuildHint = 'build it from source with `npm rebuild tuntap --build-from-source` (needs g++, make and python3)';

/** The package root: the nearest directory above this file (src/ or dist/src/) with a package.json. */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4 && !existsSync(join(dir, 'package.json')); i++) dir = dirname(dir);
  return dir;
}

function findAddon(root: string): string {
  try {
    return nodeGypBuild.path(root);
  } catch (e) {
    throw new UserError(`tuntap: no native addon for ${process.platform}-${process.arch} in ${root}: no build in build/ and no prebuild that fits; ${rebuildHint}`, { cause: e });
  }
}

function loadAddon(): unknown {
  // A build other than the package's own (scripts/test-asan.mjs points this at the sanitizer build).
  const chosen = process.env.TUNTAP_ADDON;
  if (chosen) return require(chosen);
  const root = packageRoot();
  const path = findAddon(root);
  try {
    return require(path);
  } catch (e) {
    // A prebuild is for glibc 2.34 or newer; an older glibc or another libc refuses it here.
    const which = relative(root, path);
    throw new UserError(`tuntap: the native addon ${which} does not load on this system (${(e as Error).message.split('\n')[0]}); ${rebuildHint}`, { cause: e });
  }
}

export const addon: unknown = loadAddon();

/** A size option that becomes a native buffer's size: a positive integer, or a RangeError. */
export function positiveInteger(value: number, what: string): number {
  if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`${what} must be a positive integer, not ${value}`);
  return value;
}

/**
 * native/checksum.cc: for i < count, sums[i] becomes the folded (uncomplemented) Internet
 * checksum sum of sums[i] and buffer[starts[i] .. ends[i]). One call for a whole batch of
 * segments; throws RangeError when a range lies outside the buffer or count exceeds the arrays.
 */
export const checksumRanges = (addon as {
  checksumRanges(buffer: Uint8Array, starts: Uint32Array, ends: Uint32Array, sums: Uint32Array, count: number): void;
}).checksumRanges;
