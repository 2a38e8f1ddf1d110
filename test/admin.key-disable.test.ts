/**
 * Disabling and enabling a key through UpdateKey.enabled: what ApiKey shows, the audit
 * rows (key.disable / key.enable, key.update for other fields), what a disabled key may
 * still do (nothing: the Check refuses it, KeyAdmin does not accept it), and that a
 * revoked key cannot be enabled. The Check's 403 itself: check.deny-403.test.ts; every
 * replica within 1 s: check.fleet-invalidation.test.ts.
 */
import { status } from '@grpc/grpc-js';
import { DIALECTS } from './support/databases';
import { startHarness, type Harness } from './support/harness';
import { expectError } from './support/admin-errors';
import { EnvoyClient } from './support/envoy-client';
import { parseDenyBody } from './support/deny-body';
import { KeyStatus, type AuditEvent } from '../src/gen/keyward/admin/v1/key_admin';

describe.each(DIALECTS)('disabling keys on %s', (dialect) => {
  let h: Harness;
  let envoy: EnvoyClient;
  let orgId: string;

  beforeAll(async () => {
    h = await startHarness(dialect);
    envoy = new EnvoyClient(h.app.authzPort);
    orgId = (await h.root.createOrganization({ name: 'Acme', maxKeys: 2 })).id;
  });
  afterAll(async () => {
    envoy.close();
    await h.stop();
  });

  const keyEvents = async (keyId: string): Promise<Pick<AuditEvent, 'action' | 'actor' | 'outcome' | 'reason'>[]> =>
    (await h.root.listAuditEvents({ keyId, pageSize: 100 })).events
      .reverse()
      .map(({ action, actor, outcome, reason }) => ({ action, actor, outcome, reason }));
  const code = async (secret: string) => {
    const r = await envoy.check({ headers: { 'x-api-key': secret } });
    return r.http_response === 'ok_response' ? 'ok' : parseDenyBody(r.denied_response!.body!).error.code;
  };

  it('shows enabled and disabled_at, audits each change of state once, and refuses the key in between', async () => {
    const created = await h.root.createKey({ organizationId: orgId, name: 'k' });
    const id = created.key!.id;
    expect(created.key).toMatchObject({ enabled: true, status: KeyStatus.KEY_STATUS_ACTIVE });
    expect(created.key!.disabledAt).toBeUndefined();

    h.clock.advance(1000);
    const disabled = await h.root.updateKey({ id, enabled: false });
    expect(disabled).toMatchObject({ enabled: false, status: KeyStatus.KEY_STATUS_DISABLED, disabledAt: h.clock.now() });
    expect(await h.root.getKey({ id })).toMatchObject({ enabled: false, status: KeyStatus.KEY_STATUS_DISABLED });
    expect(await code(created.secret)).toBe('disabled_api_key');
    // Disabling again changes nothing: no key.disable row (only the no-op key.update, as any empty update).
    await h.root.updateKey({ id, enabled: false });
    expect((await h.root.getKey({ id })).disabledAt).toEqual(disabled.disabledAt);

    const enabled = await h.root.updateKey({ id, enabled: true });
    expect(enabled).toMatchObject({ enabled: true, status: KeyStatus.KEY_STATUS_ACTIVE });
    expect(enabled.disabledAt).toBeUndefined();
    expect(await code(created.secret)).toBe('ok');

    // With other fields: the state change and the update are both audited.
    await h.root.updateKey({ id, enabled: false, name: 'renamed' });
    expect(await h.root.getKey({ id })).toMatchObject({ name: 'renamed', enabled: false });

    expect(await keyEvents(id)).toEqual([
      { action: 'key.create', actor: 'admin', outcome: 'success', reason: '' },
      { action: 'key.disable', actor: 'admin', outcome: 'success', reason: '' },
      { action: 'key.update', actor: 'admin', outcome: 'success', reason: 'changed: nothing' },
      { action: 'key.enable', actor: 'admin', outcome: 'success', reason: '' },
      { action: 'key.disable', actor: 'admin', outcome: 'success', reason: '' },
      { action: 'key.update', actor: 'admin', outcome: 'success', reason: 'changed: name' },
    ]);
    // A disabled key still counts against max_keys (2): enabling it never needs a slot.
    await h.root.createKey({ organizationId: orgId, name: 'second' });
    await expectError(h.root.createKey({ organizationId: orgId, name: 'third' }), status.RESOURCE_EXHAUSTED, 'key_limit_exceeded');
    await h.root.updateKey({ id, enabled: true });
  });

  it('a disabled admin key cannot call KeyAdmin; an organization admin key may disable its own keys', async () => {
    const org = await h.root.createOrganization({ name: 'Tenant' });
    const adminKey = await h.root.createKey({ organizationId: org.id, name: 'admin', scopes: ['admin'] });
    const target = await h.root.createKey({ organizationId: org.id, name: 'app' });
    const tenant = h.client(adminKey.secret);

    expect((await tenant.updateKey({ id: target.key!.id, enabled: false })).enabled).toBe(false);
    expect((await keyEvents(target.key!.id)).at(-1)).toEqual({
      action: 'key.disable',
      actor: `key:${adminKey.key!.id}`,
      outcome: 'success',
      reason: '',
    });

    await h.root.updateKey({ id: adminKey.key!.id, enabled: false });
    await expectError(tenant.listOrganizations({}), status.UNAUTHENTICATED, 'invalid_credentials');
    const failed = (await h.root.listAuditEvents({ action: 'admin.auth_failed', pageSize: 1 })).events[0]!;
    expect(failed).toMatchObject({ outcome: 'denied', reason: 'key_disabled', keyId: adminKey.key!.id });

    await h.root.updateKey({ id: adminKey.key!.id, enabled: true });
    expect((await tenant.listOrganizations({})).organizations.map((o) => o.id)).toEqual([org.id]);
  });

  it('a revoked key cannot be enabled or disabled (key_revoked); a revoked disabled key shows revoked', async () => {
    const k = await h.root.createKey({ organizationId: (await h.root.createOrganization({ name: 'R' })).id, name: 'k' });
    const id = k.key!.id;
    await h.root.updateKey({ id, enabled: false });
    await h.root.revokeKey({ id, reason: 'done' });
    await expectError(h.root.updateKey({ id, enabled: true }), status.FAILED_PRECONDITION, 'key_revoked');
    await expectError(h.root.updateKey({ id, enabled: false }), status.FAILED_PRECONDITION, 'key_revoked');
    expect(await h.root.getKey({ id })).toMatchObject({ status: KeyStatus.KEY_STATUS_REVOKED, enabled: false });
    expect(await code(k.secret)).toBe('revoked_api_key');
  });
});
