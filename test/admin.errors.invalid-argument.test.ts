/**
 * KeyAdmin's invalid_argument: each invalid field is named in ErrorInfo.metadata and in
 * the one BadRequest violation; a request that cannot be decoded names the request.
 */
import { DIALECTS } from './support/databases';
import { startHarness, type AdminClient, type Harness } from './support/harness';
import { DAY, expectInvalid } from './support/admin-errors';
import { Environment } from '../src/gen/keyward/admin/v1/key_admin';

describe.each(DIALECTS)('KeyAdmin invalid_argument on %s', (dialect) => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness(dialect);
  });
  afterAll(async () => h.stop());

  let n = 0;
  const org = async (extra: { maxKeys?: number } = {}) => h.root.createOrganization({ name: `org-${++n}`, ...extra });
  const key = async (organizationId: string, extra: Parameters<AdminClient['createKey']>[0] = {}) =>
    h.root.createKey({ organizationId, name: `key-${++n}`, scopes: ['chat'], ...extra });

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
