/** PostgreSQL's statistics, polled until they settle, and their deltas per run. */
import { Client as PgClient } from 'pg';
import { sleep } from './system';

export interface PgStats {
  /** pg_stat_user_tables, by table. */
  tables: Record<string, { seq: number; idx: number; ins: number; upd: number }>;
  /** pg_stat_user_indexes.idx_scan, by index. */
  indexes: Record<string, number>;
  /** pg_stat_database.xact_commit, less this monitor's own transactions. */
  commits: number;
  /** Other sessions on this database that are not idle (a statement or a transaction open). */
  busy: number;
}

/**
 * Reads the cumulative statistics over one connection to the benchmark database, one
 * autocommit statement per reading (a statement's transaction sees a fresh snapshot
 * of the statistics, so no pg_stat_clear_snapshot() is needed). Each reading is itself
 * one committed transaction in this database: they are counted and subtracted.
 */
export class StatsMonitor {
  private queries = 0;
  constructor(private readonly pg: PgClient) {}

  async read(): Promise<PgStats> {
    const before = this.queries++;
    const r = await this.pg.query<{ tables: PgStats['tables'] | null; indexes: PgStats['indexes'] | null; commits: string; busy: number }>(`
      select
        (select json_object_agg(relname, json_build_object('seq', seq_scan, 'idx', coalesce(idx_scan, 0), 'ins', n_tup_ins, 'upd', n_tup_upd))
           from pg_stat_user_tables) as tables,
        (select json_object_agg(indexrelname, idx_scan) from pg_stat_user_indexes) as indexes,
        (select xact_commit from pg_stat_database where datname = current_database()) as commits,
        (select count(*)::int from pg_stat_activity
           where datname = current_database() and pid <> pg_backend_pid() and state <> 'idle') as busy`);
    const row = r.rows[0]!;
    return { tables: row.tables ?? {}, indexes: row.indexes ?? {}, commits: Number(row.commits) - before, busy: row.busy };
  }

  /**
   * Polls until the counters stop moving. PostgreSQL backends publish their counters
   * at most once a second while busy and about 10 s after going idle (PG 15's
   * pg_stat_force_next_flush() only flushes the calling backend), and keyward flushes
   * last_used_at every 10 s and usage every 5 s, each in one transaction whose counters
   * appear only at its commit: so the readings must have been unchanged for 12 s with
   * no other session on the database busy, and at least `minWaitMs` must have passed.
   */
  async settle(minWaitMs = 15_000, maxWaitMs = 300_000): Promise<PgStats> {
    const t0 = Date.now();
    let last = await this.read();
    let since = Date.now();
    for (;;) {
      await sleep(2000);
      const s = await this.read();
      if (JSON.stringify(s) !== JSON.stringify(last)) {
        last = s;
        since = Date.now();
      } else if (s.busy === 0 && Date.now() - since >= 12_000 && Date.now() - t0 >= minWaitMs) {
        return s;
      }
      if (Date.now() - t0 > maxWaitMs) {
        console.log(`  WARNING: PostgreSQL statistics still moving after ${maxWaitMs / 1000}s; using the last reading`);
        return s;
      }
    }
  }
}

export function delta(a: PgStats, b: PgStats) {
  const t = (name: string) => {
    const x = a.tables[name] ?? { seq: 0, idx: 0, ins: 0, upd: 0 };
    const y = b.tables[name] ?? { seq: 0, idx: 0, ins: 0, upd: 0 };
    return { seq: y.seq - x.seq, idx: y.idx - x.idx, ins: y.ins - x.ins, upd: y.upd - x.upd };
  };
  const i = (name: string) => (b.indexes[name] ?? 0) - (a.indexes[name] ?? 0);
  return {
    keyHashScans: i('api_keys_key_hash_unique'),
    keyPkeyScans: i('api_keys_pkey'),
    apiKeys: t('api_keys'),
    organizations: t('organizations'),
    usageEvents: t('usage_events'),
    usageDaily: t('usage_daily'),
    usageMonthly: t('usage_monthly'),
    commits: b.commits - a.commits,
  };
}
