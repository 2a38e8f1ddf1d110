/**
 * RotateKey with the injected clock: the successor copies the old key's settings, the
 * old key keeps working for exactly the grace period and then expires.
 */
import { status } from '@grpc/grpc-js';
import { DIALECTS } from './support/databases';
import { errorOf, failure, startHarness, type Harness } from './support/harness';
import { Environment, KeyStatus, type CreateKeyResponse } from '../src/gen/keyward/admin/v1/key_admin';

const SECOND = 1000;
const DAY = 86_400_000;

describe.each(DIALECTS)('key rotation on %s', (dialect) => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness(dialect);
  });
  afterAll(async () => h.stop());

  let n = 0;
  const newOrg = () => h.root.createOrganization({ name: `org-${++n}` });
  const at = (ms: number) => new Date(ms);

  /** Whether a key works as an admin credential right now (ListKeys of its own organization). */
  async function authenticates(secret: string, organizationId: string): Promise<boolean | string> {
    try {
      await h.client(secret).listKeys({ organizationId });
      return true;
    } catch (e) {
      return errorOf(e).code;
    }
  }

  async function adminKey(
    organizationId: string,
    extra: { environment?: Environment; expiresInDays?: number } = {},
  ): Promise<CreateKeyResponse> {
    return h.root.createKey({
      organizationId,
      name: 'deploy bot',
      scopes: ['admin', 'chat', 'agents:read'],
      metadata: { team: 'platform', ticket: 'OPS-1' },
      rateLimitPerMinute: 7,
      ...extra,
    });
  }

  it('issues a successor with the same settings, and the old key works for exactly the grace period', async () => {
    const org = await newOrg();
    const old = await adminKey(org.id, { environment: Environment.ENVIRONMENT_TEST });
    h.clock.advance(5 * SECOND);
    const t0 = h.clock.now().getTime();

    const r = await h.root.rotateKey({ id: old.key!.id, gracePeriodSeconds: 3600 });

    expect(r.secret).toMatch(/^kw_test_/);
    expect(r.secret).not.toBe(old.secret);
    expect(r.newKey!.prefix).toBe(r.secret.slice(0, r.newKey!.prefix.length));
    expect(r.newKey!.hint).toBe(r.secret.slice(-4));
    expect(r.newKey).toMatchObject({
      organizationId: org.id,
      name: 'deploy bot',
      environment: Environment.ENVIRONMENT_TEST,
      scopes: ['admin', 'chat', 'agents:read'],
      metadata: { team: 'platform', ticket: 'OPS-1' },
      rateLimitPerMinute: 7,
      rotatedFromKeyId: old.key!.id,
      replacedByKeyId: '',
      status: KeyStatus.KEY_STATUS_ACTIVE,
      createdAt: at(t0),
      expiresAt: undefined,
    });
    expect(r.newKey!.id).not.toBe(old.key!.id);
    const expectedOld = {
      id: old.key!.id,
      replacedByKeyId: r.newKey!.id,
      expiresAt: at(t0 + 3600 * SECOND),
      status: KeyStatus.KEY_STATUS_ACTIVE,
    };
    expect(r.oldKey).toMatchObject(expectedOld);
    await expect(h.root.getKey({ id: old.key!.id })).resolves.toMatchObject(expectedOld);
    await expect(h.root.getKey({ id: r.newKey!.id })).resolves.toMatchObject({ rotatedFromKeyId: old.key!.id });

    h.clock.set(t0 + 3599 * SECOND);
    await expect(h.root.getKey({ id: old.key!.id })).resolves.toMatchObject({ status: KeyStatus.KEY_STATUS_ACTIVE });
    expect(await authenticates(old.secret, org.id)).toBe(true);
    expect(await authenticates(r.secret, org.id)).toBe(true);

    h.clock.set(t0 + 3600 * SECOND);
    await expect(h.root.getKey({ id: old.key!.id })).resolves.toMatchObject({ status: KeyStatus.KEY_STATUS_EXPIRED });
    expect(await authenticates(old.secret, org.id)).toBe('invalid_credentials');
    expect(await authenticates(r.secret, org.id)).toBe(true);

    h.clock.advance(365 * DAY);
    expect(await authenticates(r.secret, org.id)).toBe(true);
    await expect(h.root.getKey({ id: r.newKey!.id })).resolves.toMatchObject({ status: KeyStatus.KEY_STATUS_ACTIVE });
  });

  it('a key without an override stays without one, an override of 0 stays 0; live keys stay live', async () => {
    const org = await newOrg();
    const old = await h.root.createKey({ organizationId: org.id, name: 'plain', scopes: ['chat'] });
    const r = await h.root.rotateKey({ id: old.key!.id });
    expect(r.secret).toMatch(/^kw_live_/);
    expect(r.newKey).toMatchObject({ environment: Environment.ENVIRONMENT_LIVE, scopes: ['chat'], metadata: {} });
    expect(r.newKey!.rateLimitPerMinute).toBeUndefined();

    const unlimited = await h.root.createKey({ organizationId: org.id, name: 'unlimited', rateLimitPerMinute: 0 });
    const r2 = await h.root.rotateKey({ id: unlimited.key!.id });
    expect(r2.newKey!.rateLimitPerMinute).toBe(0);
  });

  it('grace 0 expires the old key at once', async () => {
    const org = await newOrg();
    const old = await adminKey(org.id);
    const t0 = h.clock.now().getTime();
    const r = await h.root.rotateKey({ id: old.key!.id, gracePeriodSeconds: 0 });
    expect(r.oldKey).toMatchObject({ expiresAt: at(t0), status: KeyStatus.KEY_STATUS_EXPIRED, replacedByKeyId: r.newKey!.id });
    await expect(h.root.getKey({ id: old.key!.id })).resolves.toMatchObject({ status: KeyStatus.KEY_STATUS_EXPIRED });
    expect(await authenticates(old.secret, org.id)).toBe('invalid_credentials');
    expect(await authenticates(r.secret, org.id)).toBe(true);
  });

  it('without grace_period_seconds, the grace is the configured rotationGraceSeconds (86400)', async () => {
    expect(h.config.rotationGraceSeconds).toBe(86400);
    const org = await newOrg();
    const old = await adminKey(org.id);
    const t0 = h.clock.now().getTime();
    const r = await h.root.rotateKey({ id: old.key!.id });
    expect(r.oldKey!.expiresAt).toEqual(at(t0 + 86_400 * SECOND));
    h.clock.set(t0 + DAY - 1);
    expect(await authenticates(old.secret, org.id)).toBe(true);
    h.clock.set(t0 + DAY);
    expect(await authenticates(old.secret, org.id)).toBe('invalid_credentials');
  });

  it('a successor of a key with an expiry gets the same lifetime, counted from the rotation', async () => {
    const org = await newOrg();
    const created = h.clock.now().getTime();
    const old = await adminKey(org.id, { expiresInDays: 30 });
    expect(old.key!.expiresAt).toEqual(at(created + 30 * DAY));
    h.clock.advance(10 * DAY);
    const rotatedAt = h.clock.now().getTime();
    const r = await h.root.rotateKey({ id: old.key!.id, gracePeriodSeconds: 3600 });
    expect(r.newKey!.expiresAt).toEqual(at(rotatedAt + 30 * DAY));
    expect(r.oldKey!.expiresAt).toEqual(at(rotatedAt + 3600 * SECOND));
  });

  it('an old key that expires before the grace period ends keeps its earlier expiry', async () => {
    const org = await newOrg();
    const created = h.clock.now().getTime();
    const old = await adminKey(org.id, { expiresInDays: 1 });
    h.clock.advance(DAY - 60 * SECOND); // one minute left
    const rotatedAt = h.clock.now().getTime();
    const r = await h.root.rotateKey({ id: old.key!.id, gracePeriodSeconds: 3600 });
    expect(r.oldKey!.expiresAt).toEqual(at(created + DAY));
    expect(r.newKey!.expiresAt).toEqual(at(rotatedAt + DAY));
    await expect(h.root.getKey({ id: old.key!.id })).resolves.toMatchObject({
      expiresAt: at(created + DAY),
      replacedByKeyId: r.newKey!.id,
    });
    h.clock.set(created + DAY);
    expect(await authenticates(old.secret, org.id)).toBe('invalid_credentials');
    expect(await authenticates(r.secret, org.id)).toBe(true);
  });

  it('the old key can be rotated only once, even during its grace period', async () => {
    const org = await newOrg();
    const old = await adminKey(org.id);
    const r = await h.root.rotateKey({ id: old.key!.id, gracePeriodSeconds: 3600 });
    const e = await failure(h.root.rotateKey({ id: old.key!.id }));
    expect([e.grpc, e.code, e.trailerCode]).toEqual([status.FAILED_PRECONDITION, 'key_already_rotated', 'key_already_rotated']);
    // The successor can itself be rotated.
    const again = await h.root.rotateKey({ id: r.newKey!.id, gracePeriodSeconds: 0 });
    expect(again.newKey!.rotatedFromKeyId).toBe(r.newKey!.id);
  });
});

describe.each(DIALECTS)('key rotation with a configured default grace on %s', (dialect) => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness(dialect, { rotationGraceSeconds: 600 });
  });
  afterAll(async () => h.stop());

  it('uses rotationGraceSeconds when grace_period_seconds is unset, and an explicit value otherwise', async () => {
    const org = await h.root.createOrganization({ name: 'o' });
    const a = await h.root.createKey({ organizationId: org.id, name: 'a' });
    const b = await h.root.createKey({ organizationId: org.id, name: 'b' });
    const t0 = h.clock.now().getTime();
    expect((await h.root.rotateKey({ id: a.key!.id })).oldKey!.expiresAt).toEqual(new Date(t0 + 600 * SECOND));
    expect((await h.root.rotateKey({ id: b.key!.id, gracePeriodSeconds: 1200 })).oldKey!.expiresAt).toEqual(new Date(t0 + 1200 * SECOND));
  });
});
