// Builds a C baseline from bench/c with the system compiler, once per source change.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const cDir = fileURLToPath(new URL('../c/', import.meta.url));

/** Compiles bench/c/NAME.c with `cc -O2` and returns the binary's path. */
export function buildC(name: string): string {
  const source = join(cDir, `${name}.c`);
  const hash = createHash('sha256').update(readFileSync(source)).digest('hex').slice(0, 12);
  const dir = join(tmpdir(), 'tuntap-bench');
  mkdirSync(dir, { recursive: true });
  const binary = join(dir, `${name}-${hash}`);
  if (!existsSync(binary)) execFileSync('cc', ['-O2', '-Wall', '-o', binary, source], { stdio: 'inherit' });
  return binary;
}
