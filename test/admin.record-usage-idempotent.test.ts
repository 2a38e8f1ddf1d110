/**
 * RecordUsage with an idempotency key counts once: a retry after a client deadline, a
 * retry after a restart, per organization; without a key every call counts; a bad key
 * is invalid_argument naming `idempotency_key`. UsageBatcher.writeBatch (the path such
 * a call takes) keeps the journal's promise: on a store outage the batch is journaled
 * under its id and replayed once, however often it is retried meanwhile.
 */
import { credentials, Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { EntityManager, Knex } from '@mikro-orm/knex';
import { createTestDatabase, DIALECTS, type Dialect } from './support/databases';
import { openOrm, migrate } from '../src/store/orm';
import { createUsageStore, type UsageStore } from '../src/usage/store';
import { createUsageTables } from '../src/store/usage-tables';
import { UsageBatcher } from '../src/usage/batcher';
import { UsageJournal } from '../src/usage/journal';
import { idempotentBatchId } from '../src/usage/record-usage';
import type { UsageEvent, UsageSink } from '../src/usage/types';
import { StoreUnavailableError } from '../src/errors/domain';
import { newId } from '../src/util/ids';
import { failure, startHarness, TEST_ADMIN_TOKEN, type Harness } from './support/harness';
import { eventually } from './support/tls-clients';
import { KeyAdminClient, RecordUsageRequest, UsageRecord } from '../src/gen/keyward/admin/v1/key_admin';

const NOW = Date.UTC(2026, 6, 14, 10, 0, 0);
const MONTH = '2026-07';

/** Two records of 100 tokens each for `keyId`. */
function records(keyId: string): UsageRecord[] {
  return [0, 1].map((i) => UsageRecord.fromPartial({ keyId, endpoint: '/v1/chat', method: 'POST', tokens: 100, requestId: `req-${i}` }));
}

async function tokensOf(h: Harness, organizationId: string): Promise<number> {
  const stats = await h.root.getUsageStats({ organizationId, month: MONTH });
  return stats.totals?.tokens ?? 0;
}

async function orgWithKey(h: Harness, name: string): Promise<{ orgId: string; keyId: string }> {
  const org = await h.root.createOrganization({ name });
  const { key } = await h.root.createKey({ organizationId: org.id, name: 'k' });
  return { orgId: org.id, keyId: key!.id };
}

/** Holds the usage tables until release(): RecordUsage's write waits meanwhile. */
async function holdUsageWrites(h: Harness, dialect: Dialect): Promise<() => Promise<void>> {
  const knex = (h.app.orm.em as unknown as EntityManager).getKnex();
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let holding!: () => void;
  const held = new Promise<void>((resolve) => (holding = resolve));
  const done = knex.transaction(async (trx) => {
    // SQLite: this transaction holds the write lock and the one pooled connection.
    if (dialect === 'postgres') await trx.raw('lock table usage_batches in exclusive mode');
    else await trx.raw('select 1');
    holding();
    await released;
  });
  await held;
  return async () => {
    release();
    await done;
  };
}

/** RecordUsage as root with a client deadline of `deadlineMs`. */
function recordWithDeadline(port: number, request: Partial<RecordUsageRequest>, deadlineMs: number): Promise<ServiceError> {
  const client = new KeyAdminClient(`127.0.0.1:${port}`, credentials.createInsecure());
  const md = new Metadata();
  md.set('authorization', `Bearer ${TEST_ADMIN_TOKEN}`);
  return new Promise((resolve, reject) => {
    client.recordUsage(RecordUsageRequest.fromPartial(request), md, { deadline: Date.now() + deadlineMs }, (e) => {
      client.close();
      if (e) resolve(e);
      else reject(new Error('the call should have missed its deadline'));
    });
  });
}

function completedRecordUsageCalls(h: Harness): number {
  const lines = h.logs
    .join('')
    .split('\n')
    .filter((line) => line !== '');
  return lines.filter((line) => {
    const entry = JSON.parse(line) as { msg?: string; method?: string; code?: string };
    return entry.msg === 'admin call' && entry.method === 'RecordUsage' && entry.code === 'ok';
  }).length;
}

describe.each(DIALECTS)('RecordUsage with an idempotency key on %s', (dialect) => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness(dialect);
    h.clock.set(NOW);
  });
  afterAll(async () => {
    await h.stop();
  });

  it('counts a retry after a missed deadline once', async () => {
    const { orgId, keyId } = await orgWithKey(h, 'deadline');
    const request = { records: records(keyId), idempotencyKey: 'batch-2026-07-14T10:00:00.000Z_1' };
    const before = completedRecordUsageCalls(h);

    const release = await holdUsageWrites(h, dialect);
    const missed = await recordWithDeadline(h.app.adminPort, request, 300);
    expect(missed.code).toBe(status.DEADLINE_EXCEEDED);
    await release();
    // The server finishes the call the client gave up on: its records are applied.
    await eventually(() => completedRecordUsageCalls(h) > before, 15_000, 'the timed-out RecordUsage to finish');
    expect(await tokensOf(h, orgId)).toBe(200);

    // The client retries with the same key: acknowledged, not applied again.
    await expect(h.root.recordUsage(request)).resolves.toEqual({ accepted: 2 });
    await expect(h.root.recordUsage(request)).resolves.toEqual({ accepted: 2 });
    expect(await tokensOf(h, orgId)).toBe(200);
  });

  it('lets another organization use the same key, and an organization its own again only once', async () => {
    const a = await orgWithKey(h, 'org-a');
    const b = await orgWithKey(h, 'org-b');
    const idempotencyKey = 'shared-key';
    await expect(h.root.recordUsage({ records: records(a.keyId), idempotencyKey })).resolves.toEqual({ accepted: 2 });
    await expect(h.root.recordUsage({ records: records(b.keyId), idempotencyKey })).resolves.toEqual({ accepted: 2 });
    // One request spanning both organizations is deduplicated per organization.
    const c = await orgWithKey(h, 'org-c');
    await expect(h.root.recordUsage({ records: [...records(a.keyId), ...records(c.keyId)], idempotencyKey })).resolves.toEqual({
      accepted: 4,
    });
    expect([await tokensOf(h, a.orgId), await tokensOf(h, b.orgId), await tokensOf(h, c.orgId)]).toEqual([200, 200, 200]);
  });

  it('counts every call without a key, as before', async () => {
    const { orgId, keyId } = await orgWithKey(h, 'no-key');
    await expect(h.root.recordUsage({ records: records(keyId) })).resolves.toEqual({ accepted: 2 });
    await expect(h.root.recordUsage({ records: records(keyId), idempotencyKey: '' })).resolves.toEqual({ accepted: 2 });
    expect(await tokensOf(h, orgId)).toBe(400);
  });

  it('rejects a bad key with invalid_argument naming idempotency_key', async () => {
    const { orgId, keyId } = await orgWithKey(h, 'bad-key');
    for (const idempotencyKey of ['x'.repeat(129), 'has space', 'slash/key', 'ключ', 'tab\t']) {
      const e = await failure(h.root.recordUsage({ records: records(keyId), idempotencyKey }));
      expect([e.grpc, e.code, e.trailerCode, e.field]).toEqual([
        status.INVALID_ARGUMENT,
        'invalid_argument',
        'invalid_argument',
        'idempotency_key',
      ]);
    }
    await expect(h.root.recordUsage({ records: records(keyId), idempotencyKey: 'A'.repeat(128) })).resolves.toEqual({ accepted: 2 });
    await expect(h.root.recordUsage({ records: records(keyId), idempotencyKey: 'a-Z_0.9:x' })).resolves.toEqual({ accepted: 2 });
    expect(await tokensOf(h, orgId)).toBe(400);
  });
});

