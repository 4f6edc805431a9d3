// WireGuard's text inputs: the UAPI `set` body a local client sends over the socket, and
// wg-quick configuration files. Bad input must be a UapiError (errno) or a ConfigError (file,
// line, key); what is accepted must be in range for the code it reaches (ports, marks, tables,
// endpoints), and what `get` prints must be accepted back by `set` (as `wg showconf | wg setconf`).
import { WireGuardEngine } from '../../../src/wireguard/engine.js';
import { uapiGet, uapiSet, type UapiDevice } from '../../../src/wireguard/uapi.js';
import { ConfigError, parseConfig } from '../../../src/wireguard/config.js';
import { keyToBase64, publicKey } from '../../../src/wireguard/crypto.js';
import { parseCidr } from '../../../src/addr.js';
import { check, type Instance, type TextTarget } from '../framework.js';

const PRIVATE = Buffer.alloc(32, 0x33);
const OWN_PUBLIC = publicKey(PRIVATE);
const PEER = publicKey(Buffer.alloc(32, 0x44));
const PSK = Buffer.alloc(32, 0x55);
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const isPort = (n: unknown) => Number.isInteger(n) && (n as number) >= 0 && (n as number) <= 65535;
const isU32 = (n: unknown) => Number.isInteger(n) && (n as number) >= 0 && (n as number) <= 0xffffffff;

/** A device whose setters check what the UAPI hands them (the real one binds sockets with it). */
class CheckedDevice implements UapiDevice {
  listenPort = 0;
  fwmark = 0;
  constructor(readonly engine: WireGuardEngine) {}
  setListenPort(port: number): void {
    check(isPort(port), `listen port ${port} reached the device`);
    this.listenPort = port;
  }
  setFwmark(mark: number): void {
    check(isU32(mark), `fwmark ${mark} reached the device`);
    this.fwmark = mark;
  }
}

const newDevice = (privateKey: Buffer | undefined = PRIVATE) =>
  new CheckedDevice(new WireGuardEngine({ send() {}, deliver() {} }, { privateKey, now: () => 1_000_000 }));

/** The lines of `get` that `set` takes (the rest are counters). */
const SETTABLE = /^(private_key|listen_port|fwmark|public_key|preshared_key|endpoint|persistent_keepalive_interval|allowed_ip|protocol_version)=/;

class UapiSession implements Instance<string> {
  private dev = newDevice();
  /**
   * Takes back what `get` printed. It has no private key (a key pair per input, and the handshake
   * a keepalive setting starts, would cost most of the run), so get's private_key line is left out.
   */
  private readonly echo = newDevice(undefined);

  run(text: string): string {
    // The server cuts a request at its blank line and splits the body into lines.
    const body = `set=1\n${text}`.split('\n\n')[0]!.split('\n').slice(1);
    if (this.dev.engine.peers.size > 64) this.dev = newDevice();  // keep the table (and each input's cost) small
    uapiSet(this.dev, body);
    for (const peer of this.dev.engine.peers.values()) {
      check(isPort(peer.persistentKeepalive), `persistent keepalive ${peer.persistentKeepalive}`);
      if (peer.endpoint) check(isPort(peer.endpoint.port) && (peer.endpoint.family === 4 || peer.endpoint.family === 6), 'endpoint');
    }
    const shown = uapiGet(this.dev);
    const lines = shown.split('\n').filter((l) => l !== '');
    for (const l of lines) check(/^[a-z_]+=[^\n=]*$/.test(l), `get printed a line the wg tool cannot read: ${JSON.stringify(l)}`);
    try {
      uapiSet(this.echo, ['replace_peers=true', ...lines.filter((l) => SETTABLE.test(l) && !l.startsWith('private_key='))]);
    } catch (e) {
      check(false, `set rejects what get printed (${(e as Error).message}):\n${shown}`);
    }
    return 'applied';
  }
}

const uapiCorpus = [
  `private_key=${hex(PRIVATE)}\nlisten_port=51820\nfwmark=0\nreplace_peers=true\npublic_key=${hex(PEER)}\npreshared_key=${hex(PSK)}\n`
    + 'endpoint=198.18.0.2:51821\npersistent_keepalive_interval=25\nreplace_allowed_ips=true\nallowed_ip=198.18.8.0/24\n'
    + 'allowed_ip=fd00:8::/64\nprotocol_version=1',
  `public_key=${hex(PEER)}\nendpoint=[fd00::2]:51820\nallowed_ip=0.0.0.0/0\nallowed_ip=::/0`,
  `public_key=${hex(PEER)}\nupdate_only=true\nallowed_ip=198.18.9.0/24`,
  `public_key=${hex(PEER)}\nremove=true`,
  `public_key=${hex(OWN_PUBLIC)}\nallowed_ip=198.18.0.0/15`,
  'listen_port=0\nfwmark=66',
];

