// `tuntap dump`: the seeds' "open a TAP and print what arrives" experiment as a tool. Opens (or
// attaches to) a TUN/TAP, prints one `tcpdump -n -S` style line per packet, optionally writes a
// pcap, and filters with tcpdump's expression language: compiled by the system's libpcap when it
// loads, else by tuntap's own subset. On a TAP the program is also attached in the kernel
// (TUNATTACHFILTER, which the kernel allows on TAPs only), so unwanted frames never reach user
// space; on a TUN, or for a program the kernel would refuse or misjudge, it runs in user space.
import { openTun, openTap, type TunDevice } from '../device/index.js';
import { configureInterface } from '../netlink/index.js';
import {
  compileFilter, describe, openCaptureFile, formatBpf, libpcapStatus, LinkType, FilterSyntaxError, type CaptureWriter, type CompiledFilter,
} from '../packet/index.js';
import { parseArgs, intOption, UsageError } from './args.js';
import { fileError } from '../errors.js';

/** Which compiler `dump` will use, for --help and the start-up line. */
function compilerNote(builtin: boolean): string {
  if (builtin) return 'the built-in subset (--builtin-filter)';
  const lib = libpcapStatus();
  return lib.available ? lib.version : `the built-in subset (libpcap not loaded: ${lib.reason})`;
}

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
  -d, --print-bpf     print the classic BPF compiled from the filter (as tcpdump -d) and exit
  --no-kernel-filter  filter in user space only (TAP: do not attach BPF; TUN always does)
  --builtin-filter    compile with tuntap's subset even where libpcap is installed

filter: tcpdump's filter language (pcap-filter(7)) when libpcap is installed (it is loaded at
  run time; tuntap does not need it). Without it, a subset: host/src host/dst host ADDR,
  net CIDR, port/src port/dst port N, portrange A-B, ether host MAC, vlan [ID], ip, ip6, arp,
  icmp, icmp6, tcp, udp; and/or/not, parentheses. At most 1024 bytes.`;

export async function run(argv: string[]): Promise<number> {
  const { positional, options } = parseArgs(argv, {
    values: ['name', 'netns', 'w', 'c'],
    flags: ['tap', 'quiet', 'print-bpf', 'no-kernel-filter', 'builtin-filter'],
    repeat: ['address'],
    aliases: { q: 'quiet', d: 'print-bpf', count: 'c', write: 'w' },
  });
  const builtin = options['builtin-filter'] === true;
  if (options.help) { console.log(`${HELP}\n\nfilters here are compiled by ${compilerNote(builtin)}.`); return 0; }
  const tap = options.tap === true;
  const mode = tap ? 'ethernet' : 'raw';
  let filter: CompiledFilter;
  try {
    filter = compileFilter(positional.join(' '), mode, { compiler: builtin ? 'subset' : 'auto' });
  } catch (e) {
    if (e instanceof FilterSyntaxError) throw new UsageError(`filter: ${e.message}`);
    throw e;
  }
  if (options['print-bpf']) {
    console.error(`tuntap dump: compiled by ${compilerNote(builtin)}`);
    console.log(formatBpf(filter.bpf));
    return 0;
  }
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
    // TUNATTACHFILTER is TAP-only in the kernel; a TUN is filtered in user space, and so is a
    // program the kernel would refuse or misjudge (filter.kernelSafe). Every frame is matched
    // in user space as well, so the kernel's program only ever spares work.
    if (tap && positional.length > 0 && !options['no-kernel-filter'] && filter.kernelSafe) { dev.attachFilter(filter.bpf); kernelFilter = true; }
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
      `${positional.length ? `, filter "${filter.expression}" by ${compilerNote(builtin)}${kernelFilter ? ' (in kernel)' : ''}` : ''}` +
      `${tap && positional.length && !filter.kernelSafe ? ' (in user space: the kernel would refuse this program or miss VLAN tags it keeps outside the frame)' : ''}`);
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
