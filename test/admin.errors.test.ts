/**
 * Every keyward error code of the KeyAdmin contract (the table in key_admin.proto),
 * with its gRPC status and its details: ErrorInfo in grpc-status-details-bin, the
 * x-error-code trailer, and for invalid_argument the field in ErrorInfo.metadata
 * and in BadRequest.fieldViolations.
 */
import { status } from '@grpc/grpc-js';
import { DIALECTS } from './support/databases';
import { errorOf, failure, startHarness, TEST_ADMIN_TOKEN, type AdminClient, type Harness } from './support/harness';
import { callWithAuthorization, DAY, expectError } from './support/admin-errors';
import { generateKey } from '../src/keys/format';
import { newId } from '../src/util/ids';
import { toServiceError } from '../src/errors/wire';
import { StoreUnavailableError } from '../src/errors/domain';

describe.each(DIALECTS)('KeyAdmin error codes on %s', (dialect) => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness(dialect);
  });
  afterAll(async () => h.stop());

  let n = 0;
  const org = async (extra: { maxKeys?: number } = {}) => h.root.createOrganization({ name: `org-${++n}`, ...extra });
  const key = async (organizationId: string, extra: Parameters<AdminClient['createKey']>[0] = {}) =>
    h.root.createKey({ organizationId, name: `key-${++n}`, scopes: ['chat'], ...extra });
  /** An org-scoped admin credential (a key with the `admin` scope) and its client. */
  const adminKey = async (organizationId: string, extra: Parameters<AdminClient['createKey']>[0] = {}) => {
    const created = await key(organizationId, { scopes: ['admin'], ...extra });
    return { ...created, client: h.client(created.secret) };
  };

  describe('missing_credentials (UNAUTHENTICATED)', () => {
    it('no authorization metadata at all', async () => {
      await expectError(h.client().listOrganizations({}), status.UNAUTHENTICATED, 'missing_credentials');
    });

    it('an authorization value that is not a Bearer credential, even with the right token', async () => {
      await expect(callWithAuthorization(h.app.adminPort, `Bearer ${TEST_ADMIN_TOKEN}`)).resolves.toBeDefined();
      for (const value of [
        `Basic ${Buffer.from('admin:pw').toString('base64')}`,
        `Token ${TEST_ADMIN_TOKEN}`,
        TEST_ADMIN_TOKEN,
        'Bearer',
        'Bearer  ',
      ]) {
        const e = await failure(callWithAuthorization(h.app.adminPort, value));
        expect([value, e.grpc, e.code, e.trailerCode]).toEqual([
          value,
          status.UNAUTHENTICATED,
          'missing_credentials',
          'missing_credentials',
        ]);
      }
    });
  });

  describe('invalid_credentials (UNAUTHENTICATED)', () => {
    it('a wrong administrator token', async () => {
      await expectError(h.client('not-the-admin-token').listOrganizations({}), status.UNAUTHENTICATED, 'invalid_credentials');
      await expectError(h.client(`${TEST_ADMIN_TOKEN}x`).listOrganizations({}), status.UNAUTHENTICATED, 'invalid_credentials');
    });

    it('a well-formed kw_live_ key that does not exist', async () => {
      await expectError(h.client(generateKey('live')).listOrganizations({}), status.UNAUTHENTICATED, 'invalid_credentials');
      await expectError(h.client(generateKey('test')).listOrganizations({}), status.UNAUTHENTICATED, 'invalid_credentials');
    });

    it('a key without the admin scope (even with *)', async () => {
      const o = await org();
      for (const scopes of [['chat'], ['*'], ['admin:*', 'admins', 'ADMIN']]) {
        const k = await key(o.id, { scopes });
        await expectError(h.client(k.secret).listKeys({ organizationId: o.id }), status.UNAUTHENTICATED, 'invalid_credentials');
      }
    });

    it('a revoked admin key', async () => {
      const o = await org();
      const k = await adminKey(o.id);
      await expect(k.client.listKeys({ organizationId: o.id })).resolves.toBeDefined();
      await h.root.revokeKey({ id: k.key!.id, reason: 'leaked' });
      await expectError(k.client.listKeys({ organizationId: o.id }), status.UNAUTHENTICATED, 'invalid_credentials');
    });

    it('an expired admin key', async () => {
      const o = await org();
      const k = await adminKey(o.id, { expiresInDays: 1 });
      await expect(k.client.listKeys({ organizationId: o.id })).resolves.toBeDefined();
      h.clock.advance(DAY);
      await expectError(k.client.listKeys({ organizationId: o.id }), status.UNAUTHENTICATED, 'invalid_credentials');
    });

    it('an admin key whose organization is deactivated', async () => {
      const o = await org();
      const k = await adminKey(o.id);
      await expect(k.client.getOrganization({ id: o.id })).resolves.toMatchObject({ id: o.id, active: true });
      await h.root.updateOrganization({ id: o.id, active: false });
      await expectError(k.client.getOrganization({ id: o.id }), status.UNAUTHENTICATED, 'invalid_credentials');
    });
  });

  describe('permission_denied (PERMISSION_DENIED)', () => {
    it('an org-scoped key calling a root-only method', async () => {
      const o = await org();
      const k = await adminKey(o.id);
      const e = await expectError(k.client.createOrganization({ name: 'mine' }), status.PERMISSION_DENIED, 'permission_denied');
      expect(e.info?.metadata).toEqual({});
    });

    it('an org-scoped key naming another organization', async () => {
      const [a, b] = [await org(), await org()];
      const k = await adminKey(a.id);
      await expectError(k.client.listKeys({ organizationId: b.id }), status.PERMISSION_DENIED, 'permission_denied');
    });
  });

  describe('organization_not_found (NOT_FOUND)', () => {
    it('for a well-formed id that does not exist, on every method that names an organization', async () => {
      const missing = newId('org', h.clock.now().getTime());
      await expectError(h.root.getOrganization({ id: missing }), status.NOT_FOUND, 'organization_not_found');
      await expectError(h.root.updateOrganization({ id: missing, name: 'x' }), status.NOT_FOUND, 'organization_not_found');
      await expectError(h.root.createKey({ organizationId: missing, name: 'k' }), status.NOT_FOUND, 'organization_not_found');
      await expectError(h.root.listKeys({ organizationId: missing }), status.NOT_FOUND, 'organization_not_found');
    });
  });

  describe('organization_inactive (PERMISSION_DENIED, as in the data plane)', () => {
    it('CreateKey and RotateKey in a deactivated organization', async () => {
      const o = await org();
      const k = await key(o.id);
      await h.root.updateOrganization({ id: o.id, active: false });
      await expectError(h.root.createKey({ organizationId: o.id, name: 'k' }), status.PERMISSION_DENIED, 'organization_inactive');
      await expectError(h.root.rotateKey({ id: k.key!.id }), status.PERMISSION_DENIED, 'organization_inactive');
      await h.root.updateOrganization({ id: o.id, active: true });
      await expect(h.root.createKey({ organizationId: o.id, name: 'k' })).resolves.toBeDefined();
    });
  });

  describe('key_not_found (NOT_FOUND)', () => {
    it('for a well-formed key id that does not exist, on every key method', async () => {
      const missing = newId('key', h.clock.now().getTime());
      await expectError(h.root.getKey({ id: missing }), status.NOT_FOUND, 'key_not_found');
      await expectError(h.root.updateKey({ id: missing, name: 'x' }), status.NOT_FOUND, 'key_not_found');
      await expectError(h.root.revokeKey({ id: missing, reason: 'r' }), status.NOT_FOUND, 'key_not_found');
      await expectError(h.root.rotateKey({ id: missing }), status.NOT_FOUND, 'key_not_found');
    });
  });

  describe('key_limit_exceeded (RESOURCE_EXHAUSTED)', () => {
    it('when the organization already has max_keys usable keys', async () => {
      const o = await org({ maxKeys: 1 });
      await key(o.id);
      const e = await expectError(key(o.id), status.RESOURCE_EXHAUSTED, 'key_limit_exceeded');
      expect(e.info?.metadata).toEqual({ max_keys: '1' });
    });
  });

  describe('key_revoked (FAILED_PRECONDITION)', () => {
    it('revoking twice, updating or rotating a revoked key', async () => {
      const o = await org();
      const k = await key(o.id);
      await h.root.revokeKey({ id: k.key!.id, reason: 'first' });
      await expectError(h.root.revokeKey({ id: k.key!.id, reason: 'second' }), status.FAILED_PRECONDITION, 'key_revoked');
      await expectError(h.root.updateKey({ id: k.key!.id, name: 'renamed' }), status.FAILED_PRECONDITION, 'key_revoked');
      await expectError(h.root.rotateKey({ id: k.key!.id }), status.FAILED_PRECONDITION, 'key_revoked');
      await expect(h.root.getKey({ id: k.key!.id })).resolves.toMatchObject({
        revokeReason: 'first',
        name: k.key!.name,
        replacedByKeyId: '',
      });
    });
  });

  describe('key_expired (FAILED_PRECONDITION)', () => {
    it('rotating a key after its expiry', async () => {
      const o = await org();
      const k = await key(o.id, { expiresInDays: 1 });
      h.clock.advance(2 * DAY);
      await expectError(h.root.rotateKey({ id: k.key!.id }), status.FAILED_PRECONDITION, 'key_expired');
    });
  });

  describe('key_already_rotated (FAILED_PRECONDITION)', () => {
    it('rotating the same key twice', async () => {
      const o = await org();
      const k = await key(o.id);
      const first = await h.root.rotateKey({ id: k.key!.id });
      const e = await expectError(h.root.rotateKey({ id: k.key!.id }), status.FAILED_PRECONDITION, 'key_already_rotated');
      expect(e.info?.metadata).toEqual({ replaced_by_key_id: first.newKey!.id });
    });
  });

  it('the message of a denial is the fixed text of its code, naming neither the key nor why', async () => {
    const o = await org();
    const revoked = await adminKey(o.id);
    await h.root.revokeKey({ id: revoked.key!.id, reason: 'r' });
    for (const credential of [generateKey('live'), revoked.secret, 'wrong-token']) {
      const e = await failure(h.client(credential).listOrganizations({}));
      expect(e.message).toBe('the credential is not valid for this service');
      expect(e.info?.metadata).toEqual({});
    }
  });
});

