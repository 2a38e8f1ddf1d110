/**
 * Resource identifiers: `<prefix>_` + 9 base62 chars of milliseconds since the epoch
 * + 12 random base62 chars. They sort by creation time, which keyset paging uses.
 */
import { base62, randomBase62 } from '../keys/format';

export function newId(prefix: 'org' | 'key' | 'adm', nowMs: number): string {
  return `${prefix}_${base62(nowMs, 9)}${randomBase62(12)}`;
}

export const ID_PATTERN = /^(org|key|adm)_[0-9A-Za-z]{21}$/;
