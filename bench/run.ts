// `npm run bench -- [NAME...] [--duration SEC]`: builds dist/, then runs every module in bench/
// that exports `run()` (or only the named ones), one after another, each printing its own
// figures and ratios against a baseline it measures in the same run. A module that is missing or
// fails to load is reported and skipped; the exit code says whether every selected benchmark
// completed. `--help` prints the usage and runs nothing.
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { basename } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export interface BenchOptions {
  /** Seconds per timed measurement (default 5). */
  durationSec: number;
  /** Arguments not consumed by run.ts. */
  argv: string[];
}

type BenchModule = { run?: (opts: BenchOptions) => unknown };

const benchDir = fileURLToPath(new URL('.', import.meta.url));

function available(): string[] {
  return readdirSync(benchDir)
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts') && f !== 'run.ts')
    .map((f) => basename(f, '.ts'))
    .sort();
}

function help(): string {
  return `usage: npm run bench -- [NAME...] [--duration SEC] [BENCH OPTIONS]
       (the -- keeps the options from npm, which would take --duration for itself)

Builds dist/, installs the Debian tools the baselines need, then runs the named benchmarks
(default: all) one after another; each prints its figures and its ratio to a baseline measured
in the same run.

  NAME            one of: ${available().join(', ')}
  --duration SEC  seconds per timed measurement (default 5; env BENCH_DURATION), also -t SEC
  --help          print this and run nothing
Other options go to the benchmarks, e.g. npm run bench -- forwarder --only=c,plain --rounds=3
(see the comment at the top of each bench/NAME.ts).`;
}

function parse(argv: string[]): { names: string[]; opts: BenchOptions } {
  const names: string[] = [];
  const rest: string[] = [];
  let durationSec = Number(process.env.BENCH_DURATION ?? 5);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--duration' || a === '-t') durationSec = Number(argv[++i]);
    else if (a.startsWith('--duration=')) durationSec = Number(a.slice('--duration='.length));
    else if (a.startsWith('-')) rest.push(a);
    else names.push(a.replace(/\.ts$/, ''));
  }
  if (!(durationSec > 0)) throw new Error('--duration must be a positive number of seconds');
  return { names, opts: { durationSec, argv: rest } };
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv.includes('--help') || argv.includes('-h')) { console.log(help()); return; }
  // `npm run bench --duration 3`: npm keeps the option (npm_config_duration) and passes the 3 on.
  if (process.env.npm_config_duration !== undefined) {
    console.error('npm took --duration for itself; put -- before the benchmark options: npm run bench -- --duration N');
    process.exitCode = 2;
    return;
  }
  const { names, opts } = parse(argv);
  execFileSync(process.execPath, [fileURLToPath(new URL('../node_modules/typescript/bin/tsc', import.meta.url)), '-p',
    fileURLToPath(new URL('../tsconfig.build.json', import.meta.url))], { stdio: 'inherit' });
  const { ensureTools, benchTools } = await import('../scripts/tools.mjs');
  ensureTools(benchTools);
  const all = available();
  const selected = names.length > 0 ? names : all;
  let failed = 0;
  for (const name of selected) {
    if (!all.includes(name)) {
      console.log(`\n== ${name}: no bench/${name}.ts here (available: ${all.join(', ')}); skipped`);
      continue;
    }
    let mod: BenchModule;
    try {
      mod = (await import(pathToFileURL(`${benchDir}${name}.ts`).href)) as BenchModule;
    } catch (e) {
      console.log(`\n== ${name}: could not be loaded (${(e as Error).message.split('\n')[0]}); skipped`);
      failed++;
      continue;
    }
    if (typeof mod.run !== 'function') continue;
    console.log(`\n== ${name}`);
    const started = Date.now();
    try {
      await mod.run(opts);
      console.log(`== ${name} done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    } catch (e) {
      failed++;
      console.log(`== ${name} failed: ${(e as Error).stack ?? e}`);
    }
  }
  if (failed > 0) process.exitCode = 1;
}

// Only when started as the entry point: bench modules import this file's types.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
