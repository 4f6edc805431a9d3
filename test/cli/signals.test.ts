// A long-running command says it is ready only once SIGTERM would stop it cleanly: a service
// manager (or a test) may signal it the moment it reads that line, and a signal with no
// handler kills the process with its devices and routing in place. Each write of the real
// process is tagged with how many SIGTERM handlers it had at that moment (a preload through
// NODE_OPTIONS), which makes the order visible without racing it.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TestNet, uniqueName } from '../helpers/netns.js';
import { readableDir } from '../helpers/user.js';
import { runUntilReady } from './helpers.js';

const TAG = encodeURIComponent(`for (const s of [process.stdout, process.stderr]) {
  const write = s.write.bind(s);
  s.write = (chunk, ...rest) => write('[sigterm ' + process.listenerCount('SIGTERM') + '] ' + chunk, ...rest);
}`);
const tagWrites = ['env', `NODE_OPTIONS=--import=data:text/javascript,${TAG}`];

describe('ready only with a SIGTERM handler in place', () => {
  const net = new TestNet();
  let ns: string;
  let dir: string;
  before(() => {
    ns = net.namespace('cs');
    dir = readableDir('tuntap-cli-signals-');
  });
  after(() => {
    net.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  const readyThenTerm = async (args: string[], ready: string, stream: 'stdout' | 'stderr') => {
    await runUntilReady(ns, args, ready, stream, {
      prefix: tagWrites,
      whileUp: (line) => assert.match(line, /^\[sigterm [1-9]\d*\] /, `the ready line was written before a SIGTERM handler: ${line}`),
    });
  };

  test('socks: its ready line', () => readyThenTerm(['socks', '--proxy', 'direct', '--json', '--name', uniqueName('sg')], '"event":"ready"', 'stdout'));

  test('wg up: "NAME is up"', () => {
    const name = uniqueName('wgs');
    const conf = join(dir, `${name}.conf`);
    writeFileSync(conf, `[Interface]\nPrivateKey = ${randomBytes(32).toString('base64')}\nAddress = 198.18.125.1/24\n`, { mode: 0o600 });
    return readyThenTerm(['wg', 'up', conf], `${name} is up`, 'stderr');
  });

  test('bridge: its first line', () => readyThenTerm(['bridge', uniqueName('sa'), uniqueName('sb')], 'bridging ', 'stderr'));
});
