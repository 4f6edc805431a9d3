// What a long-running command (wg up, socks, http) tells a service manager, and how it takes a
// reload: systemd's `systemctl reload` sends SIGHUP (ExecReload), the command says RELOADING=1,
// applies its changed configuration without dropping what it carries, and says READY=1 again.
// Outside systemd ($NOTIFY_SOCKET unset) only the reload remains.
import { notifyManager, type NotifyState } from '../notify.js';

let warned = false;

/** Tells the service manager `state`; a failure is one warning line, never a stop. */
export function tellManager(state: NotifyState): void {
  try {
    notifyManager(state);
  } catch (e) {
    if (warned) return;
    warned = true;
    console.error(`tuntap: warning: ${(e as Error).message}`);
  }
}

/** CLOCK_MONOTONIC in microseconds, which a RELOADING=1 carries (systemd 253's notify-reload asks for it). */
function monotonicUsec(): string {
  return (process.hrtime.bigint() / 1000n).toString();
}

/**
 * Reloads on SIGHUP, one at a time (a SIGHUP during a reload runs one more after it). `reload`
 * returns the status line to show, which goes to `report`; a failure goes there too (`failed`)
 * and leaves the service as it was, ready. Install it before announcing readiness, like the
 * SIGTERM handler. Returns the uninstaller.
 */
export function reloadOnHangup(reload: () => Promise<string>, report: (line: string, failed: boolean) => void): () => void {
  let running: Promise<void> | undefined;
  let again = false;
  const once = async (): Promise<void> => {
    tellManager({ RELOADING: 1, MONOTONIC_USEC: monotonicUsec() });
    let status: string;
    try {
      status = await reload();
      report(status, false);
    } catch (e) {
      status = `reload failed: ${(e as Error).message.split('\n')[0]}`;
      report(status, true);
    }
    tellManager({ READY: 1, STATUS: status.replace(/[\n\0]/g, ' ') });
  };
  const onHangup = (): void => {
    if (running) { again = true; return; }
    running = (async () => {
      do {
        again = false;
        await once();
      } while (again);
      running = undefined;
    })();
  };
  process.on('SIGHUP', onHangup);
  return () => { process.off('SIGHUP', onHangup); };
}
