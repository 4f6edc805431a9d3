// Users and groups for the commands that hand a device to someone (add --owner/--group,
// bridge vm-tap add --user/--group): names and ids from /etc/passwd and /etc/group, and whether
// that someone can open /dev/net/tun at all, which the device's owner and group do not change.
import { readFileSync, statSync } from 'node:fs';
import { UserError } from '../errors.js';

interface Entry { name: string; id: number; gid?: number; members: string[] }
type IdTable = { byName: Map<string, Entry>; byId: Map<number, Entry> };
const idTables = new Map<string, IdTable>();

const PASSWD = '/etc/passwd';
const GROUP = '/etc/group';

/** Parses /etc/passwd or /etc/group (once per file: list views every device). */
function idTable(file: string): IdTable {
  const cached = idTables.get(file);
  if (cached) return cached;
  const table: IdTable = { byName: new Map(), byId: new Map() };
  let text = '';
  try { text = readFileSync(file, 'utf8'); } catch { /* no such file: numeric ids only */ }
  for (const line of text.split('\n')) {
    const fields = line.split(':');
    const [name, , id] = fields;
    if (!name || id === undefined || !/^\d+$/.test(id)) continue;
    const entry: Entry = file === PASSWD
      ? { name, id: Number(id), gid: /^\d+$/.test(fields[3] ?? '') ? Number(fields[3]) : undefined, members: [] }
      : { name, id: Number(id), members: (fields[3] ?? '').split(',').filter(Boolean) };
    if (!table.byName.has(name)) table.byName.set(name, entry);
    if (!table.byId.has(entry.id)) table.byId.set(entry.id, entry);
  }
  idTables.set(file, table);
  return table;
}

export const userName = (uid: number): string | undefined => idTable(PASSWD).byId.get(uid)?.name;
export const groupName = (gid: number): string | undefined => idTable(GROUP).byId.get(gid)?.name;

/**
 * A user or group given by name or number, as an id. `option` is how the command line named it
 * (for the message when there is no such user or group).
 */
export function resolveId(value: string, kind: 'user' | 'group', option: string): number {
  if (/^\d+$/.test(value)) {
    const id = Number(value);
    if (id > 0xfffffffe) throw new UserError(`${option}: ${value} is not a valid ${kind} id`);
    return id;
  }
  const entry = idTable(kind === 'user' ? PASSWD : GROUP).byName.get(value);
  if (!entry) throw new UserError(`${option}: no ${kind} named "${value}" on this system`);
  return entry.id;
}

const TUN_NODE = '/dev/net/tun';

/**
 * A one-line warning when the user `owner` (or the members of `group`) cannot open
 * /dev/net/tun by its mode bits: the device then exists for them, but they cannot attach to it.
 * Undefined when they can (or the node cannot be read, which the open itself will report).
 */
export function tunNodeWarning(owner: number | undefined, group: number | undefined): string | undefined {
  if (owner === 0) return undefined;
  let st;
  try { st = statSync(TUN_NODE); } catch { return undefined; }
  const mode = st.mode & 0o777;
  const rw = (bits: number, shift: number) => ((bits >> shift) & 0o6) === 0o6;
  if (rw(mode, 0)) return undefined;
  let who: string;
  if (owner !== undefined) {
    const user = idTable(PASSWD).byId.get(owner);
    if (st.uid === owner && rw(mode, 6)) return undefined;
    const groups = new Set<number>(user?.gid !== undefined ? [user.gid] : []);
    if (user) for (const g of idTable(GROUP).byId.values()) if (g.members.includes(user.name)) groups.add(g.id);
    if (group !== undefined) groups.add(group);
    if (groups.has(st.gid) && rw(mode, 3)) return undefined;
    who = `user ${user?.name ?? owner}`;
  } else if (group !== undefined) {
    if (st.gid === group && rw(mode, 3)) return undefined;
    who = `group ${groupName(group) ?? group}`;
  } else {
    return undefined;
  }
  const nodeOwner = `${userName(st.uid) ?? st.uid}:${groupName(st.gid) ?? st.gid}`;
  return `warning: ${who} cannot open ${TUN_NODE} (mode ${mode.toString(8).padStart(4, '0')}, ${nodeOwner}), so it cannot ` +
    `attach to the device either: run chmod 0666 ${TUN_NODE}, or keep it with a udev rule such as ` +
    `KERNEL=="tun", MODE="0666" in /etc/udev/rules.d/60-tun.rules`;
}
