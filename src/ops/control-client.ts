// Asking a control socket for its status, as `tuntap top` does. The answer is read from
// another process and trusted no further than that: it is bounded in size and time, must be
// one JSON object, and every value taken from it is checked (snapshot.ts).
import { connect } from 'node:net';

export interface RequestLimits {
  /** Bytes of answer accepted (default 4 MiB). */
  maxBytes?: number;
  /** Time the whole exchange may take (default 2000 ms). */
  timeoutMs?: number;
}

/** Sends `request` and a newline to the unix socket at `path`; resolves with the first answer line. */
export function requestLine(path: string, request: string, limits: RequestLimits = {}): Promise<string> {
  const maxBytes = limits.maxBytes ?? 4 << 20;
  return new Promise((resolve, reject) => {
    const sock = connect(path);
    const chunks: Buffer[] = [];
    let size = 0;
    const finish = (err: Error | undefined, line?: string): void => {
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err); else resolve(line!);
    };
    const timer = setTimeout(() => finish(new Error(`${path}: no answer within ${limits.timeoutMs ?? 2000} ms`)), limits.timeoutMs ?? 2000);
    sock.on('connect', () => sock.write(`${request}\n`));
    sock.on('data', (d: Buffer) => {
      const nl = d.indexOf(0x0a);
      if (size + (nl < 0 ? d.length : nl) > maxBytes) { finish(new Error(`${path}: the answer is larger than ${maxBytes} bytes`)); return; }
      chunks.push(nl < 0 ? d : d.subarray(0, nl));
      size += nl < 0 ? d.length : nl;
      if (nl >= 0) finish(undefined, Buffer.concat(chunks).toString('utf8'));
    });
    sock.on('end', () => finish(new Error(`${path}: closed without an answer`)));
    sock.on('error', (e) => finish(new Error(`${path}: ${(e as NodeJS.ErrnoException).code ?? e.message}`)));
  });
}

/** requestLine, parsed: the answer must be a JSON object. */
export async function requestJson(path: string, request: string, limits?: RequestLimits): Promise<Record<string, unknown>> {
  const line = await requestLine(path, request, limits);
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    throw new Error(`${path}: the answer is not JSON`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error(`${path}: the answer is not a JSON object`);
  return value as Record<string, unknown>;
}
