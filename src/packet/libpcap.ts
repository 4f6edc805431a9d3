// libpcap's filter compiler, where the system has libpcap: native/pcap.cc loads it with dlopen()
// on first use (tuntap never links against it), so this is an option, never a dependency.
// compileFilter({ compiler: 'auto' }) in filter.ts prefers it, because it takes tcpdump's whole
// filter language where the built-in compiler takes a subset.
import { addon } from '../native.js';
import { decodeBpf, type BpfInstruction } from '../device/bpf.js';

interface PcapNative {
  pcapLoad(): { version: string } | { error: string };
  pcapCompile(expression: string, linkType: number, snapLength: number, optimize: boolean): Buffer;
}

const native = addon as PcapNative;

/** libpcap's DLT_ values for the link types tuntap reads (DLT_RAW is 12 on Linux, not LINKTYPE_RAW's 101). */
export const PcapLinkType = { ethernet: 1, raw: 12 } as const;

export type LibpcapStatus = { available: true; version: string } | { available: false; reason: string };

let status: LibpcapStatus | undefined;

/** Whether libpcap could be loaded (tried once per process) and its version string, or why not. */
export function libpcapStatus(): LibpcapStatus {
  if (!status) {
    const r = native.pcapLoad();
    status = 'version' in r ? { available: true, version: r.version } : { available: false, reason: r.error };
  }
  return status;
}

/**
 * Compiles with libpcap's pcap_compile (optimised, as tcpdump does) on a dead handle of the
 * link type. Returns the program, or libpcap's own message when it refuses the expression.
 * Throws a RangeError for an argument the native side refuses (over 1024 bytes, a NUL).
 */
export function pcapCompile(expression: string, mode: keyof typeof PcapLinkType, snapLength: number):
  { program: BpfInstruction[] } | { error: string } {
  try {
    return { program: decodeBpf(native.pcapCompile(expression, PcapLinkType[mode], snapLength, true)) };
  } catch (e) {
    if (e instanceof Error && (e as Error & { pcap?: boolean }).pcap) return { error: e.message };
    throw e;
  }
}
