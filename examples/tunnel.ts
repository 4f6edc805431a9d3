// A TUN <-> UDP tunnel that runs with TSO and GRO without ever touching a virtio_net_hdr: the
// TUN's queue splits the kernel's 64 KiB super-packets into ordinary packets on read and
// coalesces them again on write (offload 'split'), and the UDP socket sends with GSO and
// receives with GRO, so a system call carries up to 64 KiB on either side. Plain UDP, no
// encryption: the batch API in its shortest form, not a VPN.
//
//   node --import tsx examples/tunnel.ts TUN LOCAL_IP:PORT PEER_IP:PORT
import { openTun } from 'tuntap/device';
import { openUdp, type Endpoint } from 'tuntap/net';

const endpoint = (text: string): Endpoint => {
  const at = text.lastIndexOf(':');
  return { address: text.slice(0, at).replace(/^\[|\]$/g, ''), port: Number(text.slice(at + 1)) };
};
const [name, local, peer] = process.argv.slice(2);
if (!name || !local || !peer) throw new Error('usage: tunnel.ts TUN LOCAL_IP:PORT PEER_IP:PORT');

// What the tunnel writes to the TUN came under a UDP checksum the kernel checked: the queue
// need not verify it again before coalescing.
const tun = openTun({ name, offload: 'split', verifyChecksums: false });
const udp = openUdp({ bind: endpoint(local), connect: endpoint(peer), gro: true, recvBufferSize: 4 << 20, sendBufferSize: 4 << 20 });
console.log(`ready ${tun.name}`);
const stop = () => { void udp.close(); void tun.close(); };
process.once('SIGTERM', stop).once('SIGINT', stop);

await Promise.all([
  (async () => { for await (const batch of tun.batches()) await udp.sendPacked(batch, undefined, { gsoSize: 'auto' }); })(),
  (async () => { for await (const batch of udp) await tun.writePacked(batch); })(),
]);