describe.each(DIALECTS)('RecordUsage idempotency across a restart on %s', (dialect) => {
  it('still deduplicates a key after the server restarts on the same database', async () => {
    const db = await createTestDatabase(dialect);
    try {
      const first = await startHarness(dialect, { reuseDatabase: db });
      first.clock.set(NOW);
      const { orgId, keyId } = await orgWithKey(first, 'restart');
      const request = { records: records(keyId), idempotencyKey: 'restart-1' };
      await expect(first.root.recordUsage(request)).resolves.toEqual({ accepted: 2 });
      await first.stop();

      const second = await startHarness(dialect, { reuseDatabase: db });
      try {
        second.clock.set(NOW + 3_600_000);
        await expect(second.root.recordUsage(request)).resolves.toEqual({ accepted: 2 });
        expect(await tokensOf(second, orgId)).toBe(200);
      } finally {
        await second.stop();
      }
    } finally {
      await db.dispose();
    }
  });
});

/** The real store behind a switch that makes writes fail as an unreachable store does. */
function switchable(store: UsageStore): UsageSink & { down: boolean } {
  return {
    down: false,
    write(events, id) {
      return this.down ? Promise.reject(new StoreUnavailableError()) : store.write(events, id);
    },
  };
}

describe.each(DIALECTS)('UsageBatcher.writeBatch on %s', (dialect) => {
  const organizationId = newId('org', NOW);
  const keyId = newId('key', NOW);
  const batch: UsageEvent[] = [0, 1, 2].map((i) => ({
    at: NOW,
    organizationId,
    keyId,
    requestId: `r${i}`,
    endpoint: '/v1/x',
    method: 'POST',
    requests: 0,
    tokens: 10,
    source: 'api',
  }));

  async function tokens(knex: Knex): Promise<number> {
    const rows: { tokens: number | string }[] = await knex('usage_monthly').where('organization_id', organizationId).select('tokens');
    return rows.reduce((sum, row) => sum + Number(row.tokens), 0);
  }

  it('writes an id once, and on a store outage journals it (or fails) so that it still counts once', async () => {
    const db = await createTestDatabase(dialect);
    const orm = await openOrm(db.config);
    const dir = mkdtempSync(join(tmpdir(), 'keyward-writebatch-test-'));
    try {
      await migrate(orm);
      const knex = (orm.em as unknown as EntityManager).getKnex();
      const sink = switchable(createUsageStore(createUsageTables(orm, dialect)));

      const plain = new UsageBatcher(sink, { maxBuffered: 100 });
      const first = idempotentBatchId(organizationId, 'k1');
      await expect(plain.writeBatch(first, batch)).resolves.toBe(true);
      await expect(plain.writeBatch(first, batch)).resolves.toBe(false);
      expect(await tokens(knex)).toBe(30);
      expect(plain.stats()).toMatchObject({ flushed: 3, flushes: 1 });

      // No journal: the outage is the caller's error, and nothing was applied.
      sink.down = true;
      const second = idempotentBatchId(organizationId, 'k2');
      await expect(plain.writeBatch(second, batch)).rejects.toBeInstanceOf(StoreUnavailableError);
      expect(plain.stats().flushErrors).toBe(1);
      sink.down = false;
      await expect(plain.writeBatch(second, batch)).resolves.toBe(true);
      expect(await tokens(knex)).toBe(60);

      // A journal takes the batch under its id; retries meanwhile are replayed once.
      const journal = UsageJournal.openDir({ dir, maxBytes: 1024 * 1024 });
      const journaled = new UsageBatcher(sink, { maxBuffered: 100, journal });
      const third = idempotentBatchId(organizationId, 'k3');
      sink.down = true;
      await expect(journaled.writeBatch(third, batch)).resolves.toBe(true);
      await expect(journaled.writeBatch(third, batch)).resolves.toBe(true);
      expect(journaled.stats().journal).toMatchObject({ pendingBatches: 2, pendingEvents: 6 });
      sink.down = false;
      await journaled.flush();
      expect(journaled.stats().journal).toMatchObject({ pendingBatches: 0 });
      await expect(journaled.writeBatch(third, batch)).resolves.toBe(false);
      expect(await tokens(knex)).toBe(90);
      journal.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
      await orm.close(true);
      await db.dispose();
    }
  });
});
