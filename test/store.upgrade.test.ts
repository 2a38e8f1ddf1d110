/**
 * An upgrade from the first schema, on both dialects: a database with only the first
 * migration applied and data written in that schema (an organization, a live and a
 * revoked key, an extra admin token, audit events) is migrated to the current schema;
 * then a started keyward finds everything intact and usable: the old key is allowed by
 * a Check and its usage is counted, the revoked one is denied, the old admin token
 * authenticates, the old audit events are listed.
 */
import { randomBytes } from 'node:crypto';
import type { EntityManager } from '@mikro-orm/knex';
import { migrate, openOrm, pendingMigrations } from '../src/store/orm';
import { postgresMigrations, sqliteMigrations } from '../src/store/migrations';
import { createHasher } from '../src/keys/hash';
import { displayParts, generateAdminToken, generateKey } from '../src/keys/format';
import { newId } from '../src/util/ids';
import { createTestDatabase, DIALECTS } from './support/databases';
import { startHarness } from './support/harness';
import { EnvoyClient } from './support/envoy-client';

const T0 = new Date(Date.UTC(2026, 0, 10, 9, 0, 0));

describe.each(DIALECTS)('upgrade from the first schema on %s', (dialect) => {
  it('keeps the data written in the first schema intact and usable', async () => {
    const migrations = dialect === 'sqlite' ? sqliteMigrations : postgresMigrations;
    const db = await createTestDatabase(dialect);
    const secret = randomBytes(32);
    const hasher = createHasher(secret);
    const rootToken = `upgrade-root-${randomBytes(8).toString('hex')}`;
    const opsToken = generateAdminToken();
    const liveKey = generateKey('live');
    const revokedKey = generateKey('test');
    const ids = {
      org: newId('org', T0.getTime()),
      live: newId('key', T0.getTime()),
      revoked: newId('key', T0.getTime() + 1),
      root: newId('adm', T0.getTime()),
      ops: newId('adm', T0.getTime() + 1),
    };

    // The first schema, and rows as that version wrote them (dates: epoch ms on SQLite).
    const orm = await openOrm(db.config);
    try {
      await orm.getMigrator().up({ to: migrations[0]!.name });
      expect(await pendingMigrations(orm)).toEqual(migrations.slice(1).map((m) => m.name));
      const knex = (orm.em as unknown as EntityManager).getKnex();
      const at = (d: Date) => (dialect === 'sqlite' ? d.getTime() : d);
      await knex('organizations').insert({
        id: ids.org,
        name: 'from-v1',
        active: dialect === 'sqlite' ? 1 : true,
        max_keys: 10,
        rate_limit_per_minute: 1000,
        monthly_quota: 0,
        billing_anchor_day: 1,
        created_at: at(T0),
        updated_at: at(T0),
      });
      const key = (id: string, text: string, revoked: boolean) => ({
        id,
        organization_id: ids.org,
        name: revoked ? 'old-revoked' : 'old-live',
        environment: text.startsWith('kw_live_') ? 'live' : 'test',
        scopes: JSON.stringify(['read']),
        ...displayParts(text),
        key_hash: hasher.hash(text),
        created_at: at(T0),
        updated_at: at(T0),
        expires_at: null,
        last_used_at: null,
        revoked_at: revoked ? at(T0) : null,
        revoked_by: revoked ? 'admin' : null,
        revoke_reason: revoked ? 'compromised' : null,
        rate_limit_per_minute: null,
        metadata: JSON.stringify({ team: 'v1' }),
        replaced_by_key_id: null,
        rotated_from_key_id: null,
      });
      await knex('api_keys').insert([key(ids.live, liveKey, false), key(ids.revoked, revokedKey, true)]);
      await knex('admin_tokens').insert([
        { id: ids.root, token_hash: hasher.hash(rootToken), label: 'bootstrap', created_at: at(T0) },
        { id: ids.ops, token_hash: hasher.hash(opsToken), label: 'ops', created_at: at(T0) },
      ]);
      const audit = (action: string, keyId: string | null) => ({
        at: at(T0),
        actor: 'admin',
        action,
        organization_id: ids.org,
        key_id: keyId,
        outcome: 'success',
        reason: null,
        peer: '127.0.0.1:1',
      });
      await knex('audit_events').insert([audit('organization.create', null), audit('key.create', ids.live)]);

      expect(await migrate(orm)).toEqual(migrations.slice(1).map((m) => m.name));
    } finally {
      await orm.close(true);
    }

    const h = await startHarness(dialect, { reuseDatabase: db, hashSecret: secret, adminToken: rootToken });
    const envoy = new EnvoyClient(h.app.authzPort);
    const root = h.client(rootToken);
    try {
      const org = await root.getOrganization({ id: ids.org });
      expect(org).toMatchObject({ id: ids.org, name: 'from-v1', active: true, maxKeys: 10, rateLimitPerMinute: 1000 });
      expect(await root.getKey({ id: ids.live })).toMatchObject({
        id: ids.live,
        name: 'old-live',
        scopes: ['read'],
        prefix: liveKey.slice(0, 12),
      });

      const check = (text: string) => envoy.check({ headers: { 'x-api-key': text }, path: '/v1/x', method: 'GET' });
      expect((await check(liveKey)).http_response).toBe('ok_response');
      expect((await check(revokedKey)).http_response).toBe('denied_response');
      await h.app.usage.flush();
      const month = h.clock.now().toISOString().slice(0, 7);
      expect((await root.getUsageStats({ organizationId: ids.org, month })).totals?.requests).toBe(1);

      // The other admin token of the first schema still authenticates.
      expect((await h.client(opsToken).getOrganization({ id: ids.org })).name).toBe('from-v1');
      const events = (await root.listAuditEvents({ organizationId: ids.org })).events.map((e) => e.action);
      expect(events).toEqual(expect.arrayContaining(['organization.create', 'key.create']));
    } finally {
      envoy.close();
      await h.stop();
      await db.dispose();
    }
  });
});
