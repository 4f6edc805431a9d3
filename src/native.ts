// Loads the compiled addon (build/Release/tuntap.node) from the package root, whether this file
// runs from src/ (tsx) or dist/src/ (compiled), or the one TUNTAP_ADDON names. Each layer
// declares the slice of the addon it uses as its own interface and casts `addon` to it, so
// layers stay independent.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function findAddon(): string {
  // A build other than build/ (scripts/test-asan.mjs points this at the sanitizer build).
  const chosen = process.env.TUNTAP_ADDON;
  if (chosen) return chosen;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    for (const kind of ['Release', 'Debug']) {
      const candidate = join(dir, 'build', kind, 'tuntap.node');
      if (existsSync(candidate)) return candidate;
    }
    dir = dirname(dir);
  }
  throw new Error('tuntap: the native addon is not built; run `npm run build:native` (needs g++ and python3)');
}

export const addon: unknown = createRequire(import.meta.url)(findAddon());

/** A size option that becomes a native buffer's size: a positive integer, or a RangeError. */
export function positiveInteger(value: number, what: string): number {
  if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`${what} must be a positive integer, not ${value}`);
  return value;
}
