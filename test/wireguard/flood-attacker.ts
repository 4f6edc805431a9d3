// The handshake-flood attacker of flood.test.ts, run as its own process in its own namespace:
//   node --import tsx flood-attacker.ts VICTIM_PUBLIC_KEY HOST PORT RATE SECONDS
// Knowing only the victim's public key (as anyone may), it builds genuine initiations from a key
// the victim does not know (each costs the victim its two X25519 before it finds no such peer),
// with a valid MAC1. It then sends one of them fast enough to put the victim under load, takes
// the cookie the victim answers with, and so gives every initiation a valid MAC2: from then on
// it sends RATE initiations per second, and stops by itself after SECONDS. Prints "flooding"
// when it starts. SIGSTOP/SIGCONT pause it (a paused moment is not made up for afterwards).
import { createSocket } from 'node:dgram';
import { StaticKey, generatePrivateKey, keyFromBase64 } from '../../src/wireguard/crypto.js';
import { CookieGenerator } from '../../src/wireguard/cookie.js';
import { createInitiation, tai64n } from '../../src/wireguard/noise.js';
import { MESSAGE_COOKIE_REPLY, COOKIE_REPLY_SIZE } from '../../src/wireguard/constants.js';

const [keyText, host, portText, rateText, secondsText] = process.argv.slice(2);
const victim = keyFromBase64(keyText!);
const port = Number(portText);
const rate = Number(rateText);
const seconds = Number(secondsText);

const me = new StaticKey(generatePrivateKey());
const cookies = new CookieGenerator(victim, 120_000, () => performance.now());
const messages: Buffer[] = [];
for (let i = 0; i < 64; i++) messages.push(createInitiation(me, victim, Buffer.alloc(32), i + 1, tai64n())!.message);
const probe = messages[0]!;
cookies.stamp(probe); // MAC1 only: no cookie yet

const sock = createSocket('udp4');
let gotCookie = false;
sock.on('message', (m) => {
  if (m.length === COOKIE_REPLY_SIZE && m[0] === MESSAGE_COOKIE_REPLY && cookies.consumeReply(m)) gotCookie = true;
});
await new Promise<void>((resolve) => sock.bind(0, resolve));

/** Sends `next()` at `perSecond` until `until()` says stop; a pause (SIGSTOP) is not caught up. */
function pace(perSecond: number, next: () => Buffer, until: () => boolean): Promise<number> {
  return new Promise((resolve) => {
    let sent = 0;
    let owed = 0;
    let last = performance.now();
    const timer = setInterval(() => {
      const now = performance.now();
      owed = Math.min(owed + (now - last) * perSecond / 1000, perSecond / 50);
      last = now;
      for (; owed >= 1; owed--) { sock.send(next(), port, host); sent++; }
      if (until()) { clearInterval(timer); resolve(sent); }
    }, 2);
  });
}

// 1. Enough initiations without MAC2 to put the victim under load: its answer is a cookie.
const cookieDeadline = performance.now() + 10_000;
await pace(1000, () => probe, () => gotCookie || performance.now() > cookieDeadline);
if (!gotCookie) { console.log('no cookie reply'); process.exit(1); }
for (const m of messages) cookies.stamp(m); // MAC1 and now a valid MAC2

// 2. The flood.
console.log('flooding');
const started = performance.now();
let k = 0;
await pace(rate, () => messages[k++ % messages.length]!, () => performance.now() - started >= seconds * 1000);
sock.close();
