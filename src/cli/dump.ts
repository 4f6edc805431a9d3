// `tuntap dump`: the seeds' "open a TAP and print what arrives" experiment as a tool. Opens (or
// attaches to) a TUN/TAP, prints one tcpdump -n style line per packet, optionally writes a pcap,
// and filters with a pcap-style expression. On a TAP the filter is also compiled to classic BPF
// and attached in the kernel (TUNATTACHFILTER, which the kernel allows on TAPs only), so
// unwanted frames never reach user space; on a TUN it runs in user space.
import { openTun, openTap, type TunDevice } from '../device/index.js';
import { configureInterface } from '../netlink/index.js';
import { compileFilter, describe, openCaptureFile, formatBpf, LinkType, FilterSyntaxError, type CaptureWriter } from '../packet/index.js';
import { parseArgs, intOption, UsageError } from './args.js';
import { fileError } from '../errors.js';

const HELP = `usage: tuntap dump [options] [filter expression]

Opens a TUN (or TAP with --tap) and prints every packet that arrives, like tcpdump -n.
An existing persistent device with --name is attached to rather than created.

options:
  --tap               a TAP (Ethernet frames) instead of a TUN (IP packets)
  --name NAME         device name (default tun%d / tap%d)
  --netns NS          open the device inside this network namespace
  --address CIDR      add an address and bring the device up (repeatable)
  -w FILE             also write the packets to FILE (pcap; pcapng if FILE ends in .pcapng)
  -c COUNT            stop after COUNT packets
  -q, --quiet         do not print packet lines (with -w)
  -d, --print-bpf     print the classic BPF compiled from the filter and exit
  --no-kernel-filter  filter in user space only (TAP: do not attach BPF; TUN always does)

filter: host/src host/dst host ADDR, net CIDR, port/src port/dst port N, portrange A-B,
  ether host MAC, vlan [ID], ip, ip6, arp, icmp, icmp6, tcp, udp; and/or/not, parentheses.`;

export async function run(argv: string[]): Promise<number> {
  const { positional, options } = parseArgs(argv, {
    values: ['name', 'netns', 'w', 'c'],
    flags: ['tap', 'quiet', 'print-bpf', 'no-kernel-filter'],
    repeat: ['address'],
    aliases: { q: 'quiet', d: 'print-bpf', count: 'c', write: 'w' },
  });
  if (options.help) { console.log(HELP); return 0; }
  const tap = options.tap === true;
  const mode = tap ? 'ethernet' : 'raw';
  let filter;
  try {
    filter = compileFilter(positional.join(' '), mode);
  } catch (e) {
    if (e instanceof FilterSyntaxError) throw new UsageError(`filter: ${e.message}`);
    throw e;
  }
  if (options['print-bpf']) { console.log(formatBpf(filter.bpf)); return 0; }
  const limit = intOption(options, 'c');
  if (limit !== undefined && limit < 1) throw new UsageError('-c needs a positive count');
  const netns = options.netns as string | undefined;
  const name = options.name as string | undefined;
  const quiet = options.quiet === true;

  const dev: TunDevice = (tap ? openTap : openTun)({ ...(name ? { name } : {}), ...(netns ? { netns } : {}) });
  let capture: CaptureWriter | undefined;
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  let seen = 0;
  let kernelFilter = false;
  try {
    // TUNATTACHFILTER is TAP-only in the kernel; a TUN is filtered in user space.
    if (tap && positional.length > 0 && !options['no-kernel-filter']) { dev.attachFilter(filter.bpf); kernelFilter = true; }
    const addresses = (options.address as string[] | undefined) ?? [];
    if (addresses.length) configureInterface(dev.name, { addresses, up: true }, netns ? { netns } : {});
    if (options.w) {
      const file = options.w as string;
      try {
        capture = openCaptureFile(file, { linkType: tap ? LinkType.ETHERNET : LinkType.RAW, interfaceName: dev.name });
      } catch (e) {
        throw fileError(file, 'write', e);
      }
    }
    console.error(`tuntap dump: listening on ${dev.name} (${tap ? 'Ethernet' : 'raw IP'})` +
      `${positional.length ? `, filter "${filter.expression}"${kernelFilter ? ' (in kernel)' : ''}` : ''}`);
    try {
      // Wall clock in ns from one Date.now() reading plus the monotonic clock since then.
      const base = BigInt(Date.now()) * 1_000_000n - process.hrtime.bigint();
      for await (const batch of dev.batches({ signal: stop.signal })) {
        const now = base + process.hrtime.bigint();
        // One stdout write per batch, not per packet.
        let lines = '';
        let done = false;
        for (let i = 0; i < batch.count && !done; i++) {
          const pkt = batch.packet(i);
          if (!filter.match(pkt)) continue;
          seen++;
          capture?.write(pkt, now);
          if (!quiet) lines += `${describe(pkt, mode, now)}\n`;
          done = limit !== undefined && seen >= limit;
        }
        if (lines) process.stdout.write(lines);
        capture?.flush();
        if (done) break;
      }
    } catch (e) {
      if (!stop.signal.aborted) throw e;
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    capture?.close();
    await dev.close();
  }
  console.error(`${seen} packet${seen === 1 ? '' : 's'} captured`);
  return 0;
}
