/**
 * max_keys: an organization may have at most max_keys usable (not revoked, not
 * expired) keys at once, also under concurrent CreateKey calls.
 */
import { status } from '@grpc/grpc-js';
import { DIALECTS } from './support/databases';
import { errorOf, failure, startHarness, type Harness } from './support/harness';
import { KeyStatus } from '../src/gen/keyward/admin/v1/key_admin';

const DAY = 86_400_000;

describe.each(DIALECTS)('key limit on %s', (dialect) => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness(dialect);
  });
  afterAll(async () => h.stop());

  let n = 0;
  const createKey = (organizationId: string, extra: { expiresInDays?: number } = {}) =>
    h.root.createKey({ organizationId, name: `k${++n}`, scopes: ['chat'], ...extra });

  async function expectLimitExceeded(organizationId: string, maxKeys: number) {
    const e = await failure(createKey(organizationId));
    expect({ grpc: e.grpc, code: e.code, trailerCode: e.trailerCode, metadata: e.info?.metadata }).toEqual({
      grpc: status.RESOURCE_EXHAUSTED,
      code: 'key_limit_exceeded',
      trailerCode: 'key_limit_exceeded',
      metadata: { max_keys: String(maxKeys) },
    });
  }

  const keyCount = async (organizationId: string) =>
    (await h.root.listKeys({ organizationId, includeRevoked: true, pageSize: 1000 })).keys.length;

  it('allows max_keys keys and refuses the next one', async () => {
    const org = await h.root.createOrganization({ name: 'two', maxKeys: 2 });
    await createKey(org.id);
    await createKey(org.id);
    await expectLimitExceeded(org.id, 2);
    await expectLimitExceeded(org.id, 2);
    expect(await keyCount(org.id)).toBe(2);
  });

  it('a revoked key frees its slot', async () => {
    const org = await h.root.createOrganization({ name: 'revoke', maxKeys: 2 });
    const first = await createKey(org.id);
    await createKey(org.id);
    await expectLimitExceeded(org.id, 2);
    await h.root.revokeKey({ id: first.key!.id, reason: 'make room' });
    await expect(createKey(org.id)).resolves.toMatchObject({ key: { status: KeyStatus.KEY_STATUS_ACTIVE } });
    await expectLimitExceeded(org.id, 2);
    expect(await keyCount(org.id)).toBe(3);
  });

  it('an expired key frees its slot, but not before it expires', async () => {
    const org = await h.root.createOrganization({ name: 'expire', maxKeys: 2 });
    const shortLived = await createKey(org.id, { expiresInDays: 1 });
    await createKey(org.id);
    h.clock.advance(DAY - 1);
    await expectLimitExceeded(org.id, 2);
    h.clock.advance(1);
    await expect(h.root.getKey({ id: shortLived.key!.id })).resolves.toMatchObject({ status: KeyStatus.KEY_STATUS_EXPIRED });
    await expect(createKey(org.id)).resolves.toBeDefined();
    await expectLimitExceeded(org.id, 2);
  });

  it('raising max_keys allows more keys; lowering it below the count blocks new ones', async () => {
    const org = await h.root.createOrganization({ name: 'raise', maxKeys: 2 });
    await createKey(org.id);
    await createKey(org.id);
    await expectLimitExceeded(org.id, 2);
    await h.root.updateOrganization({ id: org.id, maxKeys: 3 });
    await createKey(org.id);
    await expectLimitExceeded(org.id, 3);
    await h.root.updateOrganization({ id: org.id, maxKeys: 1 });
    await expectLimitExceeded(org.id, 1);
    expect(await keyCount(org.id)).toBe(3);
  });

  it('the limit is per organization', async () => {
    const full = await h.root.createOrganization({ name: 'full', maxKeys: 1 });
    const other = await h.root.createOrganization({ name: 'other', maxKeys: 1 });
    await createKey(full.id);
    await expectLimitExceeded(full.id, 1);
    await expect(createKey(other.id)).resolves.toBeDefined();
  });

  it('bringing an expired key back with UpdateKey counts against the limit', async () => {
    const org = await h.root.createOrganization({ name: 'revive', maxKeys: 1 });
    const old = await createKey(org.id, { expiresInDays: 1 });
    h.clock.advance(DAY);
    await createKey(org.id);
    const later = new Date(h.clock.now().getTime() + 10 * DAY);
    const e = await failure(h.root.updateKey({ id: old.key!.id, expiresAt: later }));
    expect([e.grpc, e.code, e.trailerCode]).toEqual([status.RESOURCE_EXHAUSTED, 'key_limit_exceeded', 'key_limit_exceeded']);
    expect((await h.root.getKey({ id: old.key!.id })).status).toBe(KeyStatus.KEY_STATUS_EXPIRED);
    await expect(h.root.updateKey({ id: old.key!.id, clearExpiresAt: true })).rejects.toMatchObject({ code: status.RESOURCE_EXHAUSTED });
    // Renaming an expired key does not revive it, so it needs no slot.
    await expect(h.root.updateKey({ id: old.key!.id, name: 'renamed' })).resolves.toMatchObject({ name: 'renamed' });
    await h.root.updateOrganization({ id: org.id, maxKeys: 2 });
    await expect(h.root.updateKey({ id: old.key!.id, expiresAt: later })).resolves.toMatchObject({ status: KeyStatus.KEY_STATUS_ACTIVE });
  });

  it('holds under concurrent CreateKey calls: exactly max_keys of 10 succeed', async () => {
    const org = await h.root.createOrganization({ name: 'race', maxKeys: 3 });
    const results = await Promise.allSettled(Array.from({ length: 10 }, () => createKey(org.id)));
    const ok = results.filter((r) => r.status === 'fulfilled');
    const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => errorOf(r.reason));
    expect(ok).toHaveLength(3);
    expect(failed.map((e) => [e.grpc, e.code, e.trailerCode])).toEqual(
      Array(7).fill([status.RESOURCE_EXHAUSTED, 'key_limit_exceeded', 'key_limit_exceeded']),
    );
    expect(await keyCount(org.id)).toBe(3);
    const audited = await h.root.listAuditEvents({ organizationId: org.id, action: 'key.create', pageSize: 100 });
    expect(audited.events).toHaveLength(3);
  });
});
