/** The repositories behave the same on SQLite and on the real PostgreSQL. */
import { randomBytes } from 'node:crypto';
import { openOrm, migrate, pendingMigrations, type Orm } from '../src/store/orm';
import { createStore, isUnavailable, type Store } from '../src/store/store';
import { ApiKeyRecord, OrganizationRecord } from '../src/store/entities';
import { StoreUnavailableError } from '../src/errors/domain';
import { newId } from '../src/util/ids';
import { createTestDatabase, DIALECTS, type TestDatabase } from './support/databases';

const T0 = Date.UTC(2026, 5, 1, 12, 0, 0, 123);

function org(i: number, over: Partial<OrganizationRecord> = {}): OrganizationRecord {
  return Object.assign(new OrganizationRecord(), {
    id: newId('org', T0 + i),
    name: `org ${i}`,
    active: true,
    maxKeys: 10,
    rateLimitPerMinute: 60,
    monthlyQuota: 2 ** 40 + i,
    billingAnchorDay: 15,
    createdAt: new Date(T0 + i),
    updatedAt: new Date(T0 + i),
    ...over,
  });
}

function key(orgId: string, i: number, over: Partial<ApiKeyRecord> = {}): ApiKeyRecord {
  return Object.assign(new ApiKeyRecord(), {
    id: newId('key', T0 + i),
    organizationId: orgId,
    name: `key ${i}`,
    environment: 'live',
    scopes: ['chat', 'agents:*'],
    prefix: 'kw_live_abcd',
    hint: 'wxyz',
    keyHash: randomBytes(32).toString('hex'),
    createdAt: new Date(T0 + i),
    updatedAt: new Date(T0 + i),
    expiresAt: null,
    lastUsedAt: null,
    revokedAt: null,
    revokedBy: null,
    revokeReason: null,
    rateLimitPerMinute: null,
    metadata: { team: 'ml', 'unicode ✓': 'yes' },
    replacedByKeyId: null,
    rotatedFromKeyId: null,
    ...over,
  });
}

