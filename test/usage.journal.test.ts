/**
 * The usage journal and idempotent batch writes, over the real usage store (SQLite and
 * PostgreSQL):
 *  - a batch written twice under one id is stored once;
 *  - with a journal, a failed write's batch goes to disk (not back to memory), and
 *    everything reaching flushAt while the store is down is spilled without a store
 *    attempt; the next interval replays it, oldest first, exactly once;
 *  - a reopened journal finds what an earlier process left, skips a torn last line,
 *    and replays the rest; a batch the store already had is skipped, not recounted;
 *  - one process per directory (a live owner's lock refuses, a dead one's is taken);
 *  - a full journal keeps the batch in memory and counts the error;
 *  - spillSync() writes the buffer for a process about to exit.
 */
import { spawn } from 'node:child_process';
import { appendFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { EntityManager, Knex } from '@mikro-orm/knex';
import { openOrm, migrate, type Orm } from '../src/store/orm';
import { createUsageStore, type UsageStore } from '../src/usage/store';
import { UsageBatcher } from '../src/usage/batcher';
import { JournalFullError, JournalLockedError, UsageJournal } from '../src/usage/journal';
import type { UsageEvent, UsageSink } from '../src/usage/types';
import { StoreUnavailableError } from '../src/errors/domain';
import { newId } from '../src/util/ids';
import { createTestDatabase, DIALECTS, type TestDatabase } from './support/databases';

const T0 = Date.UTC(2026, 4, 20, 8, 0, 0);
let n = 0;

function org(): { org: string; key: string } {
  n++;
  return { org: newId('org', T0 + n), key: newId('key', T0 + n) };
}

function events(ids: { org: string; key: string }, count: number): UsageEvent[] {
  return Array.from({ length: count }, (_, i) => ({
    at: T0,
    organizationId: ids.org,
    keyId: ids.key,
    requestId: `r${i}`,
    endpoint: '/v1/x',
    method: 'GET',
    requests: 1 as const,
    source: 'check' as const,
  }));
}

async function monthlyRequests(knex: Knex, organizationId: string): Promise<number> {
  const rows = await knex('usage_monthly').where('organization_id', organizationId).select('requests');
  return (rows as { requests: number | string }[]).reduce((s, r) => s + Number(r.requests), 0);
}

/** The real store behind a switch that makes writes fail as an unreachable store does. */
function switchable(store: UsageStore): UsageSink & { down: boolean; attempts: number } {
  return {
    down: false,
    attempts: 0,
    write(ev, id) {
      this.attempts++;
      return this.down ? Promise.reject(new StoreUnavailableError()) : store.write(ev, id);
    },
  };
}

describe.each(DIALECTS)('usage journal on %s', (dialect) => {
  let db: TestDatabase;
  let orm: Orm;
  let store: UsageStore;
  let knex: Knex;
  let dir: string;
  beforeAll(async () => {
    db = await createTestDatabase(dialect);
    orm = await openOrm(db.config);
    await migrate(orm);
    store = createUsageStore(orm, dialect);
    knex = (orm.em as unknown as EntityManager).getKnex();
  });
  afterAll(async () => {
    await orm.close(true);
    await db.dispose();
  });
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'keyward-journal-test-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('stores a batch written twice under one id once', async () => {
    const ids = org();
    expect(await store.write(events(ids, 3), 'batch-a1')).toBe(true);
    expect(await store.write(events(ids, 3), 'batch-a1')).toBe(false);
    expect(await store.write(events(ids, 2), 'batch-a2')).toBe(true);
    expect(await monthlyRequests(knex, ids.org)).toBe(5);
    await expect(store.write(events(ids, 1), 'not an id!')).rejects.toThrow(RangeError);
  });

  it('spills failed and waiting batches to disk, then replays them exactly once', async () => {
    const ids = org();
    const journal = UsageJournal.openDir({ dir, maxBytes: 64 * 1024 * 1024 });
    const sink = switchable(store);
    const errors: unknown[] = [];
    const b = new UsageBatcher(sink, { maxBuffered: 10_000, flushAt: 100, maxBatch: 100, journal, onError: (e) => errors.push(e) });
    sink.down = true;
    for (const e of events(ids, 50)) b.record(e);
    await b.flush(); // the store attempt fails: the batch goes to disk
    expect(errors).toHaveLength(1);
    expect(b.stats().buffered).toBe(0);
    expect(b.stats().journal).toMatchObject({ pendingEvents: 50, pendingBatches: 1, spilled: 50 });
    const attempts = sink.attempts;
    for (const e of events(ids, 250)) b.record(e); // reaches flushAt: spilled, no store attempt
    await waitFor(() => b.stats().buffered < 100 && b.stats().inFlight === 0);
    expect(sink.attempts).toBe(attempts); // the hot path never tries the store while it is down
    expect(b.stats().journal!.pendingEvents).toBeGreaterThanOrEqual(250);
    await b.flush(); // the interval's flush probes by replaying: still down
    expect(sink.attempts).toBe(attempts + 1);
    expect(b.stats()).toMatchObject({ buffered: 0, flushed: 0 });
    expect(b.stats().journal!.pendingEvents).toBe(300);

    sink.down = false;
    await b.flush();
    await b.flush();
    expect(b.stats().journal).toMatchObject({ pendingEvents: 0, pendingBatches: 0 });
    expect(b.stats().buffered).toBe(0);
    expect(await monthlyRequests(knex, ids.org)).toBe(300);
    expect(readdirSync(dir).filter((f) => f.endsWith('.jsonl'))).toEqual([]);
    journal.close();
  });

  it('replays what an earlier process left, skipping a torn line and batches already stored', async () => {
    const ids = org();
    const first = UsageJournal.openDir({ dir, maxBytes: 64 * 1024 * 1024 });
    await first.append('left-1', events(ids, 4));
    first.appendSync('left-2', events(ids, 6));
    first.close();
    // The second batch reached the store before the crash; a third append was torn.
    expect(await store.write(events(ids, 6), 'left-2')).toBe(true);
    const [segment] = readdirSync(dir).filter((f) => f.endsWith('.jsonl'));
    appendFileSync(join(dir, segment!), '{"id":"left-3","events":[{"at":');

    const again = UsageJournal.openDir({ dir, maxBytes: 64 * 1024 * 1024 });
    expect(again.stats()).toMatchObject({ pendingBatches: 2, pendingEvents: 10 });
    const b = new UsageBatcher(store, { maxBuffered: 1000, journal: again });
    await b.flush();
    expect(again.stats()).toMatchObject({ pendingBatches: 0, replayed: 4, duplicates: 1, corrupt: 1 });
    expect(await monthlyRequests(knex, ids.org)).toBe(10);
    again.close();
  });

  it('refuses a directory a live process holds and takes over a dead one', async () => {
    const sleeper = spawn('node', ['-e', 'setTimeout(() => {}, 60000)']);
    try {
      writeFileSync(join(dir, 'LOCK'), `${sleeper.pid}\n`);
      expect(() => UsageJournal.openDir({ dir, maxBytes: 1024 })).toThrow(JournalLockedError);
    } finally {
      sleeper.kill('SIGKILL');
      await new Promise((r) => sleeper.once('exit', r));
    }
    const j = UsageJournal.openDir({ dir, maxBytes: 1024 });
    expect(readFileSync(join(dir, 'LOCK'), 'utf8').trim()).toBe(String(process.pid));
    j.close();
    expect(readdirSync(dir)).not.toContain('LOCK');
  });

  it('keeps the batch in memory when the journal is full, and spillSync writes the buffer', async () => {
    const ids = org();
    const journal = UsageJournal.openDir({ dir, maxBytes: 2000 });
    await expect(journal.append('too-big', events(ids, 100))).rejects.toThrow(JournalFullError);
    const sink = switchable(store);
    sink.down = true;
    const journalErrors: unknown[] = [];
    const b = new UsageBatcher(sink, { maxBuffered: 1000, journal, onJournalError: (e) => journalErrors.push(e) });
    for (const e of events(ids, 100)) b.record(e);
    await b.flush();
    expect(journalErrors).toHaveLength(1);
    expect(b.stats()).toMatchObject({ buffered: 100, dropped: 0 });
    expect(b.stats().journal!.errors).toBe(1);
    journal.close();

    const roomy = UsageJournal.openDir({ dir: join(dir, 'roomy'), maxBytes: 64 * 1024 * 1024 });
    const c = new UsageBatcher(sink, { maxBuffered: 1000, journal: roomy });
    for (const e of events(ids, 30)) c.record(e);
    expect(c.spillSync()).toBe(30);
    expect(c.stats().buffered).toBe(0);
    expect(roomy.stats()).toMatchObject({ pendingEvents: 30 });
    sink.down = false;
    await c.flush();
    expect(await monthlyRequests(knex, ids.org)).toBe(30);
    roomy.close();
  });
});

async function waitFor(cond: () => boolean): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
}
