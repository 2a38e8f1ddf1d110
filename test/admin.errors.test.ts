/**
 * Every keyward error code of the KeyAdmin contract (the table in key_admin.proto),
 * with its gRPC status and its details: ErrorInfo in grpc-status-details-bin, the
 * x-error-code trailer, and for invalid_argument the field in ErrorInfo.metadata
 * and in BadRequest.fieldViolations.
 */
import { credentials, Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { DIALECTS } from './support/databases';
import { errorOf, failure, startHarness, TEST_ADMIN_TOKEN, type AdminClient, type Harness } from './support/harness';
import { generateKey } from '../src/keys/format';
import { newId } from '../src/util/ids';
import { toServiceError } from '../src/grpc/errors';
import { StoreUnavailableError } from '../src/errors/domain';
import { Environment, KeyAdminClient, ListOrganizationsRequest } from '../src/gen/keyward/admin/v1/key_admin';

const DAY = 86_400_000;

type KeywardError = Awaited<ReturnType<typeof failure>>;

/** Expects the call to fail with exactly this gRPC status and keyward code (both carriers). */
async function expectError(call: Promise<unknown>, grpc: status, code: string): Promise<KeywardError> {
  const e = await failure(call);
  expect({ grpc: e.grpc, code: e.code, trailerCode: e.trailerCode, domain: e.info?.domain }).toEqual({
    grpc,
    code,
    trailerCode: code,
    domain: 'keyward',
  });
  if (code !== 'invalid_argument') expect(e.badRequest).toBeUndefined();
  return e;
}

/** Expects INVALID_ARGUMENT naming `field` in ErrorInfo.metadata and in the one BadRequest violation. */
async function expectInvalid(call: Promise<unknown>, field: string): Promise<KeywardError> {
  const e = await expectError(call, status.INVALID_ARGUMENT, 'invalid_argument');
  expect(e.field).toBe(field);
  expect(e.info?.metadata.field).toBe(field);
  expect(e.badRequest?.fieldViolations.map((v) => v.field)).toEqual([field]);
  expect(e.badRequest?.fieldViolations[0]?.description).not.toBe('');
  return e;
}

/** A ListOrganizations call with a raw `authorization` value (or none). */
function callWithAuthorization(port: number, authorization: string | undefined): Promise<unknown> {
  const raw = new KeyAdminClient(`127.0.0.1:${port}`, credentials.createInsecure());
  const md = new Metadata();
  if (authorization !== undefined) md.set('authorization', authorization);
  return new Promise((resolve, reject) => {
    raw.listOrganizations(ListOrganizationsRequest.fromPartial({}), md, (e: ServiceError | null, r) => {
      raw.close();
      if (e) reject(e);
      else resolve(r);
    });
  });
}

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

  describe('invalid_argument (INVALID_ARGUMENT) names the field', () => {
    it('organization name: empty, blank, 201 characters, control characters', async () => {
      await expectInvalid(h.root.createOrganization({ name: '' }), 'name');
      await expectInvalid(h.root.createOrganization({ name: '   ' }), 'name');
      await expectInvalid(h.root.createOrganization({ name: 'x'.repeat(201) }), 'name');
      await expectInvalid(h.root.createOrganization({ name: 'a\nb' }), 'name');
      await expect(h.root.createOrganization({ name: 'x'.repeat(200) })).resolves.toMatchObject({ name: 'x'.repeat(200) });
      const o = await org();
      await expectInvalid(h.root.updateOrganization({ id: o.id, name: '' }), 'name');
    });

    it('key name: empty and 201 characters', async () => {
      const o = await org();
      await expectInvalid(h.root.createKey({ organizationId: o.id, name: '' }), 'name');
      await expectInvalid(h.root.createKey({ organizationId: o.id, name: 'k'.repeat(201) }), 'name');
      const k = await key(o.id);
      await expectInvalid(h.root.updateKey({ id: k.key!.id, name: 'k'.repeat(201) }), 'name');
    });

    it('organization limits out of range', async () => {
      await expectInvalid(h.root.createOrganization({ name: 'o', maxKeys: 0 }), 'max_keys');
      await expectInvalid(h.root.createOrganization({ name: 'o', maxKeys: 100_001 }), 'max_keys');
      await expectInvalid(h.root.createOrganization({ name: 'o', billingAnchorDay: 0 }), 'billing_anchor_day');
      await expectInvalid(h.root.createOrganization({ name: 'o', billingAnchorDay: 29 }), 'billing_anchor_day');
      await expectInvalid(h.root.createOrganization({ name: 'o', rateLimitPerMinute: 1_000_000_001 }), 'rate_limit_per_minute');
      const o = await org();
      await expectInvalid(h.root.updateOrganization({ id: o.id, rateLimitPerMinute: 1_000_000_001 }), 'rate_limit_per_minute');
      await expectInvalid(h.root.updateOrganization({ id: o.id, maxKeys: 0 }), 'max_keys');
      await expectInvalid(h.root.updateOrganization({ id: o.id, billingAnchorDay: 29 }), 'billing_anchor_day');
      // The boundaries themselves are accepted, and the failed updates changed nothing.
      await expect(h.root.getOrganization({ id: o.id })).resolves.toMatchObject({
        maxKeys: 100,
        rateLimitPerMinute: 60,
        billingAnchorDay: 1,
      });
      await expect(h.root.updateOrganization({ id: o.id, rateLimitPerMinute: 1_000_000_000, billingAnchorDay: 28 })).resolves.toMatchObject(
        {
          rateLimitPerMinute: 1_000_000_000,
          billingAnchorDay: 28,
        },
      );
    });

    it('key rate limit over range', async () => {
      const o = await org();
      await expectInvalid(
        h.root.createKey({ organizationId: o.id, name: 'k', rateLimitPerMinute: 1_000_000_001 }),
        'rate_limit_per_minute',
      );
    });

    it('an unknown environment', async () => {
      const o = await org();
      await expectInvalid(h.root.createKey({ organizationId: o.id, name: 'k', environment: 7 as Environment }), 'environment');
    });

    it('oversized metadata: 17 entries, a 257-character value, an empty key', async () => {
      const o = await org();
      const entries = (count: number) => Object.fromEntries(Array.from({ length: count }, (_, i) => [`k${i}`, 'v']));
      await expectInvalid(h.root.createKey({ organizationId: o.id, name: 'k', metadata: entries(17) }), 'metadata');
      await expectInvalid(h.root.createKey({ organizationId: o.id, name: 'k', metadata: { team: 'v'.repeat(257) } }), 'metadata');
      await expectInvalid(h.root.createKey({ organizationId: o.id, name: 'k', metadata: { ['m'.repeat(65)]: 'v' } }), 'metadata');
      const ok = await h.root.createKey({ organizationId: o.id, name: 'k', metadata: { ...entries(15), team: 'v'.repeat(256) } });
      expect(Object.keys(ok.key!.metadata)).toHaveLength(16);
      await expectInvalid(h.root.updateKey({ id: ok.key!.id, metadata: { entries: entries(17) } }), 'metadata.entries');
    });

    it('too many scopes, and scopes with bad characters', async () => {
      const o = await org();
      const many = Array.from({ length: 65 }, (_, i) => `s${i}`);
      await expectInvalid(h.root.createKey({ organizationId: o.id, name: 'k', scopes: many }), 'scopes');
      for (const bad of ['has space', 'semi;colon', '', 'a/b', 's'.repeat(129)]) {
        await expectInvalid(h.root.createKey({ organizationId: o.id, name: 'k', scopes: ['chat', bad] }), 'scopes');
      }
      const k = await h.root.createKey({ organizationId: o.id, name: 'k', scopes: many.slice(0, 64) });
      await expectInvalid(h.root.updateKey({ id: k.key!.id, scopes: { values: ['ok', 'not ok'] } }), 'scopes.values');
    });

    it('page_size -1 and 1001, on every list method', async () => {
      const o = await org();
      for (const pageSize of [-1, 1001]) {
        await expectInvalid(h.root.listOrganizations({ pageSize }), 'page_size');
        await expectInvalid(h.root.listKeys({ organizationId: o.id, pageSize }), 'page_size');
        await expectInvalid(h.root.listAuditEvents({ pageSize }), 'page_size');
      }
      await expect(h.root.listOrganizations({ pageSize: 1000 })).resolves.toBeDefined();
    });

    it('a page_token the server did not issue', async () => {
      const o = await org();
      const token = (cursor: unknown) => Buffer.from(JSON.stringify({ c: cursor })).toString('base64url');
      for (const pageToken of ['not a token', 'e30', token({ $gt: '' }), token(null), 'A'.repeat(300)]) {
        await expectInvalid(h.root.listOrganizations({ pageToken }), 'page_token');
        await expectInvalid(h.root.listKeys({ organizationId: o.id, pageToken }), 'page_token');
        await expectInvalid(h.root.listAuditEvents({ pageToken }), 'page_token');
      }
      // Well-formed tokens whose cursor has the wrong type for the list: organizations and
      // keys page by id (a string), audit events by number.
      await expectInvalid(h.root.listOrganizations({ pageToken: token(12) }), 'page_token');
      await expectInvalid(h.root.listKeys({ organizationId: o.id, pageToken: token(12) }), 'page_token');
      await expectInvalid(h.root.listAuditEvents({ pageToken: token('abc') }), 'page_token');
      await expectInvalid(h.root.listAuditEvents({ pageToken: token(o.id) }), 'page_token');
    });

    it('malformed ids name `id` or `organization_id`', async () => {
      const o = await org();
      const k = await key(o.id);
      await expectInvalid(h.root.getOrganization({ id: 'nope' }), 'id');
      await expectInvalid(h.root.getOrganization({ id: k.key!.id }), 'id'); // a key id is not an organization id
      await expectInvalid(h.root.getOrganization({ id: '' }), 'id');
      await expectInvalid(h.root.updateOrganization({ id: 'org_short', name: 'x' }), 'id');
      await expectInvalid(h.root.getKey({ id: 'key_' + 'x'.repeat(30) }), 'id');
      await expectInvalid(h.root.getKey({ id: o.id }), 'id');
      await expectInvalid(h.root.updateKey({ id: 'bad', name: 'x' }), 'id');
      await expectInvalid(h.root.revokeKey({ id: 'bad', reason: 'r' }), 'id');
      await expectInvalid(h.root.rotateKey({ id: 'bad' }), 'id');
      await expectInvalid(h.root.createKey({ organizationId: 'org_!!', name: 'k' }), 'organization_id');
      await expectInvalid(h.root.createKey({ organizationId: '', name: 'k' }), 'organization_id');
      await expectInvalid(h.root.listKeys({ organizationId: k.key!.id }), 'organization_id');
      await expectInvalid(h.root.listAuditEvents({ organizationId: 'x' }), 'organization_id');
      await expectInvalid(h.root.listAuditEvents({ keyId: 'x' }), 'key_id');
    });

    it('expiry: expires_in_days 0 and 3651, expires_at in the past, both given', async () => {
      const o = await org();
      await expectInvalid(h.root.createKey({ organizationId: o.id, name: 'k', expiresInDays: 0 }), 'expires_in_days');
      await expectInvalid(h.root.createKey({ organizationId: o.id, name: 'k', expiresInDays: 3651 }), 'expires_in_days');
      const now = h.clock.now().getTime();
      await expectInvalid(h.root.createKey({ organizationId: o.id, name: 'k', expiresAt: new Date(now - 1000) }), 'expires_at');
      await expectInvalid(h.root.createKey({ organizationId: o.id, name: 'k', expiresAt: new Date(now) }), 'expires_at');
      await expectInvalid(
        h.root.createKey({ organizationId: o.id, name: 'k', expiresInDays: 5, expiresAt: new Date(now + DAY) }),
        'expiry',
      );
      const k = await key(o.id);
      await expectInvalid(h.root.updateKey({ id: k.key!.id, expiresAt: new Date(now - 1000) }), 'expires_at');
      // None of the rejected requests created a key.
      expect((await h.root.listKeys({ organizationId: o.id })).keys.map((x) => x.id)).toEqual([k.key!.id]);
    });

    it('an empty revoke reason', async () => {
      const o = await org();
      const k = await key(o.id);
      await expectInvalid(h.root.revokeKey({ id: k.key!.id, reason: '' }), 'reason');
      await expectInvalid(h.root.revokeKey({ id: k.key!.id, reason: '   ' }), 'reason');
      await expectInvalid(h.root.revokeKey({ id: k.key!.id, reason: 'r'.repeat(501) }), 'reason');
      await expect(h.root.getKey({ id: k.key!.id })).resolves.toMatchObject({ revokeReason: '', revokedAt: undefined });
    });

    it('grace_period_seconds over 2592000', async () => {
      const o = await org();
      const k = await key(o.id);
      await expectInvalid(h.root.rotateKey({ id: k.key!.id, gracePeriodSeconds: 2_592_001 }), 'grace_period_seconds');
      await expect(h.root.getKey({ id: k.key!.id })).resolves.toMatchObject({ replacedByKeyId: '' });
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

describe('undecodable KeyAdmin requests', () => {
  it('a monthly_quota beyond 2^53-1 is invalid_argument naming the request, not an internal error', async () => {
    const { startHarness, errorOf } = await import('./support/harness');
    const { Metadata, credentials, makeGenericClientConstructor } = await import('@grpc/grpc-js');
    const { KeyAdminService } = await import('../src/gen/keyward/admin/v1/key_admin');
    const { BinaryWriter } = await import('@bufbuild/protobuf/wire');
    const h = await startHarness('sqlite');
    try {
      // CreateOrganizationRequest{name = "big" (1), monthly_quota = 2^63-1 (4)}, written by hand.
      const bytes = new BinaryWriter().uint32(10).string('big').uint32(32).uint64('9223372036854775807').finish();
      const Raw = makeGenericClientConstructor(
        { create: { ...KeyAdminService.createOrganization, requestSerialize: (b: Uint8Array) => Buffer.from(b) } },
        'KeyAdmin',
      );
      const client = new Raw(`127.0.0.1:${h.app.adminPort}`, credentials.createInsecure());
      const md = new Metadata();
      md.set('authorization', `Bearer ${h.config.adminToken}`);
      const err = await new Promise((resolve) =>
        (
          client as unknown as { create(request: Uint8Array, md: InstanceType<typeof Metadata>, callback: (e: unknown) => void): void }
        ).create(bytes, md, (e) => resolve(e)),
      );
      const e = errorOf(err);
      expect([e.grpc, e.code, e.trailerCode, e.field]).toEqual([3, 'invalid_argument', 'invalid_argument', 'request']);
      expect(e.message).toContain('2^53');
      client.close();
      expect((await h.root.listOrganizations({})).organizations).toEqual([]);
    } finally {
      await h.stop();
    }
  });
});
