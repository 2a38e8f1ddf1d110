/**
 * KeyAdmin calls with a request_id (AIP-155) are safe to retry: CreateOrganization,
 * CreateKey, RotateKey and RevokeKey answer a retry from the same caller within 24 h
 * with the first response (the same secret included) and change nothing; other
 * arguments under the same id are invalid_argument (`request_id_reused`); another
 * caller's ids are its own; after 24 h the record (and its sealed secret) is purged and
 * never replayed; concurrent duplicates apply once. On real SQLite and PostgreSQL.
 */
import type { EntityManager } from '@mikro-orm/knex';
import { DIALECTS } from './support/databases';
import { failure, startHarness, type AdminClient, type Harness } from './support/harness';
import { eventually } from './support/tls-clients';
import { argumentsHash } from '../src/admin/requests';

const DAY_MS = 86_400_000;

interface RequestRow {
  caller: string;
  request_id: string;
  rpc: string;
  response: string;
  sealed_secret: string | null;
}

async function requestRows(h: Harness): Promise<RequestRow[]> {
  const conn = (h.app.orm.em as unknown as EntityManager).getConnection();
  return conn.execute<RequestRow[]>('select caller, request_id, rpc, response, sealed_secret from admin_requests order by request_id');
}

async function auditCount(h: Harness, action: string, organizationId: string): Promise<number> {
  return (await h.root.listAuditEvents({ action, organizationId, pageSize: 1000 })).events.length;
}

async function keyCount(h: Harness, organizationId: string): Promise<number> {
  return (await h.root.listKeys({ organizationId, includeRevoked: true, pageSize: 1000 })).keys.length;
}

describe('the argument hash of a retry-safe call', () => {
  it('ignores map order and undefined members, tells dates apart, and takes any decoded value (an invalid date too)', () => {
    expect(argumentsHash({ a: 1, m: { x: '1', y: '2' }, u: undefined })).toBe(argumentsHash({ m: { y: '2', x: '1' }, a: 1 }));
    expect(argumentsHash({ at: new Date(1000) })).not.toBe(argumentsHash({ at: new Date(2000) }));
    expect(argumentsHash({ at: new Date(NaN) })).toMatch(/^[0-9a-f]{64}$/);
    expect(argumentsHash({ scopes: ['a', 'b'] })).not.toBe(argumentsHash({ scopes: ['b', 'a'] }));
  });
});

