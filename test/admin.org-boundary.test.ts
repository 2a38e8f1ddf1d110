/**
 * An organization-scoped admin credential (an API key with the `admin` scope) acts on
 * its own organization only; anything outside it is permission_denied whether or not
 * the target exists, and each denial is audited.
 */
import { status } from '@grpc/grpc-js';
import { DIALECTS } from './support/databases';
import { failure, startHarness, type AdminClient, type Harness } from './support/harness';
import { newId } from '../src/util/ids';
import { KeyStatus, type ApiKey, type AuditEvent, type Organization } from '../src/gen/keyward/admin/v1/key_admin';

describe.each(DIALECTS)('organization boundary on %s', (dialect) => {
  let h: Harness;
  let orgA: Organization;
  let orgB: Organization;
  /** The org-scoped admin key of A, and a client authenticating with it. */
  let adminKeyA: ApiKey;
  let asA: AdminClient;
  /** A key of B, created by the administrator. */
  let keyB: ApiKey;

  beforeAll(async () => {
    h = await startHarness(dialect);
    orgA = await h.root.createOrganization({ name: 'A' });
    orgB = await h.root.createOrganization({ name: 'B' });
    const created = await h.root.createKey({ organizationId: orgA.id, name: 'a-admin', scopes: ['admin'] });
    adminKeyA = created.key!;
    asA = h.client(created.secret);
    keyB = (await h.root.createKey({ organizationId: orgB.id, name: 'b-key', scopes: ['chat'], metadata: { team: 'b' } })).key!;
  });
  afterAll(async () => h.stop());

  const tick = () => h.clock.advance(1000);

  /** The newest audit row, as the administrator sees it. */
  async function newestEvent(): Promise<AuditEvent> {
    const { events } = await h.root.listAuditEvents({ pageSize: 1 });
    return events[0]!;
  }

  /**
   * Expects permission_denied (both carriers), and that exactly one audit row was added
   * for it: outcome denied, by A's admin key, with this action and target.
   */
  async function expectDenied(call: () => Promise<unknown>, action: string, target: { organizationId?: string; keyId?: string }) {
    const before = (await newestEvent()).id;
    const e = await failure(call());
    expect({ grpc: e.grpc, code: e.code, trailerCode: e.trailerCode }).toEqual({
      grpc: status.PERMISSION_DENIED,
      code: 'permission_denied',
      trailerCode: 'permission_denied',
    });
    const { events } = await h.root.listAuditEvents({ pageSize: 10 });
    const added = events.filter((ev) => ev.id > before);
    expect(added).toHaveLength(1);
    expect(added[0]).toMatchObject({
      actor: `key:${adminKeyA.id}`,
      action,
      outcome: 'denied',
      reason: 'permission_denied',
      organizationId: target.organizationId ?? '',
      keyId: target.keyId ?? '',
      time: h.clock.now(),
    });
    expect(added[0]!.peer).not.toBe('');
    return e;
  }

  it('manages keys in its own organization', async () => {
    tick();
    const created = await asA.createKey({ organizationId: orgA.id, name: 'svc', scopes: ['chat'] });
    const id = created.key!.id;
    expect(created.key).toMatchObject({ organizationId: orgA.id, name: 'svc', status: KeyStatus.KEY_STATUS_ACTIVE });
    expect((await asA.listKeys({ organizationId: orgA.id })).keys.map((k) => k.id)).toEqual(expect.arrayContaining([adminKeyA.id, id]));
    await expect(asA.getKey({ id })).resolves.toMatchObject({ id, name: 'svc' });
    await expect(asA.updateKey({ id, name: 'svc-2' })).resolves.toMatchObject({ id, name: 'svc-2' });
    const rotated = await asA.rotateKey({ id, gracePeriodSeconds: 0 });
    expect(rotated.newKey).toMatchObject({ organizationId: orgA.id, name: 'svc-2', rotatedFromKeyId: id });
    const revoked = await asA.revokeKey({ id: rotated.newKey!.id, reason: 'done' });
    expect(revoked).toMatchObject({ status: KeyStatus.KEY_STATUS_REVOKED, revokedBy: `key:${adminKeyA.id}`, revokeReason: 'done' });
    await expect(asA.getOrganization({ id: orgA.id })).resolves.toMatchObject({ id: orgA.id, name: 'A' });
  });

  // A denial on an existing key names the key's organization in the audit row, so
  // B's owners see the attempt; on a missing key it cannot.
  describe("every key operation on B's keys is denied", () => {
    it('GetKey, UpdateKey, RevokeKey, RotateKey', async () => {
      tick();
      await expectDenied(() => asA.getKey({ id: keyB.id }), 'key.get', { keyId: keyB.id, organizationId: orgB.id });
      await expectDenied(() => asA.updateKey({ id: keyB.id, name: 'pwned' }), 'key.update', { keyId: keyB.id, organizationId: orgB.id });
      await expectDenied(() => asA.revokeKey({ id: keyB.id, reason: 'pwned' }), 'key.revoke', { keyId: keyB.id, organizationId: orgB.id });
      await expectDenied(() => asA.rotateKey({ id: keyB.id }), 'key.rotate', { keyId: keyB.id, organizationId: orgB.id });
      // B's key is untouched.
      const after = await h.root.getKey({ id: keyB.id });
      expect(after).toMatchObject({ name: 'b-key', status: KeyStatus.KEY_STATUS_ACTIVE, revokedAt: undefined, replacedByKeyId: '' });
      expect(after.expiresAt).toBeUndefined();
      expect((await h.root.listKeys({ organizationId: orgB.id, includeRevoked: true })).keys.map((k) => k.id)).toEqual([keyB.id]);
    });

    it('CreateKey in B, ListKeys of B, GetOrganization(B), UpdateOrganization(B)', async () => {
      tick();
      await expectDenied(() => asA.createKey({ organizationId: orgB.id, name: 'intruder', scopes: ['admin'] }), 'key.create', {
        organizationId: orgB.id,
      });
      await expectDenied(() => asA.listKeys({ organizationId: orgB.id }), 'key.list', { organizationId: orgB.id });
      await expectDenied(() => asA.getOrganization({ id: orgB.id }), 'organization.get', { organizationId: orgB.id });
      await expectDenied(() => asA.updateOrganization({ id: orgB.id, name: 'pwned' }), 'organization.update', { organizationId: orgB.id });
      expect((await h.root.listKeys({ organizationId: orgB.id, includeRevoked: true })).keys.map((k) => k.id)).toEqual([keyB.id]);
      await expect(h.root.getOrganization({ id: orgB.id })).resolves.toMatchObject({ name: 'B' });
    });
  });

  it('gets the same permission_denied for ids that do not exist, so existence is not revealed', async () => {
    tick();
    const ghostKey = newId('key', Date.now());
    const ghostOrg = newId('org', Date.now());
    const real = await expectDenied(() => asA.getKey({ id: keyB.id }), 'key.get', { keyId: keyB.id, organizationId: orgB.id });
    const calls: [() => Promise<unknown>, string][] = [
      [() => asA.getKey({ id: ghostKey }), 'key.get'],
      [() => asA.updateKey({ id: ghostKey, name: 'x' }), 'key.update'],
      [() => asA.revokeKey({ id: ghostKey, reason: 'x' }), 'key.revoke'],
      [() => asA.rotateKey({ id: ghostKey }), 'key.rotate'],
    ];
    for (const [call, action] of calls) {
      const ghost = await expectDenied(call, action, { keyId: ghostKey });
      expect({ message: ghost.message, info: ghost.info }).toEqual({ message: real.message, info: real.info });
    }
    await expectDenied(() => asA.getOrganization({ id: ghostOrg }), 'organization.get', { organizationId: ghostOrg });
    await expectDenied(() => asA.listKeys({ organizationId: ghostOrg }), 'key.list', { organizationId: ghostOrg });
    await expectDenied(() => asA.createKey({ organizationId: ghostOrg, name: 'x' }), 'key.create', { organizationId: ghostOrg });
    await expectDenied(() => asA.updateOrganization({ id: ghostOrg, name: 'x' }), 'organization.update', { organizationId: ghostOrg });
    // The administrator, by contrast, learns that they do not exist.
    expect((await failure(h.root.getKey({ id: ghostKey }))).code).toBe('key_not_found');
    expect((await failure(h.root.getOrganization({ id: ghostOrg }))).code).toBe('organization_not_found');
  });

  it('cannot create organizations', async () => {
    tick();
    const before = (await h.root.listOrganizations({})).organizations.length;
    await expectDenied(() => asA.createOrganization({ name: 'C' }), 'organization.create', {});
    expect((await h.root.listOrganizations({})).organizations).toHaveLength(before);
  });

  it('may rename its organization but not change its limits or active flag', async () => {
    tick();
    await expect(asA.updateOrganization({ id: orgA.id, name: 'A renamed' })).resolves.toMatchObject({ id: orgA.id, name: 'A renamed' });
    const rootOnly: Partial<Parameters<AdminClient['updateOrganization']>[0]>[] = [
      { maxKeys: 100_000 },
      { active: false },
      { active: true },
      { rateLimitPerMinute: 0 },
      { monthlyQuota: 0 },
      { billingAnchorDay: 1 },
      { name: 'sneaky', maxKeys: 1000 },
    ];
    for (const change of rootOnly) {
      await expectDenied(() => asA.updateOrganization({ id: orgA.id, ...change }), 'organization.update', { organizationId: orgA.id });
    }
    await expect(h.root.getOrganization({ id: orgA.id })).resolves.toMatchObject({
      name: 'A renamed',
      active: true,
      maxKeys: 100,
      rateLimitPerMinute: 60,
      monthlyQuota: 0,
      billingAnchorDay: 1,
    });
  });

  it('ListOrganizations returns only its own organization', async () => {
    const { organizations, nextPageToken } = await asA.listOrganizations({});
    expect(organizations.map((o) => o.id)).toEqual([orgA.id]);
    expect(nextPageToken).toBe('');
    const firstPage = await asA.listOrganizations({ pageSize: 1 });
    expect(firstPage.organizations.map((o) => o.id)).toEqual([orgA.id]);
    expect((await h.root.listOrganizations({})).organizations.map((o) => o.id)).toEqual(expect.arrayContaining([orgA.id, orgB.id]));
  });

  it("ListAuditEvents returns only A's events, and organization_id = B is denied", async () => {
    // Events exist for both organizations (B's creation and its key at least).
    const all = (await h.root.listAuditEvents({ pageSize: 1000 })).events;
    expect(all.some((e) => e.organizationId === orgB.id && e.outcome === 'success')).toBe(true);
    const ownExpected = all.filter((e) => e.organizationId === orgA.id).map((e) => e.id);
    expect(ownExpected.length).toBeGreaterThan(3);

    const unfiltered = await asA.listAuditEvents({ pageSize: 1000 });
    expect(unfiltered.events.map((e) => e.id)).toEqual(ownExpected);
    const explicit = await asA.listAuditEvents({ organizationId: orgA.id, pageSize: 1000 });
    expect(explicit.events.map((e) => e.id)).toEqual(ownExpected);
    // A filter on B's key is still confined to A: nothing.
    expect((await asA.listAuditEvents({ keyId: keyB.id })).events).toEqual([]);

    tick();
    await expectDenied(() => asA.listAuditEvents({ organizationId: orgB.id }), 'audit.list', { organizationId: orgB.id });
  });

  it("a key with scope '*' but not 'admin' cannot administer", async () => {
    const wildcard = await h.root.createKey({ organizationId: orgA.id, name: 'wild', scopes: ['*'] });
    const e = await failure(h.client(wildcard.secret).listKeys({ organizationId: orgA.id }));
    expect({ grpc: e.grpc, code: e.code, trailerCode: e.trailerCode }).toEqual({
      grpc: status.UNAUTHENTICATED,
      code: 'invalid_credentials',
      trailerCode: 'invalid_credentials',
    });
    expect(await newestEvent()).toMatchObject({
      action: 'admin.auth_failed',
      outcome: 'denied',
      actor: 'anonymous',
      keyId: wildcard.key!.id,
      reason: 'missing_admin_scope',
    });
  });
});