describe.each(DIALECTS)('repositories on %s', (dialect) => {
  let db: TestDatabase;
  let orm: Orm;
  let store: Store;
  /** store.transaction for writes that need no await (it takes an async function). */
  const writeAll = (write: (r: Parameters<Parameters<Store['transaction']>[0]>[0]) => unknown): Promise<void> =>
    store.transaction(
      (r) =>
        new Promise<void>((resolve) => {
          write(r); // a throw rejects, as in an async function
          resolve();
        }),
    );

  beforeAll(async () => {
    db = await createTestDatabase(dialect);
    orm = await openOrm(db.config);
    expect((await pendingMigrations(orm)).length).toBeGreaterThan(0);
    await migrate(orm);
    expect(await pendingMigrations(orm)).toEqual([]);
    expect(await migrate(orm)).toEqual([]);
    store = createStore(orm, dialect);
  });
  afterAll(async () => {
    await store.close();
    await db.dispose();
  });

  it('round-trips organizations exactly, including big quotas and millisecond times', async () => {
    const o = org(1);
    await writeAll((r) => r.orgs.add(o));
    const back = await store.read((r) => r.orgs.get(o.id));
    expect(back).toMatchObject({ id: o.id, name: 'org 1', active: true, maxKeys: 10, monthlyQuota: 2 ** 40 + 1, billingAnchorDay: 15 });
    expect(back!.createdAt.getTime()).toBe(T0 + 1);
  });

  it('pages organizations by id', async () => {
    const orgs = [org(10), org(11), org(12)];
    await writeAll((r) => orgs.forEach((o) => r.orgs.add(o)));
    const all = await store.read((r) => r.orgs.list({ limit: 100 }));
    const ids = all.map((o) => o.id);
    expect(ids).toEqual([...ids].sort());
    const after = await store.read((r) => r.orgs.list({ after: orgs[0]!.id, limit: 1 }));
    expect(after.map((o) => o.id)).toEqual([orgs[1]!.id]);
  });

  it('finds keys by hash and round-trips scopes, metadata and nullable fields', async () => {
    const o = org(20);
    const k = key(o.id, 1, { rateLimitPerMinute: 0, expiresAt: new Date(T0 + 86_400_000) });
    await writeAll((r) => {
      r.orgs.add(o);
      r.keys.add(k);
    });
    const back = await store.read((r) => r.keys.findByHash(k.keyHash));
    expect(back).toMatchObject({
      id: k.id,
      scopes: ['chat', 'agents:*'],
      metadata: { team: 'ml', 'unicode ✓': 'yes' },
      rateLimitPerMinute: 0,
      revokedAt: null,
    });
    expect(back!.expiresAt!.getTime()).toBe(T0 + 86_400_000);
    expect(await store.read((r) => r.keys.findByHash(randomBytes(32).toString('hex')))).toBeNull();
  });

  it('counts only usable keys: not revoked and not expired at the given time', async () => {
    const o = org(30);
    const now = new Date(T0 + 10_000);
    await writeAll((r) => {
      r.orgs.add(o);
      r.keys.add(key(o.id, 1));
      r.keys.add(key(o.id, 2, { revokedAt: new Date(T0) }));
      r.keys.add(key(o.id, 3, { expiresAt: new Date(T0 + 10_000) }));
      r.keys.add(key(o.id, 4, { expiresAt: new Date(T0 + 10_001) }));
    });
    expect(await store.read((r) => r.keys.countUsable(o.id, now))).toBe(2);
    expect(await store.read((r) => r.keys.list(o.id, false, { limit: 10 }))).toHaveLength(3);
    expect(await store.read((r) => r.keys.list(o.id, true, { limit: 10 }))).toHaveLength(4);
  });

  it('rejects a duplicate key hash', async () => {
    const o = org(40);
    const a = key(o.id, 1);
    await writeAll((r) => {
      r.orgs.add(o);
      r.keys.add(a);
    });
    await expect(writeAll((r) => r.keys.add(key(o.id, 2, { keyHash: a.keyHash })))).rejects.toThrow();
  });

  it('rolls back everything a failed transaction wrote, audit rows included', async () => {
    const o = org(50);
    await expect(
      store.transaction(async (r) => {
        r.orgs.add(o);
        r.audit.append({
          at: new Date(T0),
          actor: 'admin',
          action: 'organization.create',
          organizationId: o.id,
          keyId: null,
          outcome: 'success',
          reason: null,
          peer: 'test',
        });
        await r.orgs.list({ limit: 1 }); // forces a flush inside the transaction
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    expect(await store.read((r) => r.orgs.get(o.id))).toBeNull();
    expect(await store.read((r) => r.audit.list({ organizationId: o.id }, { limit: 10 }))).toEqual([]);
  });

  it('lists audit events newest first with filters and a half-open time range', async () => {
    const orgId = newId('org', T0);
    const keyId = newId('key', T0);
    await writeAll((r) => {
      for (let i = 0; i < 5; i++) {
        r.audit.append({
          at: new Date(T0 + i * 1000),
          actor: 'admin',
          action: i % 2 ? 'key.update' : 'key.create',
          organizationId: orgId,
          keyId: i < 3 ? keyId : null,
          outcome: 'success',
          reason: null,
          peer: 'p',
        });
      }
    });
    const all = await store.read((r) => r.audit.list({ organizationId: orgId }, { limit: 10 }));
    expect(all.map((e) => e.at.getTime())).toEqual([4, 3, 2, 1, 0].map((i) => T0 + i * 1000));
    expect(await store.read((r) => r.audit.list({ organizationId: orgId, keyId }, { limit: 10 }))).toHaveLength(3);
    expect(await store.read((r) => r.audit.list({ organizationId: orgId, action: 'key.update' }, { limit: 10 }))).toHaveLength(2);
    const range = await store.read((r) =>
      r.audit.list({ organizationId: orgId, from: new Date(T0 + 1000), to: new Date(T0 + 3000) }, { limit: 10 }),
    );
    expect(range.map((e) => e.at.getTime())).toEqual([T0 + 2000, T0 + 1000]);
    const older = await store.read((r) => r.audit.list({ organizationId: orgId }, { after: all[1]!.id, limit: 10 }));
    expect(older.map((e) => e.id)).toEqual(all.slice(2).map((e) => e.id));
  });
});

describe('an unreachable store', () => {
  const unreachable = { kind: 'postgres', url: 'postgres://postgres@127.0.0.1:1/none' } as const;

  it('fails to open with an error the store classifies as unavailable', async () => {
    const err = await openOrm(unreachable).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isUnavailable(err)).toBe(true);
  });

  it('reports store_unavailable, not an internal error, once opened', async () => {
    const orm = await openOrm(unreachable, undefined, false);
    const store = createStore(orm, 'postgres');
    await expect(store.ping()).rejects.toBeInstanceOf(StoreUnavailableError);
    const err: unknown = await store.read((r) => r.orgs.get('org_x')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreUnavailableError);
    expect((err as StoreUnavailableError).code).toBe('store_unavailable');
    await store.close();
  });
});
