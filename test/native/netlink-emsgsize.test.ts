// Issue #12: a netlink receive that met a datagram larger than the room left in its buffer threw
// EMSGSIZE and lost the datagrams it had already read, and the big one with them. Now it returns
// what it read and leaves the big datagram queued for the next receive; only a datagram larger
// than the whole buffer is dropped (EMSGSIZE), and the ones after it still arrive.
//
// The datagrams come from a real second netlink socket (NETLINK_USERSOCK, unicast to our port)
// in a test namespace, sent by python3 (node-gyp's own dependency, so present wherever the
// addon builds).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { TestNet, nsExec } from '../helpers/netns.js';
import { inNetns } from '../../src/netns.js';
import { nativeNetlink } from '../../src/netlink/socket.js';
import { addon } from '../../src/native.js';

const net = new TestNet();
after(() => net.cleanup());

const NETLINK_USERSOCK = 2;
const { closeFd } = addon as { closeFd(fd: number): void };

const SENDER = `
import socket, sys
s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, ${NETLINK_USERSOCK})
s.bind((0, 0))
port = int(sys.argv[1])
for size, fill in zip(map(int, sys.argv[2].split(',')), b'abcdefgh'):
    s.sendto(bytes([fill]) * size, (port, 0))
`;

test('a datagram larger than the room left stays queued; the ones read before it are delivered', () => {
  const ns = net.namespace('ne');
  const { fd, portId } = inNetns(ns, () => nativeNetlink.open(NETLINK_USERSOCK, []));
  try {
    const buffer = Buffer.alloc(128 * 1024);
    // 100 bytes, then one that fits an empty buffer but not what is left after the first, then
    // one larger than the whole buffer, then a small one.
    nsExec(ns, 'python3', '-c', SENDER, String(portId), [100, 131_000, 200_000, 50].join(','));

    assert.equal(nativeNetlink.recv(fd, buffer, 1000), 100, 'the first datagram alone');
    assert.ok(buffer.subarray(0, 100).every((b) => b === 0x61));

    assert.equal(nativeNetlink.recv(fd, buffer, 1000), 131_000, 'the second, whole, on the next receive');
    assert.ok(buffer.subarray(0, 131_000).every((b) => b === 0x62));

    assert.throws(() => nativeNetlink.recv(fd, buffer, 1000), (e: Error & { errno?: number; syscall?: string }) =>
      e.errno === 90 /* EMSGSIZE */ && e.syscall === 'recv(AF_NETLINK)');

    const last = nativeNetlink.recv(fd, buffer, 1000);
    assert.ok(last >= 50 && last <= 52, `the datagram after the oversized one arrives (${last} bytes)`);
    assert.ok(buffer.subarray(0, 50).every((b) => b === 0x64));
    assert.equal(nativeNetlink.recv(fd, buffer, 0), 0, 'nothing else is queued');
  } finally {
    closeFd(fd);
  }
});
