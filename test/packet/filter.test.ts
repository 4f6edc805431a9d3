// The filter language, both compilers. The subset's JS predicate and its BPF agree on a mixed
// sample; libpcap reached through native/pcap.cc compiles exactly the program tcpdump compiles;
// for every expression the subset knows, its program and libpcap's accept the same frames;
// libpcap takes what the subset refuses; and hostile expressions and arguments, aimed at both
// compilers and straight at the native call, get typed errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  compileFilter, runBpf, parseTcpdumpDdd, FilterSyntaxError, parseFilter, formatBpf, libpcapStatus, MAX_FILTER_LENGTH,
  buildEthernet, buildIpv4, buildIpv6, buildTcp, buildUdp, buildArp, buildIcmp, fragmentExtension, optionsExtension, TcpFlags, summarize,
} from '../../src/packet/index.js';
import { addon } from '../../src/native.js';
import { corpus, expressions, type Sample } from './corpus.js';

/** Frames the shared corpus lacks: UDP/TCP after IPv6 fragment and options headers, RARP, TCP SYNs. */
function extraSamples(): Sample[] {
  const v6 = { src: 'fd00::1', dst: 'fd00:1::77' }; const v4 = { src: '198.18.0.1', dst: '198.18.0.2' };
  const ip: Uint8Array[] = [
    buildIpv6({ ...v6, protocol: 17, extensions: [fragmentExtension(0, true, 7)], payload: buildUdp({ srcPort: 53, dstPort: 443, payload: new Uint8Array(9) }, v6) }),
    buildIpv6({ ...v6, protocol: 6, extensions: [fragmentExtension(0, true, 8)], payload: buildTcp({ srcPort: 22, dstPort: 80, seq: 1, ack: 0, flags: TcpFlags.SYN, window: 1, payload: new Uint8Array(0) }, v6) }),
    buildIpv6({ ...v6, protocol: 17, extensions: [optionsExtension(0), optionsExtension(60)], payload: buildUdp({ srcPort: 5353, dstPort: 5353, payload: new Uint8Array(3) }, v6) }),
    buildIpv4({ ...v4, protocol: 6, payload: buildTcp({ srcPort: 40000, dstPort: 80, seq: 1, ack: 0, flags: TcpFlags.SYN, window: 1, payload: new Uint8Array(0) }, v4) }),
    buildIpv4({ ...v4, protocol: 1, payload: buildIcmp({ type: 0, code: 0, identifier: 1, sequence: 1, payload: new Uint8Array(8) }) }),
  ];
  const eth = (payload: Uint8Array, etherType: number) => buildEthernet({ src: '02:00:00:00:00:01', dst: '02:00:00:00:00:02', etherType, payload });
  const rarp = buildArp({ operation: 3, senderMac: '02:00:00:00:00:01', senderIp: '198.18.0.1', targetMac: '02:00:00:00:00:02', targetIp: '198.18.0.2' });
  return [
    ...ip.map((p) => ({ frame: eth(p, p[0]! >> 4 === 4 ? 0x0800 : 0x86dd), raw: p, tagged: false, truncated: false })),
    { frame: eth(rarp, 0x8035), tagged: false, truncated: false },
  ];
}

const samples = [...corpus(), ...extraSamples()];
const MODES = [['ethernet', 'EN10MB'], ['raw', 'RAW']] as const;
/** pcap refuses link-layer primitives on raw IP; the subset compiles them to "never". */
const linkLayerOnly = (expr: string) => /arp|ether|vlan/.test(expr);

test('JS predicate and BPF agree on every sample (Ethernet and raw IP)', () => {
  let checked = 0;
  for (const expr of expressions) {
    for (const mode of ['ethernet', 'raw'] as const) {
      const f = compileFilter(expr, mode);
      assert.equal(f.compiler, 'subset');
      assert.ok(f.bpf.length <= 4096);
      let matched = 0;
      for (const s of samples) {
        const frame = mode === 'ethernet' ? s.frame : s.raw;
        if (!frame) continue;
        const js = f.match(frame);
        assert.equal(runBpf(f.bpf, frame) > 0, js, `${expr} (${mode}) on ${Buffer.from(frame).toString('hex')}\n${formatBpf(f.bpf)}`);
        if (js) matched++;
        checked++;
      }
      if (mode === 'ethernet') assert.ok(matched > 0, `${expr} matches something`);
    }
  }
  assert.ok(checked > 10000);
});

const available = libpcapStatus();

test('libpcap is found at run time (tcpdump brings it in the test tools)', () => {
  assert.ok(available.available, `libpcap: ${JSON.stringify(available)}`);
  assert.match(available.available ? available.version : '', /^libpcap version \d+\.\d+/);
});

