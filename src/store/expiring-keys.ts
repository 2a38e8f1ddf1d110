/**
 * The `key.expiring` security event: one audit row per key whose expiry is near, written
 * straight from api_keys by one statement. The row's window is the key's expiry, so the
 * unique (action, subject, window_start) makes it once per key and expiry across
 * replicas and runs; a key given a new expiry can be told again.
 */
import type { EntityManager } from '@mikro-orm/knex';
import type { Orm } from './orm';
import { rethrowStoreError } from './store';

export interface ExpiringKeys {
  /** Writes the event for every usable key that expires in (now, now + withinMs]; returns how many rows were new. */
  record(nowMs: number, withinMs: number): Promise<number>;
}

export function createExpiringKeys(orm: Orm, dialect: 'sqlite' | 'postgres'): ExpiringKeys {
  const knex = (orm.em as unknown as EntityManager).getKnex();
  const time = (ms: number): Date | number => (dialect === 'postgres' ? new Date(ms) : ms);
  const sql =
    'insert into audit_events (at, actor, action, organization_id, key_id, outcome, reason, subject, window_start, occurrences, first_seen, last_seen) ' +
    "select ?, 'keyward', 'key.expiring', organization_id, id, 'observed', 'expires within 7 days', id, expires_at, 1, ?, ? " +
    'from api_keys where revoked_at is null and expires_at > ? and expires_at <= ? ' +
    'on conflict (action, subject, window_start) do nothing';
  return {
    async record(nowMs, withinMs) {
      const now = time(nowMs);
      try {
        const result: unknown = await knex.raw(sql, [now, now, now, now, time(nowMs + withinMs)]);
        // better-sqlite3 reports `changes`; node-postgres `rowCount`.
        const r = result as { changes?: number; rowCount?: number };
        return Number(r.changes ?? r.rowCount ?? 0);
      } catch (e) {
        return rethrowStoreError(e);
      }
    },
  };
}
