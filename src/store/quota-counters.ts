/**
 * quota_counters, the monthly quota's counts per (organization, period start), for the
 * quota backends (src/limits): SQLite stores period_start as epoch-ms integers,
 * PostgreSQL as timestamptz (bound as ISO-8601 UTC strings).
 */
import type { EntityManager, Knex } from '@mikro-orm/knex';
import type { QuotaPeriod, QuotaRow, QuotaStore } from '../limits/types';
import type { Orm } from './orm';

export type QuotaDialect = 'sqlite' | 'postgres';

/** Rows per statement. */
const CHUNK = 500;

function chunks<T>(xs: readonly T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < xs.length; i += CHUNK) out.push(xs.slice(i, i + CHUNK));
  return out;
}

interface Row {
  organization_id: string;
  start_ms: number | string;
  count: number | string;
}

export class SqlQuotaStore implements QuotaStore {
  private readonly knex: Knex;

  constructor(
    db: Orm | Knex,
    readonly dialect: QuotaDialect,
  ) {
    this.knex = 'em' in db ? (db.em as unknown as EntityManager).getKnex() : db;
  }

  count(organizationId: string, startMs: number): Promise<number> {
    return this.read(this.knex, [{ organizationId, startMs }]).then((rows) => rows[0]?.count ?? 0);
  }

  sync(adds: readonly QuotaRow[], reads: readonly QuotaPeriod[]): Promise<QuotaRow[]> {
    return this.knex.transaction(async (trx) => {
      const added = adds.length ? await this.upsert(trx, adds, 'count = quota_counters.count + excluded.count') : [];
      const stored = reads.length ? await this.read(trx, reads) : [];
      return [...added, ...stored];
    });
  }

  async raiseTo(rows: readonly QuotaRow[]): Promise<void> {
    const max = this.dialect === 'postgres' ? 'greatest' : 'max';
    await this.knex.transaction((trx) => this.upsert(trx, rows, `count = ${max}(quota_counters.count, excluded.count)`));
  }

  private start(ms: number): number | string {
    return this.dialect === 'postgres' ? new Date(ms).toISOString() : ms;
  }

  /** period_start as epoch ms in a select list. */
  private get startMsColumn(): string {
    return this.dialect === 'postgres' ? '(extract(epoch from period_start) * 1000)::bigint as start_ms' : 'period_start as start_ms';
  }

  private toRows(result: unknown): QuotaRow[] {
    const rows = (Array.isArray(result) ? result : (result as { rows: unknown[] }).rows) as Row[];
    return rows.map((r) => ({ organizationId: r.organization_id, startMs: Number(r.start_ms), count: Number(r.count) }));
  }

  private async upsert(trx: Knex, rows: readonly QuotaRow[], onConflict: string): Promise<QuotaRow[]> {
    const out: QuotaRow[] = [];
    for (const part of chunks(rows)) {
      const values = part.map(() => '(?, ?, ?)').join(', ');
      const bindings = part.flatMap((r) => [r.organizationId, this.start(r.startMs), r.count]);
      const res: unknown = await trx.raw(
        `insert into quota_counters (organization_id, period_start, count) values ${values} ` +
          `on conflict (organization_id, period_start) do update set ${onConflict} ` +
          `returning organization_id, ${this.startMsColumn}, count`,
        bindings,
      );
      out.push(...this.toRows(res));
    }
    return out;
  }

  private async read(trx: Knex, keys: readonly QuotaPeriod[]): Promise<QuotaRow[]> {
    const out: QuotaRow[] = [];
    for (const part of chunks(keys)) {
      const res: unknown = await trx('quota_counters')
        .whereIn(
          ['organization_id', 'period_start'],
          part.map((k) => [k.organizationId, this.start(k.startMs)]),
        )
        .select('organization_id', trx.raw(this.startMsColumn), 'count');
      out.push(...this.toRows(res));
    }
    return out;
  }
}

/** The quota counters' store on this ORM's database. */
export function createQuotaStore(orm: Orm, dialect: QuotaDialect): QuotaStore {
  return new SqlQuotaStore(orm, dialect);
}