describe('unexpected failures', () => {
  it('map to internal with no detail', () => {
    const e = errorOf(toServiceError(new Error('secret detail kw_live_xyz')));
    expect(e.grpc).toBe(status.INTERNAL);
    expect(e.trailerCode).toBe('internal');
    expect(e.code).toBe('internal');
    expect(e.info).toEqual({ reason: 'internal', domain: 'keyward', metadata: {} });
    expect(e.badRequest).toBeUndefined();
    expect(e.message).not.toContain('secret detail');
    expect(e.message).not.toContain('kw_live_');
    expect(e.message).toBe('internal error');
  });

  it('also for thrown non-errors', () => {
    const e = errorOf(toServiceError({ code: 'ECONNREFUSED', message: 'secret detail' }));
    expect([e.grpc, e.code, e.trailerCode, e.message]).toEqual([status.INTERNAL, 'internal', 'internal', 'internal error']);
  });

  it('store_unavailable maps to UNAVAILABLE without the cause', () => {
    const e = errorOf(toServiceError(new StoreUnavailableError(new Error('connect ECONNREFUSED 10.0.0.5:5432 secret detail'))));
    expect([e.grpc, e.code, e.trailerCode]).toEqual([status.UNAVAILABLE, 'store_unavailable', 'store_unavailable']);
    expect(e.message).not.toContain('secret detail');
  });
});
