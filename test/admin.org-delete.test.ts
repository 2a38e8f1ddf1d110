/**
 * DeleteOrganization: administrator token only; in one transaction every key not yet
 * revoked is revoked with the reason (each audited as key.revoke) and the organization
 * is marked deleted (audited as organization.delete); usage and audit history are
 * kept; deleted organizations are hidden from ListOrganizations unless include_deleted;
 * what the other RPCs do on a deleted organization. Every replica within 1 s:
 * check.fleet-invalidation.test.ts.
 */
import { status } from '@grpc/grpc-js';
import { DIALECTS } from './support/databases';
import { startHarness, type Harness } from './support/harness';
import { expectError, expectInvalid } from './support/admin-errors';
import { EnvoyClient } from './support/envoy-client';
import { parseDenyBody } from './support/deny-body';
import { KeyStatus } from '../src/gen/keyward/admin/v1/key_admin';

describe.each(DIALECTS)('DeleteOrganization on %s', (dialect) => {
  let h: Harness;
  let envoy: EnvoyClient;

  beforeAll(async () => {
    h = await startHarness(dialect);
    envoy = new EnvoyClient(h.app.authzPort);
  });
  afterAll(async () => {
    envoy.close();
    await h.stop();
  });

  const code = async (secret: string) => {
    const r = await envoy.check({ headers: { 'x-api-key': secret }, method: 'GET', path: '/v1/chat' });
    return r.http_response === 'ok_response' ? 'ok' : parseDenyBody(r.denied_response!.body!).error.code;
  };
  const listed = async (includeDeleted: boolean) =>
    (await h.root.listOrganizations({ includeDeleted, pageSize: 1000 })).organizations.map((o) => o.id);

  it('revokes every key with the reason, marks the organization deleted, audits it, and keeps usage and audit history', async () => {
    const org = await h.root.createOrganization({ name: 'Leaving', monthlyQuota: 100 });
    const bystander = await h.root.createOrganization({ name: 'Staying' });
    const k1 = await h.root.createKey({ organizationId: org.id, name: 'a' });
    const k2 = await h.root.createKey({ organizationId: org.id, name: 'b' });
    const early = await h.root.createKey({ organizationId: org.id, name: 'revoked before' });
    await h.root.revokeKey({ id: early.key!.id, reason: 'old reason' });
    const other = await h.root.createKey({ organizationId: bystander.id, name: 'other' });
    expect(await code(k1.secret)).toBe('ok'); // cached, and one request of usage
    expect(await code(k1.secret)).toBe('ok');

    h.clock.advance(5_000);
    const deletedAt = h.clock.now();
    const r = await h.root.deleteOrganization({ organizationId: org.id, reason: 'contract ended' });
    expect(r.revokedKeys).toBe(2);
    expect(r.organization).toMatchObject({ id: org.id, active: false, deletedAt, updatedAt: deletedAt });

    // Its keys: refused at once in this process (the cache was told), revoked with the reason.
    expect(await code(k1.secret)).toBe('revoked_api_key');
    expect(await code(k2.secret)).toBe('revoked_api_key');
    expect(await code(other.secret)).toBe('ok');
    const keys = (await h.root.listKeys({ organizationId: org.id, includeRevoked: true })).keys;
    // (ids made in the same millisecond do not sort by creation: by name)
    const byName = [...keys].sort((x, y) => x.name.localeCompare(y.name));
    expect(byName.map((k) => [k.name, k.status, k.revokeReason, k.revokedBy])).toEqual([
      ['a', KeyStatus.KEY_STATUS_REVOKED, 'contract ended', 'admin'],
      ['b', KeyStatus.KEY_STATUS_REVOKED, 'contract ended', 'admin'],
      ['revoked before', KeyStatus.KEY_STATUS_REVOKED, 'old reason', 'admin'],
    ]);
    expect(keys.find((k) => k.name === 'a')!.revokedAt).toEqual(deletedAt);

    // Audit: one key.revoke per key it revoked, then organization.delete; the history stays.
    const events = (await h.root.listAuditEvents({ organizationId: org.id, pageSize: 100 })).events.reverse();
    const rows = events.map((e) => [e.action, e.keyId, e.outcome, e.reason]);
    expect(rows.slice(0, 5)).toEqual([
      ['organization.create', '', 'success', ''],
      ['key.create', k1.key!.id, 'success', ''],
      ['key.create', k2.key!.id, 'success', ''],
      ['key.create', early.key!.id, 'success', ''],
      ['key.revoke', early.key!.id, 'success', 'old reason'],
    ]);
    expect(rows.slice(5, 7)).toEqual(
      expect.arrayContaining([
        ['key.revoke', k1.key!.id, 'success', 'contract ended'],
        ['key.revoke', k2.key!.id, 'success', 'contract ended'],
      ]),
    );
    expect(rows.slice(7)).toEqual([['organization.delete', '', 'success', 'contract ended']]);
    expect(events.slice(5).every((e) => e.time!.getTime() === deletedAt.getTime() && e.actor === 'admin')).toBe(true);

    // Usage and quota are still readable.
    expect((await h.root.getUsageStats({ organizationId: org.id })).totals?.requests).toBe(2);
    expect((await h.root.getQuota({ organizationId: org.id })).used).toBe(2);

    // Hidden from ListOrganizations unless include_deleted; GetOrganization still shows it.
    expect(await listed(false)).not.toContain(org.id);
    expect(await listed(false)).toContain(bystander.id);
    expect(await listed(true)).toEqual(expect.arrayContaining([org.id, bystander.id]));
    expect(await h.root.getOrganization({ id: org.id })).toMatchObject({ deletedAt, active: false });
    expect((await h.root.getOrganization({ id: bystander.id })).deletedAt).toBeUndefined();
  });

  it('a deleted organization can be read but not changed: organization_deleted (FAILED_PRECONDITION)', async () => {
    const org = await h.root.createOrganization({ name: 'Gone' });
    const k = await h.root.createKey({ organizationId: org.id, name: 'k' });
    await h.root.deleteOrganization({ organizationId: org.id, reason: 'bye' });
    const deleted = (e: Promise<unknown>) => expectError(e, status.FAILED_PRECONDITION, 'organization_deleted');
    await deleted(h.root.createKey({ organizationId: org.id, name: 'new' }));
    await deleted(h.root.updateOrganization({ id: org.id, name: 'renamed' }));
    await deleted(h.root.updateOrganization({ id: org.id, active: true }));
    await deleted(h.root.deleteOrganization({ organizationId: org.id, reason: 'again' }));
    // Its keys are revoked: the key RPCs say so.
    await expectError(h.root.updateKey({ id: k.key!.id, enabled: true }), status.FAILED_PRECONDITION, 'key_revoked');
    await expectError(h.root.rotateKey({ id: k.key!.id }), status.FAILED_PRECONDITION, 'key_revoked');
    expect((await h.root.getOrganization({ id: org.id })).name).toBe('Gone');
    // Nothing was written by the refused calls.
    const actions = (await h.root.listAuditEvents({ organizationId: org.id, pageSize: 100 })).events.map((e) => e.action);
    expect(actions.filter((a) => a === 'organization.delete')).toHaveLength(1);
  });

  it('is one transaction: when marking the organization fails, no key is revoked and nothing is audited', async () => {
    const org = await h.root.createOrganization({ name: 'Atomic' });
    const k = await h.root.createKey({ organizationId: org.id, name: 'k' });
    expect(await code(k.secret)).toBe('ok');
    // A trigger makes the organization's update fail, inside the transaction that also revokes and audits.
    const sql = (q: string) => h.app.orm.em.getConnection().execute(q);
    if (dialect === 'sqlite') {
      await sql(`create trigger kw_fail_delete before update of deleted_at on organizations when new.deleted_at is not null
        begin select raise(abort, 'injected failure'); end`);
    } else {
      await sql(`create function kw_fail_delete() returns trigger language plpgsql as $$ begin raise exception 'injected failure'; end $$`);
      await sql(`create trigger kw_fail_delete before update of deleted_at on organizations for each row
        when (new.deleted_at is not null) execute function kw_fail_delete()`);
    }
    await expectError(h.root.deleteOrganization({ organizationId: org.id, reason: 'half' }), status.INTERNAL, 'internal');
    expect(await h.root.getKey({ id: k.key!.id })).toMatchObject({ status: KeyStatus.KEY_STATUS_ACTIVE, revokeReason: '' });
    expect((await h.root.getOrganization({ id: org.id })).deletedAt).toBeUndefined();
    const actions = (await h.root.listAuditEvents({ organizationId: org.id, pageSize: 100 })).events.map((e) => e.action);
    expect(actions.sort()).toEqual(['key.create', 'organization.create']);
    expect(await code(k.secret)).toBe('ok');

    await sql(dialect === 'sqlite' ? 'drop trigger kw_fail_delete' : 'drop trigger kw_fail_delete on organizations');
    expect((await h.root.deleteOrganization({ organizationId: org.id, reason: 'whole' })).revokedKeys).toBe(1);
    expect(await code(k.secret)).toBe('revoked_api_key');
  });

  it('needs the administrator token: an organization admin key is denied (and audited), even for its own organization', async () => {
    const org = await h.root.createOrganization({ name: 'Tenant' });
    const adminKey = await h.root.createKey({ organizationId: org.id, name: 'admin', scopes: ['admin'] });
    const tenant = h.client(adminKey.secret);
    await expectError(tenant.deleteOrganization({ organizationId: org.id, reason: 'self' }), status.PERMISSION_DENIED, 'permission_denied');
    const denied = (await h.root.listAuditEvents({ organizationId: org.id, action: 'organization.delete', pageSize: 10 })).events;
    expect(denied.map((e) => [e.outcome, e.actor, e.reason])).toEqual([['denied', `key:${adminKey.key!.id}`, 'permission_denied']]);
    expect((await h.root.getOrganization({ id: org.id })).deletedAt).toBeUndefined();
    expect(await code(adminKey.secret)).toBe('ok');
    // Once the administrator deleted it, its admin key is revoked: no more KeyAdmin calls.
    await h.root.deleteOrganization({ organizationId: org.id, reason: 'by root' });
    await expectError(tenant.listOrganizations({}), status.UNAUTHENTICATED, 'invalid_credentials');
    expect(await code(adminKey.secret)).toBe('revoked_api_key');
  });

  it('validates its arguments: organization_id, reason; an unknown organization is organization_not_found', async () => {
    const org = await h.root.createOrganization({ name: 'Valid' });
    await expectInvalid(h.root.deleteOrganization({ organizationId: 'nope', reason: 'x' }), 'organization_id');
    await expectInvalid(h.root.deleteOrganization({ organizationId: org.id, reason: '' }), 'reason');
    await expectInvalid(h.root.deleteOrganization({ organizationId: org.id, reason: 'x'.repeat(501) }), 'reason');
    await expectError(
      h.root.deleteOrganization({ organizationId: `org_${'0'.repeat(25)}`, reason: 'x' }),
      status.NOT_FOUND,
      'organization_not_found',
    );
    expect((await h.root.getOrganization({ id: org.id })).deletedAt).toBeUndefined();
  });
});
