// Child process for the owner/group tests: tries to attach to an existing device by name and
// prints the outcome as JSON (run under setpriv as an unprivileged uid).
import { openTun } from '../../src/device/index.js';
import { TuntapError } from '../../src/errors.js';

const name = process.argv[2]!;
try {
  const dev = openTun({ name });
  console.log(JSON.stringify({ ok: true, name: dev.name, uid: process.getuid?.() }));
  await dev.close();
} catch (e) {
  if (!(e instanceof TuntapError)) throw e;
  console.log(JSON.stringify({ ok: false, code: e.code, message: e.message }));
}
