/**
 * Rotating the hash secret: keyward restarted on the same database with a new primary
 * secret B and the old secret A as KEYWARD_HASH_SECRET_PREVIOUS.
 *  - a key made under A is allowed under B + A; its stored hash becomes B's (and its
 *    hash_secret_id B's id) after its first Check; it keeps working under B alone;
 *  - a key never used during the rotation stops working under B alone;
 *  - an unknown key costs one primary and one previous lookup, then nothing (the
 *    negative cache covers both);
 *  - a key found under A and revoked before its new hash is written is denied at once
 *    (the cache finds it by its old stored hash);
 *  - admin tokens (configured or stored) and admin-scoped keys move to B the same way;
 *  - the count of keys still on A is exported, and the start logs both secrets' ids.
 * Each restart is a new app over the same database; the rewrites are polled for.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { DIALECTS, createTestDatabase, type Dialect, type TestDatabase } from './support/databases';
import { startHarness, failure, type Harness, type HarnessOverrides } from './support/harness';
import { EnvoyClient, type WireCheckResponse } from './support/envoy-client';
import { generateKey } from '../src/keys/format';
import { secretId } from '../src/keys/hash';
import { parseDenyBody } from './support/deny-body';

const hmac = (secret: Buffer, text: string) => createHmac('sha256', secret).update(text, 'utf8').digest('hex');

function outcome(r: WireCheckResponse): string {
  if (r.ok_response) return 'allow';
  return `${r.denied_response?.status?.code}:${parseDenyBody(r.denied_response?.body ?? '{}').error?.code}`;
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, deadlineMs = 15_000): Promise<T> {
  const started = Date.now();
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() - started > deadlineMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function rows<T>(h: Harness, sql: string, params: unknown[] = []): Promise<T[]> {
  return (await h.app.orm.em.getConnection().execute(sql, params)) as T[];
}

const storedKey = async (h: Harness, id: string) =>
  (
    await rows<{ key_hash: string; hash_secret_id: string | null }>(h, 'select key_hash, hash_secret_id from api_keys where id = ?', [id])
  )[0]!;

const metric = async (h: Harness, name: string) => {
  const line = (await h.app.metrics.expose()).body.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.split(' ')[1]);
};

describe.each(DIALECTS)('hash secret rotation on %s', (dialect: Dialect) => {
  const A = randomBytes(32);
  const B = randomBytes(32);
  let db: TestDatabase;
  let running: Harness | undefined;
  let envoy: EnvoyClient | undefined;

  /** Starts keyward on the shared database (stopping the previous one). */
  async function start(overrides: HarnessOverrides): Promise<{ h: Harness; check: (key: string) => Promise<string> }> {
    await stop();
    // Real timers: rehashed keys are written in the background, every lastUsedFlushSeconds.
    const h = await startHarness(dialect, {
      reuseDatabase: db,
      realTimers: true,
      ...overrides,
      authz: { lastUsedFlushSeconds: 1, ...overrides.authz },
    });
    running = h;
    const e = new EnvoyClient(h.app.authzPort);
    envoy = e;
    return { h, check: async (key) => outcome(await e.check({ headers: { 'x-api-key': key } })) };
  }
  async function stop(): Promise<void> {
    envoy?.close();
    envoy = undefined;
    const h = running;
    running = undefined;
    await h?.stop();
  }

  beforeEach(async () => {
    db = await createTestDatabase(dialect);
  });
  afterEach(async () => {
    await stop();
    await db.dispose();
  });

  it('a key made under A works under B + A, is rehashed to B by its first Check, and works under B alone; an unused one does not', async () => {
    let { h, check } = await start({ hashSecret: A });
    const orgId = (await h.root.createOrganization({ name: 'Rot', rateLimitPerMinute: 0 })).id;
    const used = await h.root.createKey({ organizationId: orgId, name: 'used' });
    const unused = await h.root.createKey({ organizationId: orgId, name: 'unused' });
    expect(await storedKey(h, used.key!.id)).toEqual({ key_hash: hmac(A, used.secret), hash_secret_id: secretId(A) });
    expect(await check(used.secret)).toBe('allow');

    ({ h, check } = await start({ hashSecret: B, hashSecretPrevious: A }));
    // The start names both secrets by id, once.
    const rotationLines = h.logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.previousHashSecretId !== undefined);
    expect(rotationLines).toHaveLength(1);
    expect(rotationLines[0]).toMatchObject({ level: 'info', hashSecretId: secretId(B), previousHashSecretId: secretId(A) });
    await h.app.hashRotation.refreshCounts();
    expect(await metric(h, 'keyward_keys_on_previous_hash_secret')).toBe(2);

    expect(await check(used.secret)).toBe('allow');
    expect(h.app.cache.stats).toMatchObject({ misses: 1, previousLookups: 1, previousHits: 1 });
    const rehashed = await until("the stored hash to become B's", async () => {
      const k = await storedKey(h, used.key!.id);
      return k.key_hash === hmac(B, used.secret) ? k : undefined;
    });
    expect(rehashed.hash_secret_id).toBe(secretId(B));
    expect(await storedKey(h, unused.key!.id)).toEqual({ key_hash: hmac(A, unused.secret), hash_secret_id: secretId(A) });
    // Later Checks hash once, under B, and hit the cache.
    expect(await check(used.secret)).toBe('allow');
    expect(h.app.cache.stats).toMatchObject({ hits: 1, misses: 1, previousLookups: 1 });
    await h.app.hashRotation.refreshCounts();
    expect(await metric(h, 'keyward_keys_on_previous_hash_secret')).toBe(1);
    expect(await metric(h, 'keyward_keys_rehashed_total')).toBe(1);

    ({ h, check } = await start({ hashSecret: B }));
    expect(await check(used.secret)).toBe('allow');
    // Never used during the rotation: still stored under A, which is gone.
    expect(await check(unused.secret)).toBe('401:invalid_api_key');
    expect(h.logs.some((l) => l.includes('previousHashSecretId'))).toBe(false);
    expect(await metric(h, 'keyward_keys_on_previous_hash_secret')).toBe(0);
  });

  it('an unknown key costs one lookup under each secret, then is answered from the negative cache', async () => {
    const { h, check } = await start({ hashSecret: B, hashSecretPrevious: A });
    const unknown = generateKey('live');
    expect(await check(unknown)).toBe('401:invalid_api_key');
    expect(h.app.cache.stats).toMatchObject({ misses: 1, previousLookups: 1, previousHits: 0, negativeHits: 0 });
    expect(await check(unknown)).toBe('401:invalid_api_key');
    expect(h.app.cache.stats).toMatchObject({ misses: 1, previousLookups: 1, negativeHits: 1 });
    // A malformed key is refused before any hashing or lookup.
    expect(await check(unknown.slice(0, -1) + (unknown.endsWith('A') ? 'B' : 'A'))).toBe('401:invalid_api_key');
    expect(h.app.cache.stats).toMatchObject({ misses: 1, previousLookups: 1, negativeHits: 1 });
  });

  it('a key found under A and revoked before its new hash is written is denied at once', async () => {
    const first = await start({ hashSecret: A });
    const orgId = (await first.h.root.createOrganization({ name: 'Rev', rateLimitPerMinute: 0 })).id;
    const k = await first.h.root.createKey({ organizationId: orgId, name: 'k' });
    // Rewrites are written only every hour here: the store keeps A's hash meanwhile.
    const { h, check } = await start({ hashSecret: B, hashSecretPrevious: A, authz: { lastUsedFlushSeconds: 3600, cacheTtlSeconds: 600 } });
    await h.app.changes?.stop(); // PostgreSQL: only this process's own invalidation is tested
    expect(await check(k.secret)).toBe('allow');
    expect(h.app.hashRotation.size).toBe(1);
    expect((await storedKey(h, k.key!.id)).key_hash).toBe(hmac(A, k.secret));
    await h.root.revokeKey({ id: k.key!.id, reason: 'leaked' });
    expect(await check(k.secret)).toBe('401:revoked_api_key');
  });

  it('a stored admin token made under A works under B + A, is rehashed, and works under B alone; so does an admin-scoped key', async () => {
    const token = 'rotation-admin-token-' + randomBytes(8).toString('hex');
    let { h } = await start({ hashSecret: A, adminToken: token });
    const orgId = (await h.client(token).createOrganization({ name: 'Adm', rateLimitPerMinute: 0 })).id;
    const adminKey = await h.client(token).createKey({ organizationId: orgId, name: 'ops', scopes: ['admin'] });
    const [before] = await rows<{ id: string; token_hash: string; hash_secret_id: string | null }>(
      h,
      'select id, token_hash, hash_secret_id from admin_tokens',
    );
    expect(before).toEqual({ id: expect.any(String) as unknown, token_hash: hmac(A, token), hash_secret_id: secretId(A) });

    // Not configured any more: the stored token (A's hash) stays until it authenticates.
    ({ h } = await start({ hashSecret: B, hashSecretPrevious: A, adminToken: undefined }));
    expect((await rows<{ token_hash: string }>(h, 'select token_hash from admin_tokens'))[0]!.token_hash).toBe(hmac(A, token));
    await h.app.hashRotation.refreshCounts();
    expect(await metric(h, 'keyward_admin_tokens_on_previous_hash_secret')).toBe(1);
    expect((await h.client(token).getOrganization({ id: orgId })).id).toBe(orgId);
    const after = await until('the admin token to be rehashed', async () => {
      const [t] = await rows<{ id: string; token_hash: string; hash_secret_id: string | null }>(
        h,
        'select id, token_hash, hash_secret_id from admin_tokens',
      );
      return t!.token_hash === hmac(B, token) ? t : undefined;
    });
    expect(after).toEqual({ id: before!.id, token_hash: hmac(B, token), hash_secret_id: secretId(B) });
    await h.app.hashRotation.refreshCounts();
    expect(await metric(h, 'keyward_admin_tokens_on_previous_hash_secret')).toBe(0);
    // The admin-scoped key authenticates through A and is queued for its new hash.
    expect((await h.client(adminKey.secret).getOrganization({ id: orgId })).id).toBe(orgId);
    await until('the admin key to be rehashed', async () =>
      (await storedKey(h, adminKey.key!.id)).key_hash === hmac(B, adminKey.secret) ? true : undefined,
    );
    // A wrong token is still refused.
    expect((await failure(h.client('rotation-wrong-token-' + randomBytes(8).toString('hex')).getOrganization({ id: orgId }))).code).toBe(
      'invalid_credentials',
    );

    ({ h } = await start({ hashSecret: B, adminToken: undefined }));
    expect((await h.client(token).getOrganization({ id: orgId })).id).toBe(orgId);
    expect((await h.client(adminKey.secret).getOrganization({ id: orgId })).id).toBe(orgId);
  });

  it('an admin token never used during the rotation stops working under B alone', async () => {
    const token = 'rotation-admin-token-' + randomBytes(8).toString('hex');
    await start({ hashSecret: A, adminToken: token });
    await start({ hashSecret: B, hashSecretPrevious: A, adminToken: undefined });
    const { h } = await start({ hashSecret: B, adminToken: undefined });
    expect((await failure(h.client(token).listOrganizations({}))).code).toBe('invalid_credentials');
  });

  it('a configured admin token is rehashed in place at start', async () => {
    const token = 'rotation-admin-token-' + randomBytes(8).toString('hex');
    let { h } = await start({ hashSecret: A, adminToken: token });
    const [before] = await rows<{ id: string }>(h, 'select id from admin_tokens');
    ({ h } = await start({ hashSecret: B, hashSecretPrevious: A, adminToken: token }));
    expect(await rows(h, 'select id, token_hash, hash_secret_id from admin_tokens')).toEqual([
      { id: before!.id, token_hash: hmac(B, token), hash_secret_id: secretId(B) },
    ]);
    const audit = await h.client(token).listAuditEvents({ action: 'admin_token.set' });
    expect(audit.events).toHaveLength(1); // only the first start's; a rehash is no new token
  });
});
