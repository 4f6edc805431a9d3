// configureInterface over TestNet.veth (itself made over rtnetlink): the configured namespaces
// really carry traffic, checked with ping, and ip sees the configuration.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { TestNet, nsExec } from '../helpers/netns.js';
import { configureInterface, getLink } from '../../src/netlink/index.js';
import { ipJson } from './ip.js';

describe('configureInterface', () => {
  const net = new TestNet();
  let a: string;
  let b: string;
  let ends: { a: string; b: string };
  before(() => {
    a = net.namespace('ca');
    b = net.namespace('cb');
    ends = net.veth(a, b, { mtu: 1400 });
  });
  after(() => net.cleanup());

  test('addresses, MTU, up and routes make two namespaces reach each other over v4 and v6', () => {
    assert.equal(getLink(ends.a, { netns: a }).mtu, 1400);
    assert.equal(getLink(ends.b, { netns: b }).up, true);
    configureInterface(ends.a, {
      mtu: 1300, up: true, addresses: ['198.18.100.1/30', { address: 'fd00:100::1/64', nodad: true }],
      routes: [{ dst: '198.18.200.0/24', gateway: '198.18.100.2' }, { dst: 'fd00:200::/64', gateway: 'fd00:100::2' }],
    }, { netns: a });
    configureInterface(ends.b, {
      mtu: 1300, up: true, addresses: ['198.18.100.2/30', { address: 'fd00:100::2/64', nodad: true }, '198.18.200.1/32', { address: 'fd00:200::1/128', nodad: true }],
    }, { netns: b });
    // running it again changes nothing and does not fail
    configureInterface(ends.b, { mtu: 1300, up: true, addresses: ['198.18.100.2/30'] }, { netns: b });
    assert.equal(ipJson(a, 'link', 'show', 'dev', ends.a)[0].mtu, 1300);
    assert.equal(ipJson(a, 'route', 'show', '198.18.200.0/24')[0].gateway, '198.18.100.2');
    assert.match(nsExec(a, 'ping', '-c', '1', '-W', '2', '198.18.200.1'), /1 received/);
    assert.match(nsExec(a, 'ping', '-6', '-c', '1', '-W', '2', 'fd00:200::1'), /1 received/);
  });
});
