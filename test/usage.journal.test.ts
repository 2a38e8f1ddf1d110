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
 *  - openForProcess: each opener gets its own subdirectory; what a dead process left
 *    (its subdirectory, or segments in the directory itself) is taken over by exactly
 *    one later opener, even from inside a directory a crash left half taken over; a
 *    live process's subdirectory is never taken;
 *  - a full journal keeps the batch in memory and counts the error;
 *  - spillSync() writes the buffer for a process about to exit.
 */
import { spawn } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import type { EntityManager, Knex } from '@mikro-orm/knex';
import { openOrm, migrate, type Orm } from '../src/store/orm';
import { createUsageStore, type UsageStore } from '../src/usage/store';
import { createUsageTables } from '../src/store/usage-tables';
import { UsageBatcher } from '../src/usage/batcher';
import { cellsOf } from '../src/usage/cells';
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

/** The events, each on an endpoint of its own (a cell each). */
const spread = (list: UsageEvent[]) => list.map((e, i) => ({ ...e, endpoint: `/v1/x/${i}` }));

/** A journal batch of events summed, with no raw events. */
const batchOf = (list: UsageEvent[]) => ({ cells: cellsOf(list), events: [] });

async function monthlyRequests(knex: Knex, organizationId: string): Promise<number> {
  const rows: { requests: number | string }[] = await knex('usage_monthly').where('organization_id', organizationId).select('requests');
  return rows.reduce((s, r) => s + Number(r.requests), 0);
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
    store = createUsageStore(createUsageTables(orm, dialect));
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
    expect(await store.writeEvents(events(ids, 3), 'batch-a1')).toBe(true);
    expect(await store.writeEvents(events(ids, 3), 'batch-a1')).toBe(false);
    expect(await store.writeEvents(events(ids, 2), 'batch-a2')).toBe(true);
    expect(await monthlyRequests(knex, ids.org)).toBe(5);
    await expect(store.writeEvents(events(ids, 1), 'not an id!')).rejects.toThrow(RangeError);
  });

  it('spills failed and waiting batches to disk, then replays them exactly once', async () => {
    const ids = org();
    const journal = UsageJournal.openDir({ dir, maxBytes: 64 * 1024 * 1024 });
    const sink = switchable(store);
    const errors: unknown[] = [];
    const b = new UsageBatcher(sink, { maxBuffered: 10_000, flushAt: 100, journal, onError: (e) => errors.push(e) });
    sink.down = true;
    for (const e of events(ids, 50)) b.record(e);
    await b.flush(); // the store attempt fails: the batch goes to disk
    expect(errors).toHaveLength(1);
    expect(b.stats().buffered).toBe(0);
    expect(b.stats().journal).toMatchObject({ pendingEvents: 50, pendingBatches: 1, spilled: 50 });
    const attempts = sink.attempts;
    // 250 cells, past flushAt: after a failed write, the hot path never tries the store.
    for (const e of spread(events(ids, 250))) b.record(e);
    expect(b.stats().buffered).toBe(250);
    expect(sink.attempts).toBe(attempts);
    await b.flush(); // the interval's flush probes by replaying: still down, so the sums are spilled
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
    await first.append('left-1', batchOf(events(ids, 4)));
    first.appendSync('left-2', batchOf(events(ids, 6)));
    first.close();
    // The second batch reached the store before the crash; a third append was torn.
    expect(await store.writeEvents(events(ids, 6), 'left-2')).toBe(true);
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

  it('gives each opener its own subdirectory with its own lock, removed on close when empty', () => {
    const a = UsageJournal.openForProcess({ dir, maxBytes: 1024 });
    const b = UsageJournal.openForProcess({ dir, maxBytes: 1024 });
    expect(a.directory).not.toBe(b.directory);
    for (const j of [a, b]) {
      expect(basename(j.directory)).toMatch(new RegExp(`^process-${process.pid}-[0-9a-f]{8}$`));
      expect(readFileSync(join(j.directory, 'LOCK'), 'utf8').trim()).toBe(String(process.pid));
      expect(j.adopted).toEqual({ directories: 0, segments: 0 });
    }
    a.close();
    b.close();
    expect(readdirSync(dir)).toEqual([]);
  });

  it("takes over a dead process's subdirectory exactly once, never a live one's", async () => {
    const ids = org();
    const sleeper = spawn('node', ['-e', 'setTimeout(() => {}, 60000)']);
    await new Promise((r) => sleeper.once('spawn', r));
    const live = join(dir, `process-${sleeper.pid}-0000beef`);
    try {
      await leaveJournal(live, 'live-1', events(ids, 3), sleeper.pid);
      const first = UsageJournal.openForProcess({ dir, maxBytes: 64 * 1024 * 1024 });
      expect(first.adopted).toEqual({ directories: 0, segments: 0 });
      expect(first.stats().pendingBatches).toBe(0);
      expect(existsSync(join(live, 'LOCK'))).toBe(true);
      first.close();
    } finally {
      sleeper.kill('SIGKILL');
      await new Promise((r) => sleeper.once('exit', r));
    }
    // Its owner is gone: the next two openers find it; only the first takes it.
    const a = UsageJournal.openForProcess({ dir, maxBytes: 64 * 1024 * 1024 });
    const b = UsageJournal.openForProcess({ dir, maxBytes: 64 * 1024 * 1024 });
    expect(a.adopted).toEqual({ directories: 1, segments: 1 });
    expect(a.stats()).toMatchObject({ pendingBatches: 1, pendingEvents: 3 });
    expect(b.adopted).toEqual({ directories: 0, segments: 0 });
    expect(b.stats().pendingBatches).toBe(0);
    expect(existsSync(live)).toBe(false);
    await new UsageBatcher(store, { maxBuffered: 1000, journal: a }).flush();
    expect(a.stats()).toMatchObject({ pendingBatches: 0, replayed: 3, duplicates: 0 });
    expect(await monthlyRequests(knex, ids.org)).toBe(3);
    a.close();
    b.close();
    expect(readdirSync(dir)).toEqual([]);
  });

  it('takes over the segments of a one-directory journal, and a takeover a crash interrupted', async () => {
    const ids = org();
    const dead = await deadPid();
    // An older keyward's journal: segments in the directory itself, its LOCK stale.
    await leaveJournal(dir, 'flat-1', events(ids, 2), dead);
    // A process that died while taking over another dead one's directory.
    const outer = join(dir, `process-${dead}-0000cafe`);
    await leaveJournal(outer, 'outer-1', events(ids, 4), dead);
    await leaveJournal(join(outer, `process-${dead}-0000f00d`), 'inner-1', events(ids, 5), dead);
    const j = UsageJournal.openForProcess({ dir, maxBytes: 64 * 1024 * 1024 });
    expect(j.adopted).toEqual({ directories: 1, segments: 3 });
    expect(j.stats()).toMatchObject({ pendingBatches: 3, pendingEvents: 11 });
    expect(readdirSync(dir).filter((n) => n.endsWith('.jsonl'))).toEqual([]);
    expect(readdirSync(j.directory).filter((n) => n.startsWith('process-'))).toEqual([]);
    await new UsageBatcher(store, { maxBuffered: 1000, journal: j }).flush();
    expect(j.stats()).toMatchObject({ pendingBatches: 0, replayed: 11 });
    expect(await monthlyRequests(knex, ids.org)).toBe(11);
    j.close();
  });

  it('leaves a one-directory journal whose LOCK names a live process', async () => {
    const ids = org();
    const sleeper = spawn('node', ['-e', 'setTimeout(() => {}, 60000)']);
    await new Promise((r) => sleeper.once('spawn', r));
    try {
      await leaveJournal(dir, 'held-1', events(ids, 2), sleeper.pid);
      const j = UsageJournal.openForProcess({ dir, maxBytes: 64 * 1024 * 1024 });
      expect(j.adopted).toEqual({ directories: 0, segments: 0 });
      expect(readdirSync(dir).filter((n) => n.endsWith('.jsonl'))).toHaveLength(1);
      j.close();
    } finally {
      sleeper.kill('SIGKILL');
      await new Promise((r) => sleeper.once('exit', r));
    }
  });

  it('keeps a subdirectory with pending batches on close, for the next process', async () => {
    const ids = org();
    const j = UsageJournal.openForProcess({ dir, maxBytes: 64 * 1024 * 1024 });
    await j.append('kept-1', batchOf(events(ids, 2)));
    j.close();
    expect(existsSync(join(j.directory, 'LOCK'))).toBe(false);
    expect(readdirSync(j.directory).filter((n) => n.endsWith('.jsonl'))).toHaveLength(1);
    // A later journal in this process takes it over (its pid is this one, but it is closed).
    const next = UsageJournal.openForProcess({ dir, maxBytes: 64 * 1024 * 1024 });
    expect(next.adopted).toEqual({ directories: 1, segments: 1 });
    expect(existsSync(j.directory)).toBe(false);
    next.close();
  });

  it('keeps the batch in memory when the journal is full, and spillSync writes the buffer', async () => {
    const ids = org();
    const journal = UsageJournal.openDir({ dir, maxBytes: 2000 });
    await expect(journal.append('too-big', batchOf(spread(events(ids, 100))))).rejects.toThrow(JournalFullError);
    const sink = switchable(store);
    sink.down = true;
    const journalErrors: unknown[] = [];
    const b = new UsageBatcher(sink, { maxBuffered: 1000, journal, onJournalError: (e) => journalErrors.push(e) });
    for (const e of spread(events(ids, 100))) b.record(e);
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

/** Writes a journal with one batch into `path`, as process `owner` would leave it (its LOCK, if given). */
async function leaveJournal(path: string, id: string, batch: UsageEvent[], owner?: number): Promise<void> {
  mkdirSync(path, { recursive: true });
  const j = UsageJournal.openDir({ dir: path, maxBytes: 64 * 1024 * 1024 });
  await j.append(id, batchOf(batch));
  j.close();
  if (owner !== undefined) writeFileSync(join(path, 'LOCK'), `${owner}\n`);
}

/** The pid of a process that has exited. */
async function deadPid(): Promise<number> {
  const child = spawn('node', ['-e', '']);
  await new Promise((r) => child.once('exit', r));
  return child.pid!;
}
