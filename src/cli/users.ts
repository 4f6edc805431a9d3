// Users and groups for the commands that hand a device to someone (add --owner/--group,
// bridge vm-tap add --user/--group) and show who has it: names and ids from /etc/passwd and
// /etc/group.
import { readFileSync } from 'node:fs';
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
