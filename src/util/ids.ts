/**
 * Resource identifiers: `<prefix>_` + 9 base36 chars of milliseconds since the epoch
 * + 16 random base36 chars (82 bits). Lower-case letters and digits only, so they sort
 * by creation time under any database collation (keyset paging relies on it). Ids
 * made in the same millisecond sort in no particular order.
 */
import { randomInt } from 'node:crypto';

const B36 = '0123456789abcdefghijklmnopqrstuvwxyz';

export function newId(prefix: 'org' | 'key' | 'adm' | 'whk', nowMs: number): string {
  let rand = '';
  for (let i = 0; i < 16; i++) rand += B36[randomInt(36)];
  return `${prefix}_${nowMs.toString(36).padStart(9, '0')}${rand}`;
}

export const ID_PATTERN = /^(org|key|adm|whk)_[0-9a-z]{25}$/;
