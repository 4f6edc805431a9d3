// Filter expressions a user types after `tuntap dump`: the built-in compiler must answer every
// text with a program or a FilterSyntaxError, and the two forms it produces must agree: the
// JS predicate (`match`) and the classic BPF program the kernel would run (`runBpf`) pass the
// same frames of the packet corpus.
import { compileFilter, FilterSyntaxError, runBpf, type LinkMode } from '../../../src/packet/index.js';
import { corpus as packetCorpus, expressions } from '../../packet/corpus.js';
import { check, type TextTarget } from '../framework.js';

/** Frames and raw packets from the shared corpus, a few of each protocol. */
let frames: { ethernet: Uint8Array[]; raw: Uint8Array[] } | undefined;
function sampleFrames() {
  if (!frames) {
    const all = packetCorpus();
    frames = {
      ethernet: all.map((s) => s.frame).filter((_, i) => i % 3 === 0).slice(0, 24),
      raw: all.flatMap((s) => (s.raw ? [s.raw] : [])).filter((_, i) => i % 3 === 0).slice(0, 24),
    };
  }
  return frames;
}

const WORDS = [
  'host', 'net', 'port', 'portrange', 'src', 'dst', 'and', 'or', 'not', '(', ')', 'tcp', 'udp', 'icmp', 'icmp6',
  'ip', 'ip6', 'arp', 'vlan', 'ether', 'proto', 'len', 'less', 'greater', '198.18.0.1', '198.18.0.0/15', 'fd00::1',
  'fd00::/8', '53', '0-65535', '65536', '-1', '&&', '||', '!', 'ff:ff:ff:ff:ff:ff', 'broadcast', 'multicast',
];

function run(text: string, mode: LinkMode): string {
  const f = compileFilter(text, mode, { compiler: 'subset' });
  let passed = 0;
  for (const frame of sampleFrames()[mode]) {
    const js = f.match(frame);
    const bpf = runBpf(f.bpf, frame) > 0;
    check(js === bpf, `match() says ${js} and its BPF program ${bpf} for a ${frame.length}-byte frame`);
    if (js) passed++;
  }
  return passed > 0 ? 'compiled, some frames pass' : 'compiled, no frame passes';
}

export const filterTarget: TextTarget = {
  kind: 'text', name: 'filter-expression', layer: 'packet', weight: 2, maxLength: 300,
  about: 'compileFilter (built-in subset) on tcpdump expressions; its predicate and its BPF program agree on real frames',
  isTyped: (e) => e instanceof FilterSyntaxError,
  dictionary: WORDS,
  corpus: () => expressions.slice(),
  create: () => ({ run: (text: string) => run(text, text.length % 2 === 0 ? 'ethernet' : 'raw') }),
};
