/**
 * Replicas that start together on an empty PostgreSQL database all migrate it: they
 * take turns under an advisory lock, every migration is applied exactly once, and
 * none of them fails.
 */
import { Client } from 'pg';
import { migrate, openOrm, pendingMigrations, type Orm } from '../src/store/orm';
import { postgresMigrations } from '../src/store/migrations';
import { createTestDatabase, type TestDatabase } from './support/databases';

describe('concurrent migrations on postgres', () => {
  let db: TestDatabase;
  const orms: Orm[] = [];
  beforeAll(async () => {
    db = await createTestDatabase('postgres');
  });
  afterAll(async () => {
    for (const o of orms) await o.close(true);
    await db.dispose();
  });

  it('applies each migration once while four processes migrate at the same time', async () => {
    for (let i = 0; i < 4; i++) orms.push(await openOrm(db.config));
    const results = await Promise.allSettled(orms.map((o) => migrate(o)));
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'fulfilled', 'fulfilled']);
    const applied = results.flatMap((r) => (r.status === 'fulfilled' ? r.value : []));
    expect(applied.sort()).toEqual(postgresMigrations.map((m) => m.name).sort());
    expect(await pendingMigrations(orms[0]!)).toEqual([]);
    const c = new Client({ connectionString: db.config.kind === 'postgres' ? db.config.url : '' });
    await c.connect();
    try {
      const rows = await c.query('select name, count(*)::int as n from keyward_migrations group by name');
      expect(rows.rows.every((r: { n: number }) => r.n === 1)).toBe(true);
      expect(rows.rows).toHaveLength(postgresMigrations.length);
      // The lock is released: nobody holds it on this database any more (other test
      // files migrate their own databases meanwhile; advisory locks are per database).
      const held = await c.query<{ n: number }>(
        `select count(*)::int as n from pg_locks where locktype = 'advisory' and objid = $1 and database = (select oid from pg_database where datname = current_database())`,
        [0x6b776d67],
      );
      expect(held.rows[0]!.n).toBe(0);
    } finally {
      await c.end();
    }
  });
});