describe.each(DIALECTS)('retry-safe KeyAdmin calls on %s', (dialect) => {
  let h: Harness;
  let orgId: string;
  beforeEach(async () => {
    h = await startHarness(dialect);
    orgId = (await h.root.createOrganization({ name: 'acme' })).id;
  });
  afterEach(async () => {
    await h?.stop();
  });

  it('a retried CreateKey returns the identical response, the same secret included, and creates nothing new', async () => {
    const req = { organizationId: orgId, name: 'ci', scopes: ['chat'], metadata: { team: 'a', env: 'x' }, requestId: 'create-1' };
    const first = await h.root.createKey(req);
    // The map in another order is the same arguments.
    const again = await h.root.createKey({ ...req, metadata: { env: 'x', team: 'a' } });
    expect(again).toEqual(first);
    expect(again.secret).toMatch(/^kw_live_/);
    expect(await keyCount(h, orgId)).toBe(1);
    expect(await auditCount(h, 'key.create', orgId)).toBe(1);
    // The secret is stored only sealed: neither the response column nor the sealed text holds it.
    const [row] = await requestRows(h);
    expect(row).toMatchObject({ caller: 'admin', request_id: 'create-1', rpc: 'CreateKey' });
    expect(Buffer.from(row!.response, 'base64').toString('latin1')).not.toContain(first.secret);
    expect(row!.sealed_secret).toMatch(/^v1\.[0-9a-f]{16}\./);
    expect(row!.sealed_secret).not.toContain(first.secret);
    expect(Buffer.from(row!.sealed_secret!.split('.')[2]!, 'base64').toString('latin1')).not.toContain(first.secret);
  });

  it('a retried CreateOrganization returns the same organization and creates one', async () => {
    const before = (await h.root.listOrganizations({ pageSize: 1000 })).organizations.length;
    const first = await h.root.createOrganization({ name: 'beta', maxKeys: 5, requestId: 'org-1' });
    const again = await h.root.createOrganization({ name: 'beta', maxKeys: 5, requestId: 'org-1' });
    expect(again).toEqual(first);
    expect((await h.root.listOrganizations({ pageSize: 1000 })).organizations.length).toBe(before + 1);
    expect(await auditCount(h, 'organization.create', first.id)).toBe(1);
  });

  it('a retried RevokeKey answers as the first time (not key_revoked) and audits once', async () => {
    const { key } = await h.root.createKey({ organizationId: orgId, name: 'k' });
    const first = await h.root.revokeKey({ id: key!.id, reason: 'leaked', requestId: 'revoke-1' });
    h.clock.advance(60_000);
    const again = await h.root.revokeKey({ id: key!.id, reason: 'leaked', requestId: 'revoke-1' });
    expect(again).toEqual(first);
    expect(await auditCount(h, 'key.revoke', orgId)).toBe(1);
    // Without a request_id a second revoke is still refused.
    expect((await failure(h.root.revokeKey({ id: key!.id, reason: 'leaked' }))).code).toBe('key_revoked');
  });

  it('a retried DeleteOrganization answers as the first time (not organization_deleted) and deletes once', async () => {
    await h.root.createKey({ organizationId: orgId, name: 'k' });
    const first = await h.root.deleteOrganization({ organizationId: orgId, reason: 'churned', requestId: 'delete-1' });
    expect(first.revokedKeys).toBe(1);
    const again = await h.root.deleteOrganization({ organizationId: orgId, reason: 'churned', requestId: 'delete-1' });
    expect(again).toEqual(first);
    expect(await auditCount(h, 'organization.delete', orgId)).toBe(1);
    expect((await failure(h.root.deleteOrganization({ organizationId: orgId, reason: 'other', requestId: 'delete-1' }))).code).toBe(
      'invalid_argument',
    );
    expect((await failure(h.root.deleteOrganization({ organizationId: orgId, reason: 'churned' }))).code).toBe('organization_deleted');
  });

  it('a retried CreateWebhook returns the same webhook and signing secret and creates one', async () => {
    const req = { organizationId: orgId, url: 'https://hooks.example.com/keyward', events: ['key.created'], requestId: 'hook-1' };
    const first = await h.root.createWebhook(req);
    expect(first.secret).not.toBe('');
    expect(await h.root.createWebhook(req)).toEqual(first);
    expect((await h.root.listWebhooks({ organizationId: orgId })).webhooks).toHaveLength(1);
  });

  it('a retried RotateKey returns the same successor and secret and rotates once', async () => {
    const { key } = await h.root.createKey({ organizationId: orgId, name: 'k' });
    const first = await h.root.rotateKey({ id: key!.id, gracePeriodSeconds: 60, requestId: 'rotate-1' });
    const again = await h.root.rotateKey({ id: key!.id, gracePeriodSeconds: 60, requestId: 'rotate-1' });
    expect(again).toEqual(first);
    expect(again.secret).toBe(first.secret);
    expect(await keyCount(h, orgId)).toBe(2);
    expect(await auditCount(h, 'key.rotate', orgId)).toBe(1);
  });

  it('the same request_id with other arguments, or for another RPC, is invalid_argument request_id_reused', async () => {
    await h.root.createKey({ organizationId: orgId, name: 'one', requestId: 'reuse-1' });
    for (const attempt of [
      h.root.createKey({ organizationId: orgId, name: 'two', requestId: 'reuse-1' }),
      h.root.createOrganization({ name: 'one', requestId: 'reuse-1' }),
    ]) {
      const e = await failure(attempt);
      expect([e.grpc, e.code, e.field, e.info?.metadata.violation]).toEqual([3, 'invalid_argument', 'request_id', 'request_id_reused']);
    }
    expect(await keyCount(h, orgId)).toBe(1);
  });

  it('a malformed request_id is invalid_argument naming request_id', async () => {
    for (const requestId of ['x'.repeat(129), 'has space', 'slash/no', 'ünï']) {
      const e = await failure(h.root.createKey({ organizationId: orgId, name: 'k', requestId }));
      expect([e.code, e.field]).toEqual(['invalid_argument', 'request_id']);
    }
    await h.root.createKey({ organizationId: orgId, name: 'k', requestId: 'A-z_0.9:' + 'x'.repeat(120) });
    expect(await keyCount(h, orgId)).toBe(1);
  });

  it("another caller's request ids are independent", async () => {
    const adminKey = await h.root.createKey({ organizationId: orgId, name: 'org-admin', scopes: ['admin'] });
    const scoped: AdminClient = h.client(adminKey.secret);
    const byRoot = await h.root.createKey({ organizationId: orgId, name: 'same', requestId: 'shared-id' });
    const byKey = await scoped.createKey({ organizationId: orgId, name: 'same', requestId: 'shared-id' });
    expect(byKey.key!.id).not.toBe(byRoot.key!.id);
    expect(byKey.secret).not.toBe(byRoot.secret);
    // Each caller's retry replays its own.
    expect(await scoped.createKey({ organizationId: orgId, name: 'same', requestId: 'shared-id' })).toEqual(byKey);
    expect(await h.root.createKey({ organizationId: orgId, name: 'same', requestId: 'shared-id' })).toEqual(byRoot);
    expect(await keyCount(h, orgId)).toBe(3);
    expect((await requestRows(h)).map((r) => r.caller).sort()).toEqual(['admin', `key:${adminKey.key!.id}`]);
  });

  it('after 24 hours a request_id is forgotten: never replayed, and purged with its sealed secret', async () => {
    const first = await h.root.createKey({ organizationId: orgId, name: 'k', requestId: 'old-1' });
    await h.root.createKey({ organizationId: orgId, name: 'k', requestId: 'old-2' });
    h.clock.advance(DAY_MS - 1000);
    expect(await h.root.createKey({ organizationId: orgId, name: 'k', requestId: 'old-1' })).toEqual(first);
    h.clock.advance(1000);
    // Past the window, before any purge: a new call, a new key and secret.
    const later = await h.root.createKey({ organizationId: orgId, name: 'k', requestId: 'old-1' });
    expect(later.key!.id).not.toBe(first.key!.id);
    expect(later.secret).not.toBe(first.secret);
    expect(await keyCount(h, orgId)).toBe(3);
    // The purge deletes old-2 (past its window) and keeps old-1's new record.
    h.timers.run('admin-request-purge');
    await eventually(async () => (await requestRows(h)).length === 1, 10_000, 'the purge');
    expect((await requestRows(h)).map((r) => r.request_id)).toEqual(['old-1']);
    h.clock.advance(DAY_MS);
    h.timers.run('admin-request-purge');
    await eventually(async () => (await requestRows(h)).length === 0, 10_000, 'the purge');
  });

  it('concurrent duplicates apply once and all get the same response', async () => {
    const clients = [h.root, h.client(h.config.adminToken), h.client(h.config.adminToken), h.client(h.config.adminToken)];
    const req = { organizationId: orgId, name: 'race', requestId: 'race-1' };
    const answers = await Promise.all(clients.flatMap((c) => [c.createKey(req), c.createKey(req)]));
    for (const answer of answers) expect(answer).toEqual(answers[0]);
    expect(await keyCount(h, orgId)).toBe(1);
    expect(await auditCount(h, 'key.create', orgId)).toBe(1);
    const orgs = await Promise.all(clients.map((c) => c.createOrganization({ name: 'raced', requestId: 'race-org' })));
    expect(new Set(orgs.map((o) => o.id)).size).toBe(1);
  });
});
