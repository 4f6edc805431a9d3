import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readlinkSync } from 'node:fs';

test('tuntap demo: ping answered from TypeScript, then a VPN between two hosts; nothing left behind', () => {
  const linksBefore = execFileSync('ip', ['-o', 'link'], { encoding: 'utf8' });
  const out = execFileSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'demo', '--count', '2', '--seconds', '2'],
    { encoding: 'utf8', timeout: 90_000 });
  assert.match(out, /2 packets transmitted, 2 received/);
  assert.match(out, /ICMP echo reply, id \d+, seq 2/);
  assert.match(out, /ICMP6, echo reply, id \d+, seq 2/);
  assert.match(out, /answered 4 echo requests; all pings replied/);
  assert.match(out, /part 2/);
  // What the user sees is explained: the first packets through the tunnel and any drop.
  assert.match(out, /first packets: [\d., ]+ ms: the first waited for the WireGuard handshake/);
  for (const drop of /dropped on host A: (.*)/.exec(out)![1]!.split(/, (?=[a-zA-Z]+ \d)/)) {
    assert.match(drop, /^nothing$|^\w+ \d+ \(.+\)$/, `a drop without its reason: ${drop}`);
  }
  assert.doesNotMatch(out, /seed/i);
  // The device lived in the private namespace only: the root namespace is unchanged.
  assert.equal(execFileSync('ip', ['-o', 'link'], { encoding: 'utf8' }), linksBefore);
  assert.ok(readlinkSync('/proc/self/ns/net'));
});
