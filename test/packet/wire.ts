// Test plumbing for the packet layer's kernel tests: two namespaces joined by a user-space
// wire between two devices (packets read from one are written to the other), and small node
// programs that make real kernel traffic.
import { waitForOutput } from '../helpers/wait.js';
import { nsSpawn, nsRun } from '../helpers/netns.js';
import { configureInterface } from '../../src/netlink/index.js';
import type { TunDevice, PacketBatch } from '../../src/device/index.js';

/** Copies everything from `from` to `to` until `signal` aborts; `transform` may replace a batch's packets. */
export async function pump(from: TunDevice, to: TunDevice, signal: AbortSignal,
  forward: (batch: PacketBatch, to: TunDevice) => Promise<unknown> = (b, t) => t.writeBatch(Array.from({ length: b.count }, (_, i) => b.packet(i)))): Promise<void> {
  try {
    for (;;) {
      const batch = await from.readBatch({ signal });
      if (!batch) return;
      await forward(batch, to);
    }
  } catch (e) {
    if (!signal.aborted) throw e;
  }
}

/** Gives `dev` both addresses and brings it up, over tuntap's rtnetlink. */
export function addAddresses(ns: string, dev: string, v4: string, v6: string): void {
  configureInterface(dev, { addresses: [v4, { address: v6, nodad: true }], up: true }, { netns: ns });
}

/** TCP and UDP echo servers on both families (port tcpPort / udpPort); killed at cleanup. */
export function startEchoServers(ns: string, v4: string, v6: string, tcpPort: number, udpPort: number): ReturnType<typeof nsSpawn> {
  const script = `
const net = require('node:net'); const dgram = require('node:dgram');
let ready = 0; const up = () => { if (++ready === 4) console.log('ready'); };
for (const host of ${JSON.stringify([v4, v6])}) {
  net.createServer((s) => { s.on('data', (d) => s.write(d)); s.on('end', () => s.end()); s.on('error', () => {}); }).listen(${tcpPort}, host, up);
  const u = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
  u.on('message', (m, r) => u.send(m, r.port, r.address));
  u.bind(${udpPort}, host, up);
}`;
  return nsSpawn(ns, process.execPath, ['-e', script]);
}

/** Waits until the helper process prints `text`. */
export async function waitFor(child: ReturnType<typeof nsSpawn>, text: string, ms = 10_000): Promise<void> {
  await waitForOutput(child, text, 'the helper process', { timeoutMs: ms });
}

/**
 * Runs a TCP round trip of `bytes` random bytes and a UDP echo against each address; prints
 * "HOST RECEIVED intact|corrupt UDPLEN" per address and resolves with that output.
 */
export async function clientTraffic(ns: string, targets: string[], tcpPort: number, udpPort: number, bytes = 5000): Promise<string> {
  const script = `
const net = require('node:net'); const dgram = require('node:dgram'); const crypto = require('node:crypto');
async function tcp(host) {
  return new Promise((resolve, reject) => {
    const s = net.connect(${tcpPort}, host);
    const data = crypto.randomBytes(${bytes});
    const hash = crypto.createHash('sha256');
    let got = 0;
    s.on('connect', () => { s.end(data); });
    s.on('data', (d) => { got += d.length; hash.update(d); });
    s.on('end', () => resolve(got + ' ' + (hash.digest('hex') === crypto.createHash('sha256').update(data).digest('hex') ? 'intact' : 'corrupt')));
    s.on('error', reject);
    setTimeout(() => reject(new Error('tcp timeout ' + host)), ${Math.max(8000, bytes / 100)});
  });
}
async function udp(host) {
  return new Promise((resolve, reject) => {
    const u = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
    u.on('message', (m) => { u.close(); resolve(m.length); });
    u.send(Buffer.from('udp-echo-' + host), ${udpPort}, host);
    setTimeout(() => reject(new Error('udp timeout ' + host)), 8000);
  });
}
(async () => { for (const h of ${JSON.stringify(targets)}) console.log(h, await tcp(h), await udp(h)); })()
  .catch((e) => { console.error(String(e)); process.exit(1); });`;
  const r = await nsRun(ns, process.execPath, ['-e', script], 60_000);
  if (r.code !== 0) throw new Error(`client failed: ${r.stderr}`);
  return r.stdout;
}
