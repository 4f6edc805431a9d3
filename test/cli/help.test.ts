// Help at every level exits 0; the top-level summary lists every option and subcommand the
// commands' own help lists, with one spelling for each option's argument; --version; and
// socks and http say which proxies each takes (and take just those).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { cli } from './helpers.js';

const commands = ['demo', 'add', 'del', 'list', 'show', 'dump', 'wg', 'socks', 'http', 'bridge', 'top'];
const wgCommands = ['genkey', 'pubkey', 'genpsk', 'up', 'down', 'syncconf', 'show', 'demo'];

const helps = new Map<string, string>();

/** What `tuntap ARGS` prints, checked to be help (asked once per ARGS). */
function help(args: string[]): string {
  const cached = helps.get(args.join(' '));
  if (cached !== undefined) return cached;
  const r = cli(args);
  assert.equal(r.code, 0, `tuntap ${args.join(' ')}: ${r.stderr}`);
  assert.equal(r.stderr, '', `tuntap ${args.join(' ')}`);
  assert.match(r.stdout, /usage: /, `tuntap ${args.join(' ')}`);
  helps.set(args.join(' '), r.stdout);
  return r.stdout;
}

/**
 * Options a help text defines (--long and -x): in its usage lines, and at the head of each
 * option's line, before its description (other programs' options in the prose do not count).
 */
function optionsIn(text: string): Set<string> {
  const heads = text.split('\n').map((l) => {
    if (/^\s*usage: |^\s+tuntap /.test(l)) return l;
    const t = l.trimStart();
    return t.startsWith('-') ? t.split(/\s{2,}/)[0]! : '';
  });
  return allOptions(heads.join('\n'));
}

const allOptions = (text: string) => new Set([...text.matchAll(/(?<![\w-])(--?[a-zA-Z][\w-]*)/g)].map((m) => m[1]!));

/** The summary's block for one command: its line and the indented lines under it. */
function block(summary: string, command: string): string {
  const lines = summary.split('\n');
  const start = lines.findIndex((l) => new RegExp(`^  ${command}\\s`).test(l));
  assert.ok(start >= 0, `the summary lists ${command}`);
  let end = start + 1;
  while (end < lines.length && /^ {6,}\S/.test(lines[end]!)) end++;
  return lines.slice(start, end).join('\n');
}

test('--help exits 0 at every level, and bare commands that need more say so with 2', () => {
  for (const h of [['--help'], ['-h'], ['help']]) help(h);
  for (const c of commands) help([c, '--help']);
  for (const c of wgCommands) help(['wg', c, '--help']);
  help(['bridge', 'vm-tap', '--help']);
  help(['bridge', 'vm-tap', 'add', '--help']);
  const bare = cli([]);
  assert.equal(bare.code, 2);
  assert.match(bare.stderr, /usage: tuntap <command>/);
});

test('--version prints the package version', () => {
  const r = cli(['--version']);
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  assert.equal(r.code, 0);
  assert.equal(r.stdout.trim(), `tuntap ${pkg.version}`);
});

test('the summary lists every option and subcommand of every command', () => {
  const summary = help(['--help']);
  const own: Record<string, string> = Object.fromEntries(commands.map((c) => [c, help([c, '--help'])]));
  for (const c of commands) {
    // http takes socks's options; its block says so.
    const listed = allOptions(block(summary, c === 'http' ? 'socks' : c));
    const options = [...optionsIn(own[c]!)];
    if (c === 'wg') for (const w of wgCommands) options.push(...optionsIn(help(['wg', w, '--help'])));
    if (c === 'bridge') options.push(...optionsIn(help(['bridge', 'vm-tap', '--help'])));
    for (const o of options) assert.ok(listed.has(o) || o === '--help' || o === '-h', `the summary's ${c} lacks ${o}`);
  }
  for (const w of wgCommands) assert.match(block(summary, 'wg'), new RegExp(`\\b${w}\\b`), `wg ${w}`);
  assert.match(block(summary, 'bridge'), /vm-tap add NAME/);
  assert.match(block(summary, 'bridge'), /vm-tap del NAME/);
  assert.match(block(summary, 'add'), /--netns NS/);
});

test('an option is spelt with the same argument everywhere', () => {
  const texts = [help(['--help']), ...commands.map((c) => help([c, '--help'])),
    ...wgCommands.map((w) => help(['wg', w, '--help'])), help(['bridge', 'vm-tap', '--help'])];
  const spellings = new Map<string, Set<string>>();
  for (const t of texts) {
    for (const m of t.matchAll(/(?<![\w-])(--[a-z][\w-]*) ([A-Z][A-Z_]*)\b/g)) {
      if (!spellings.has(m[1]!)) spellings.set(m[1]!, new Set());
      spellings.get(m[1]!)!.add(m[2]!);
    }
  }
  for (const [option, args] of spellings) assert.equal(args.size, 1, `${option} is written with ${[...args].join(' and ')}`);
  assert.deepEqual([...spellings.get('--netns')!], ['NS']);
});

test('wg up --help describes the configuration file and its keys', () => {
  const text = help(['wg', 'up', '--help']);
  for (const key of ['[Interface]', 'PrivateKey', 'ListenPort', 'Address', 'MTU', 'Table', 'FwMark', 'PreUp', 'PostUp',
    'PreDown', 'PostDown', 'DNS', 'SaveConfig', '[Peer]', 'PublicKey', 'PresharedKey', 'AllowedIPs', 'Endpoint', 'PersistentKeepalive']) {
    assert.ok(text.includes(key), `wg up --help names ${key}`);
  }
});

test('socks and http say which proxies each takes', () => {
  const proxyLine = (text: string) => /--proxy URL[^\n]*(\n {10,}[^\n]*)*/.exec(text)![0];
  const socks = proxyLine(help(['socks', '--help']));
  const http = proxyLine(help(['http', '--help']));
  assert.match(socks, /socks5:\/\//);
  assert.match(socks, /socks4a:\/\//);
  assert.doesNotMatch(socks, /http:\/\//);
  assert.match(http, /http:\/\//);
  assert.doesNotMatch(http, /socks5?:\/\//);
  for (const both of [socks, http]) assert.match(both, /direct.*reject/s);
});

test('no help text speaks of "seeds"', () => {
  const texts = [help(['--help']), ...commands.map((c) => help([c, '--help'])), ...wgCommands.map((w) => help(['wg', w, '--help']))];
  for (const t of texts) assert.doesNotMatch(t, /seed/i);
});