const uapiDictionary = [
  'private_key', 'listen_port', 'fwmark', 'replace_peers', 'public_key', 'preshared_key', 'endpoint',
  'persistent_keepalive_interval', 'replace_allowed_ips', 'allowed_ip', 'protocol_version', 'update_only', 'remove',
  hex(PRIVATE), hex(OWN_PUBLIC), hex(PEER), '0'.repeat(64), 'f'.repeat(64), 'true', '198.18.0.2:51821',
  '[fd00::2]:51820', '[fe80::1%2]:51820', '[fe80::1%eth0]:51820', '[::ffff:198.18.0.1]:1', '198.18.0.0/15', 'fd00::/8',
  '/0', '/32', '/33', '/128', '/129',
];

const isUapiError = (e: unknown) => e instanceof Error && e.constructor.name === 'UapiError' && typeof (e as { errno?: unknown }).errno === 'number';

export const uapiTarget: TextTarget = {
  kind: 'text',
  name: 'wg-uapi-set',
  layer: 'wireguard',
  about: 'UAPI set bodies into uapiSet on a live engine; values reaching the device in range; get accepted back by set',
  isTyped: isUapiError,
  weight: 2,
  dictionary: uapiDictionary,
  corpus: () => uapiCorpus,
  create: () => new UapiSession(),
};

const b64 = keyToBase64;
const configCorpus = [
  `[Interface]\nPrivateKey = ${b64(PRIVATE)}\nListenPort = 51820\nAddress = 198.18.0.1/24, fd00::1/64\nMTU = 1420\n`
    + `FwMark = 0x42\nTable = auto\nPostUp = echo up %i\n\n[Peer]\nPublicKey = ${b64(PEER)}\nPresharedKey = ${b64(PSK)}\n`
    + 'AllowedIPs = 198.18.8.0/24, fd00:8::/64\nEndpoint = 198.18.0.2:51821\nPersistentKeepalive = 25\n',
  `# a comment\n[Interface]\nPrivateKey = ${b64(PRIVATE)}\nTable = off\nDNS = 198.18.0.53\nSaveConfig = true\n`
    + `[Peer]\nPublicKey = ${b64(PEER)}\nAllowedIPs = 0.0.0.0/0, ::/0\nEndpoint = [fd00::2]:51820\n`
    + `[Peer]\nPublicKey = ${b64(OWN_PUBLIC)}\nEndpoint = vpn.example.test:51820 # name\n`,
  `[Interface]\r\nListenPort = 0\r\nFwMark = off\r\nTable = 1234\r\n`,
];

const configDictionary = [
  '[Interface]', '[Peer]', 'PrivateKey', 'ListenPort', 'FwMark', 'Address', 'DNS', 'MTU', 'Table', 'PreUp', 'PostUp',
  'PreDown', 'PostDown', 'SaveConfig', 'PublicKey', 'PresharedKey', 'AllowedIPs', 'Endpoint', 'PersistentKeepalive',
  b64(PRIVATE), b64(PEER), b64(OWN_PUBLIC), 'off', 'auto', 'main', '0x42', '0xZZ', '99999999999', '%i',
  'vpn.example.test:51820', '[fd00::2]:51820', '198.18.0.1/24', 'fd00::1/64', '0.0.0.0/0, ::/0',
];

/** The fields quickUp and the interface use, checked to be in range. */
function checkConfig(text: string): string {
  const cfg = parseConfig(text, 'fuzz.conf');
  const i = cfg.interface;
  check(i.listenPort === undefined || isPort(i.listenPort), `ListenPort ${i.listenPort}`);
  check(i.fwmark === undefined || isU32(i.fwmark), `FwMark ${i.fwmark} accepted (a mark is 32 bits)`);
  check(i.mtu === undefined || (Number.isInteger(i.mtu) && i.mtu >= 576 && i.mtu <= 65535), `MTU ${i.mtu}`);
  check(i.table === undefined || ['off', 'auto', 'main'].includes(i.table) || isU32(Number(i.table)),
    `Table ${i.table} accepted (a routing table id is 32 bits)`);
  for (const a of [...i.addresses, ...cfg.peers.flatMap((p) => p.allowedIps)]) parseCidr(a);
  for (const p of cfg.peers) {
    check(p.publicKey.length === 32 && (!p.presharedKey || p.presharedKey.length === 32), 'key length');
    check(p.persistentKeepalive === undefined || isPort(p.persistentKeepalive), `PersistentKeepalive ${p.persistentKeepalive}`);
    if (p.endpoint) check(p.endpoint.host.length > 0 && p.endpoint.port >= 1 && p.endpoint.port <= 65535, 'endpoint');
  }
  return cfg.peers.length > 0 ? 'parsed with peers' : 'parsed';
}

export const configTarget: TextTarget = {
  kind: 'text',
  name: 'wg-config',
  layer: 'wireguard',
  about: 'wg-quick files into parseConfig; accepted values in range for quickUp (marks, tables, ports, MTU)',
  isTyped: (e) => e instanceof ConfigError,
  weight: 4,
  dictionary: configDictionary,
  corpus: () => configCorpus,
  create: () => ({ run: checkConfig }),
};
