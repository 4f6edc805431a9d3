// `tuntap http`: tun2http. The transparent proxy of socks.ts with an HTTP CONNECT upstream.
import { runProxyCommand } from './socks.js';

export function run(argv: string[]): Promise<number> {
  return runProxyCommand(argv, 'http');
}