/** Expressions only libpcap takes: byte access, flag names, lengths, protochain, broadcast MACs. */
const LIBPCAP_ONLY = [
  'tcp[tcpflags] & tcp-syn != 0', 'tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn', 'icmp[icmptype] == icmp-echoreply',
  'ip[8] < 5', 'len > 100', 'greater 80', 'less 60', 'udp[8:2] = 0', 'ether broadcast', 'ether multicast',
  'ip6 protochain 17', 'ip proto 132', 'sctp', 'ip[6:2] & 0x1fff != 0', 'vlan 100 and (tcp port 22 or ip[8] > 1)',
];

const tcpdumpCompile = (flag: '-d' | '-ddd', link: string, expr: string) =>
  execFileSync('tcpdump', [flag, '-y', link, expr], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

test('libpcap through the native call compiles what tcpdump compiles, instruction for instruction', () => {
  for (const expr of [...expressions, ...LIBPCAP_ONLY]) {
    for (const [mode, link] of MODES) {
      if (mode === 'raw' && (linkLayerOnly(expr) || /len|greater|less/.test(expr))) continue;
      const ours = compileFilter(expr, mode, { compiler: 'libpcap' });
      assert.equal(ours.compiler, 'libpcap');
      assert.deepEqual(ours.bpf, parseTcpdumpDdd(tcpdumpCompile('-ddd', link, expr)), `${expr} (${mode})`);
      // And the listing `tuntap dump -d` prints is tcpdump -d's.
      if (mode === 'ethernet') assert.equal(formatBpf(ours.bpf), tcpdumpCompile('-d', link, expr).trimEnd(), expr);
    }
  }
});

test('for every expression the subset knows, its program and libpcap\'s accept the same frames', () => {
  let compared = 0;
  for (const expr of expressions) {
    for (const [mode] of MODES) {
      // pcap's vlan keyword moves the offsets of what follows; the subset looks inside a tag always.
      if (expr.includes('vlan')) continue;
      const subset = compileFilter(expr, mode);
      let libpcap;
      try {
        libpcap = compileFilter(expr, mode, { compiler: 'libpcap' });
      } catch (e) {
        // pcap refuses some link-layer primitives on raw IP, where the subset compiles them to "never".
        if (mode === 'raw' && linkLayerOnly(expr) && e instanceof FilterSyntaxError) continue;
        throw e;
      }
      for (const s of samples) {
        const frame = mode === 'ethernet' ? s.frame : s.raw;
        // Truncated frames: pcap's optimiser reorders loads, so which one runs off the end differs.
        if (!frame || s.tagged || s.truncated) continue;
        const hex = Buffer.from(frame).toString('hex');
        assert.equal(runBpf(subset.bpf, frame) > 0, runBpf(libpcap.bpf, frame) > 0, `${expr} (${mode}) on ${hex}`);
        assert.equal(subset.match(frame), libpcap.match(frame), `${expr} (${mode}) match() on ${hex}`);
        compared++;
      }
    }
  }
  assert.ok(compared > 10000, `${compared} comparisons`);
});

test('libpcap takes what the subset refuses, and its programs decide right', () => {
  for (const expr of LIBPCAP_ONLY) {
    assert.throws(() => compileFilter(expr, 'ethernet'), FilterSyntaxError, `the subset refuses ${expr}`);
    const f = compileFilter(expr, 'ethernet', { compiler: 'auto' });
    assert.equal(f.compiler, 'libpcap', expr);
  }
  const syn = compileFilter('tcp[tcpflags] & tcp-syn != 0', 'ethernet', { compiler: 'auto' });
  const reply = compileFilter('icmp[icmptype] == icmp-echoreply', 'ethernet', { compiler: 'auto' });
  // pcap's vlan scopes what follows to the tagged payload; the subset reads every frame's tag.
  const tagged = compileFilter('vlan 100 and tcp port 22', 'ethernet', { compiler: 'auto' });
  assert.equal(tagged.compiler, 'libpcap');
  let syns = 0; let replies = 0; let inVlan = 0;
  for (const s of samples) {
    if (s.truncated) continue;
    const frame = s.frame;
    // Our decoder is the reference: SYN flag set, echo reply, TCP port 22 inside VLAN 100.
    const ether = frame.length >= 14 ? (frame[12]! << 8) | frame[13]! : 0;
    const tag = ether === 0x8100 ? ((frame[14]! << 8) | frame[15]!) & 0xfff : -1;
    const l3 = tag >= 0 ? 18 : 14;
    const type = tag >= 0 ? (frame[16]! << 8) | frame[17]! : ether;
    const v4 = type === 0x0800 && (frame[l3 + 6]! & 0x1f) === 0 && frame[l3 + 7] === 0;
    const l4 = l3 + ((frame[l3]! & 15) * 4);
    const isSyn = v4 && tag < 0 && frame[l3 + 9] === 6 && (frame[l4 + 13]! & 0x02) !== 0;
    const isReply = v4 && tag < 0 && frame[l3 + 9] === 1 && frame[l4] === 0;
    const port22 = (o: number) => (frame[o]! << 8 | frame[o + 1]!) === 22;
    const isTagged22 = tag === 100 && ((type === 0x0800 && frame[l3 + 9] === 6 && (port22(l4) || port22(l4 + 2)))
      || (type === 0x86dd && frame[l3 + 6] === 6 && (port22(l3 + 40) || port22(l3 + 42))));
    assert.equal(syn.match(frame), isSyn, `SYN: ${Buffer.from(frame).toString('hex')}`);
    assert.equal(reply.match(frame), isReply, `echo reply: ${Buffer.from(frame).toString('hex')}`);
    assert.equal(tagged.match(frame), isTagged22, `vlan 100 port 22: ${Buffer.from(frame).toString('hex')}`);
    syns += Number(isSyn); replies += Number(isReply); inVlan += Number(isTagged22);
  }
  assert.ok(syns > 0 && replies > 0 && inVlan > 0, `${syns} SYNs, ${replies} replies, ${inVlan} tagged port 22`);
  // protochain walks the extension headers with a backward jump: the interpreter follows it as
  // libpcap's does, and the program is kept out of the kernel, which refuses backward jumps.
  const chain = compileFilter('ip6 protochain 17', 'ethernet', { compiler: 'auto' });
  let chained = 0;
  for (const s of samples) {
    if (s.truncated || s.tagged) continue;
    const sum = summarize(s.frame, 'ethernet');
    const udp6 = sum.ip?.version === 6 && sum.ip.protocol === 17;
    assert.equal(chain.match(s.frame), udp6, `protochain 17: ${Buffer.from(s.frame).toString('hex')}`);
    if (udp6 && sum.ip!.extensions) chained++;
  }
  assert.ok(chained >= 2, `${chained} UDP datagrams behind extension headers`);
  assert.equal(chain.kernelSafe, false);
  // A libpcap program testing VLAN tags is not for the kernel (a TAP may hold the tag outside the frame).
  assert.equal(tagged.kernelSafe, false);
  assert.equal(syn.kernelSafe, true);
  assert.equal(compileFilter('vlan 100', 'ethernet').kernelSafe, true);
});

test('syntax errors are reported as FilterSyntaxError by both compilers', () => {
  for (const bad of ['host', 'port 99999', 'net 198.18.0.1/24', 'tcp host 1.2.3.4', 'and tcp', '(tcp', 'tcp)', 'host 300.1.1.1', 'foo', 'ip6 host 198.18.0.1', 'portrange 9-1']) {
    assert.throws(() => parseFilter(bad), FilterSyntaxError, bad);
    assert.throws(() => compileFilter(bad, 'ethernet'), FilterSyntaxError, bad);
  }
  for (const bad of ['tcp port', 'host', '(tcp', 'tcp[tcpflags] &', 'ip6 host 198.18.0.1', 'port 99999x']) {
    assert.throws(() => compileFilter(bad, 'ethernet', { compiler: 'libpcap' }), (e: unknown) => e instanceof FilterSyntaxError && e.message.length > 0, bad);
  }
  assert.equal(parseFilter(''), null);
  assert.ok(compileFilter('', 'ethernet').match(new Uint8Array(1)));
  assert.ok(compileFilter('', 'ethernet', { compiler: 'libpcap' }).match(new Uint8Array(1)));
});

test('hostile expressions get typed errors from both compilers, and the native call refuses bad arguments', () => {
  const long = Array.from({ length: 400 }, (_, i) => `port ${i + 1}`).join(' or ');
  assert.ok(long.length > MAX_FILTER_LENGTH);
  // As deep as the length allows: every level is a recursion in the subset's parser and lowering.
  const deep = [`${'!'.repeat(1020)}tcp`, `${'('.repeat(510)}tcp${')'.repeat(510)}`, `${'not '.repeat(254)}tcp`];
  for (const compiler of ['subset', 'libpcap'] as const) {
    const started = Date.now();
    assert.throws(() => compileFilter(long, 'ethernet', { compiler }), /longer than 1024 bytes/, compiler);
    // A NUL would make libpcap compile only the text before it.
    assert.throws(() => compileFilter('tcp\0 or udp', 'ethernet', { compiler }), FilterSyntaxError, compiler);
    assert.throws(() => compileFilter(`${'('.repeat(20_000)}tcp`, 'ethernet', { compiler }), FilterSyntaxError, compiler);
    // samples[0] is TCP, and each negation count is even.
    for (const e of deep) assert.equal(compileFilter(e, 'ethernet', { compiler }).match(samples[0]!.frame), true, `${compiler}: ${e.slice(0, 20)}`);
    assert.throws(() => compileFilter(42 as unknown as string, 'ethernet', { compiler }), TypeError, compiler);
    assert.ok(Date.now() - started < 5000, `${compiler} answered promptly`);
  }
  // A subset expression that fits the length but not the kernel's jump range.
  assert.throws(() => compileFilter(Array.from({ length: 60 }, (_, i) => `net fd00:${i.toString(16)}::/32`).join(' or '), 'ethernet'), FilterSyntaxError);

  // Straight at the native call, as a careless or hostile JS caller would.
  const pcap = addon as { pcapCompile: (...args: unknown[]) => Buffer };
  const ok = pcap.pcapCompile('tcp', 1, 262144, true);
  assert.equal(ok.length % 8, 0);
  const refuses: [unknown[], RegExp][] = [
    [[], /pcapCompile\(expression/], [[42, 1, 262144, true], /pcapCompile\(expression/], [['tcp', 1, 262144, 1], /pcapCompile\(expression/],
    [['tcp', 101, 262144, true], /link type/], [['tcp', -1, 262144, true], /link type/], [['tcp', 1.5, 262144, true], /link type/],
    [['tcp', '1', 262144, true], /link type/], [['tcp', 1, 0, true], /snap length/], [['tcp', 1, 2 ** 40, true], /snap length/],
    [['tcp', 1, NaN, true], /snap length/], [['tcp\0udp', 1, 262144, true], /NUL/], [['x'.repeat(1025), 1, 262144, true], /1024 bytes/],
    [['é'.repeat(600), 1, 262144, true], /1024 bytes/], [['x'.repeat(50_000_000), 1, 262144, true], /1024 bytes/],
  ];
  for (const [args, message] of refuses) assert.throws(() => pcap.pcapCompile(...args), message, JSON.stringify(args).slice(0, 80));
  assert.throws(() => pcap.pcapCompile('tcp port', 1, 262144, true), (e: Error & { pcap?: boolean }) => e.pcap === true && /syntax error/.test(e.message));
  // Still works after all that.
  assert.deepEqual(pcap.pcapCompile('tcp', 1, 262144, true), ok);
});

/** Runs `script` in a private mount namespace where every libpcap file reads as empty. */
function withoutLibpcap(script: string): string {
  const libs = execFileSync('sh', ['-c', 'ldconfig -p | grep -o "/[^ ]*libpcap\\.so[^ ]*" | xargs -r readlink -f | sort -u'], { encoding: 'utf8' }).trim().split('\n').filter(Boolean);
  assert.ok(libs.length > 0, 'libpcap files to hide');
  const hide = libs.map((f) => `mount --bind /dev/null ${f}`).join(' && ');
  return execFileSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c', `${hide} && exec "$0" --import tsx -e "$1"`, process.execPath, script],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

test('where libpcap cannot be loaded, auto falls back to the subset and asking for libpcap is a TuntapError', () => {
  const index = new URL('../../src/packet/index.ts', import.meta.url).pathname;
  const out = withoutLibpcap(`import(${JSON.stringify(index)}).then((p) => {
    const status = p.libpcapStatus();
    const auto = p.compileFilter('tcp port 22', 'ethernet', { compiler: 'auto' });
    let error;
    try { p.compileFilter('tcp', 'ethernet', { compiler: 'libpcap' }); } catch (e) { error = { name: e.name, syscall: e.syscall, code: e.code, message: e.message }; }
    console.log(JSON.stringify({ status, compiler: auto.compiler, error }));
  })`);
  const r = JSON.parse(out) as { status: { available: boolean; reason: string }; compiler: string; error: { name: string; syscall: string; code: string; message: string } };
  assert.equal(r.status.available, false);
  assert.match(r.status.reason, /libpcap/);
  assert.equal(r.compiler, 'subset');
  assert.deepEqual([r.error.name, r.error.syscall, r.error.code], ['TuntapError', 'dlopen', 'ENOENT']);
  assert.match(r.error.message, /libpcap could not be loaded/);
});
