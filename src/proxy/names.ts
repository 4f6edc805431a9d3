// Host names that may be handed to another protocol: the checks are packet's (hostname.ts), where
// the codecs that carry names use them; printable() shows a refused one in a log line.
export { isHostName, isDestinationHost } from '../packet/hostname.js';

/** The text with control characters escaped, so a refused name can be logged on one line. */
export function printable(text: string, max = 80): string {
  const shown = text.length > max ? `${text.slice(0, max)}…` : text;
  return JSON.stringify(shown);
}
