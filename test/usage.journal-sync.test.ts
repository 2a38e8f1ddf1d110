/**
 * The journal's epoch files (KEYWARD_USAGE_JOURNAL_SYNC_MS), over the real usage store
 * on SQLite and PostgreSQL:
 *  - each sync appends what was summed since the last one to the file of the batch it
 *    belongs to; a flush that stores the batch removes the file;
 *  - a process that dies leaves the file; the next opening of the journal sums it into
 *    one batch under the same id and the store counts it once: what was synced
 *    survives, what was summed after the last sync is the loss;
 *  - a file left after its batch reached the store (a crash between the two) is not
 *    counted again.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { EntityManager, Knex } from '@mikro-orm/knex';
import { openOrm, migrate, type Orm } from '../src/store/orm';
import { createUsageStore, type UsageStore } from '../src/usage/store';
import { createUsageTables } from '../src/store/usage-tables';
import { UsageBatcher } from '../src/usage/batcher';
import { UsageJournal } from '../src/usage/journal';
import type { UsageCell } from '../src/usage/cells';
import type { UsageEvent } from '../src/usage/types';
import { ManualScheduler } from '../src/util/scheduler';
import { newId } from '../src/util/ids';
import { createTestDatabase, DIALECTS, type TestDatabase } from './support/databases';

const T0 = Date.UTC(2026, 6, 1, 10, 0, 0);
let n = 0;

function newOrg(): { org: string; key: string } {
  n++;
  return { org: newId('org', T0 + n), key: newId('key', T0 + n) };
}

const check = (ids: { org: string; key: string }, endpoint = '/v1/x'): UsageEvent => ({
  at: T0,
  organizationId: ids.org,
  keyId: ids.key,
  endpoint,
  method: 'GET',
  requests: 1,
  source: 'check',
});

const epochFiles = (dir: string) => readdirSync(dir).filter((f) => f.startsWith('epoch-'));

describe.each(DIALECTS)('journal sync on %s', (dialect) => {
  let db: TestDatabase;
  let orm: Orm;
  let store: UsageStore;
  let knex: Knex;
  let dir: string;
  beforeAll(async () => {
    db = await createTestDatabase(dialect);
    orm = await openOrm(db.config);
    await migrate(orm);
    store = createUsageStore(createUsageTables(orm, dialect));
    knex = (orm.em as unknown as EntityManager).getKnex();
  });
  afterAll(async () => {
    await orm.close(true);
    await db.dispose();
  });
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'keyward-journal-sync-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const requests = async (org: string) => {
    const rows: { requests: number | string }[] = await knex('usage_monthly').where('organization_id', org).select('requests');
    return rows.reduce((s, r) => s + Number(r.requests), 0);
  };
  const open = () => UsageJournal.openDir({ dir, maxBytes: 64 * 1024 * 1024 });

  it('start() schedules the sync at the given interval; each sync appends the delta; a stored batch removes its file', async () => {
    const ids = newOrg();
    const journal = open();
    const b = new UsageBatcher(store, { maxBuffered: 1000, journal });
    const held = new ManualScheduler();
    b.start(3_600_000, held, 200);
    expect(held.names()).toEqual(['usage-flush', 'usage-journal-sync']);
    b.stop();

    for (let i = 0; i < 3; i++) b.record(check(ids));
    await b.sync();
    for (let i = 0; i < 2; i++) b.record(check(ids, '/v1/y'));
    await b.sync();
    await b.sync(); // nothing new: nothing appended
    const [file] = epochFiles(dir);
    const lines = readFileSync(join(dir, file!), 'utf8').trim().split('\n');
    expect(lines.map((l) => (JSON.parse(l) as { cells: UsageCell[] }).cells.map((c) => [c.endpoint, c.requests]))).toEqual([
      [['/v1/x', 3]],
      [['/v1/y', 2]],
    ]);

    await b.flush();
    expect(await requests(ids.org)).toBe(5);
    expect(epochFiles(dir)).toEqual([]);
    journal.close();
  });

  it('a process that dies keeps what was synced: the next journal counts it once', async () => {
    const ids = newOrg();
    const first = open();
    const dead = new UsageBatcher(store, { maxBuffered: 1000, journal: first });
    for (let i = 0; i < 10; i++) dead.record(check(ids));
    await dead.sync();
    for (let i = 0; i < 4; i++) dead.record(check(ids)); // summed after the last sync: lost with the process
    first.close(); // what a SIGKILL leaves: the epoch file

    const next = open();
    expect(epochFiles(dir)).toEqual([]);
    expect(next.stats()).toMatchObject({ pendingBatches: 1, pendingEvents: 10 });
    const b = new UsageBatcher(store, { maxBuffered: 1000, journal: next });
    await b.flush();
    expect(await requests(ids.org)).toBe(10);
    expect(next.stats()).toMatchObject({ pendingBatches: 0, replayed: 10 });
    next.close();
  });

  it('security events ride along: synced, left by a dead process, and written once to their audit row', async () => {
    const ids = newOrg();
    const first = open();
    const dead = new UsageBatcher(store, { maxBuffered: 1000, journal: first });
    const cell = {
      kind: 'key.revoked_used' as const,
      organizationId: ids.org,
      keyId: ids.key,
      subject: ids.key,
      windowStart: T0,
      outcome: 'denied' as const,
      reason: 'revoked_api_key',
      count: 1,
      firstSeen: T0,
      lastSeen: T0,
      client: '192.0.2.1',
    };
    dead.recordSecurity(cell);
    dead.recordSecurity({ ...cell, firstSeen: T0 + 5, lastSeen: T0 + 5, client: '192.0.2.2' });
    await dead.sync();
    first.close();

    const next = open();
    await new UsageBatcher(store, { maxBuffered: 1000, journal: next }).flush();
    const rows: { occurrences: number; client_address: string }[] = await knex('audit_events')
      .where({ action: 'key.revoked_used', key_id: ids.key })
      .select('occurrences', 'client_address');
    expect(rows).toEqual([{ occurrences: 2, client_address: '192.0.2.2' }]);
    next.close();
  });

  it('a file whose batch had reached the store is not counted again', async () => {
    const ids = newOrg();
    const first = open();
    const dead = new UsageBatcher(store, { maxBuffered: 1000, journal: first });
    for (let i = 0; i < 4; i++) dead.record(check(ids));
    await dead.sync();
    // The batch is stored under its id, and the process dies before removing the file.
    const id = /^epoch-(.+)\.jsonl$/.exec(epochFiles(dir)[0]!)![1]!;
    const line = JSON.parse(readFileSync(join(dir, epochFiles(dir)[0]!), 'utf8').trim()) as { cells: UsageCell[] };
    expect(await store.write({ cells: line.cells, events: [] }, id)).toBe(true);
    first.close();

    const next = open();
    const b = new UsageBatcher(store, { maxBuffered: 1000, journal: next });
    await b.flush();
    expect(next.stats()).toMatchObject({ pendingBatches: 0, duplicates: 1, replayed: 0 });
    expect(await requests(ids.org)).toBe(4);
    next.close();
  });
});
