/**
 * KeyAdmin changes reach the data plane on the very next Check, even for keys the
 * cache holds: revoke, scope updates, expiry changes, rotation, organization
 * (de)activation. The clock is not moved unless a test says so, so nothing here
 * relies on the cache TTL running out.
 */
import { DIALECTS } from './support/databases';
import { startHarness, type Harness } from './support/harness';
import { EnvoyClient, headerMap, metadataOf, type WireCheckResponse } from './support/envoy-client';

const SECOND = 1000;

type Outcome = { allow: string; scopes: string } | { deny: string; body: Record<string, unknown> };

function outcome(r: WireCheckResponse): Outcome {
  if (r.http_response === 'ok_response') {
    expect(r.status).toBeDefined();
    expect(r.status?.code ?? 0).toBe(0);
    const h = headerMap(r.ok_response?.headers);
    expect(h['x-keyward-key-id']?.value).toBe(metadataOf(r).key_id);
    return { allow: metadataOf(r).key_id!, scopes: h['x-keyward-scopes']?.value ?? '' };
  }
  expect(r.http_response).toBe('denied_response');
  const body = JSON.parse(r.denied_response!.body!) as { error: { code: string } & Record<string, unknown> };
  const { code, message: _m, ...details } = body.error;
  expect(headerMap(r.denied_response?.headers)['x-keyward-error-code']).toEqual({ value: code, append: false });
  return { deny: code, body: details };
}

describe.each(DIALECTS)('KeyAdmin changes take effect at once on %s', (dialect) => {
  let h: Harness;
  let envoy: EnvoyClient;
  let orgId: string;
  let n = 0;

  beforeAll(async () => {
    h = await startHarness(dialect);
    envoy = new EnvoyClient(h.app.authzPort);
    orgId = (await h.root.createOrganization({ name: 'Acme' })).id;
  });
  afterAll(async () => {
    envoy.close();
    await h.stop();
  });

  const newKey = async (scopes = ['chat'], organizationId = orgId) => {
    const r = await h.root.createKey({ organizationId, name: `k${++n}`, scopes });
    return { id: r.key!.id, secret: r.secret };
  };
  const check = (secret: string, ext: Record<string, string> = {}) =>
    envoy.check({ headers: { 'x-api-key': secret }, contextExtensions: ext }).then(outcome);

  /** Checks twice and asserts the second answer came from the cache. */
  async function warm(secret: string, keyId: string, scopes = 'chat'): Promise<void> {
    expect(await check(secret)).toEqual({ allow: keyId, scopes });
    const { hits, misses } = h.app.cache.stats;
    expect(await check(secret)).toEqual({ allow: keyId, scopes });
    expect(h.app.cache.stats.hits).toBe(hits + 1);
    expect(h.app.cache.stats.misses).toBe(misses);
  }

  it("RevokeKey denies the key's very next Check", async () => {
    const k = await newKey();
    const other = await newKey();
    await warm(k.secret, k.id);
    await warm(other.secret, other.id);
    const t = h.clock.now().getTime();
    await h.root.revokeKey({ id: k.id, reason: 'leaked' });
    expect(await check(k.secret)).toEqual({ deny: 'revoked_api_key', body: {} });
    expect(await check(k.secret)).toEqual({ deny: 'revoked_api_key', body: {} });
    // Another key of the same organization is not affected.
    expect(await check(other.secret)).toEqual({ allow: other.id, scopes: 'chat' });
    expect(h.clock.now().getTime()).toBe(t);
  });

  it('UpdateKey scopes take effect on the next Check', async () => {
    const k = await newKey(['chat']);
    await warm(k.secret, k.id, 'chat');
    expect(await check(k.secret, { required_scopes: 'agents:read' })).toEqual({
      deny: 'insufficient_scope',
      body: { required: ['agents:read'] },
    });

    await h.root.updateKey({ id: k.id, scopes: { values: ['agents:read', 'files:*'] } });
    expect(await check(k.secret, { required_scopes: 'agents:read' })).toEqual({ allow: k.id, scopes: 'agents:read,files:*' });
    expect(await check(k.secret, { required_scopes: 'files:write' })).toEqual({ allow: k.id, scopes: 'agents:read,files:*' });
    expect(await check(k.secret, { required_scopes: 'chat' })).toEqual({ deny: 'insufficient_scope', body: { required: ['chat'] } });

    await h.root.updateKey({ id: k.id, scopes: { values: [] } });
    expect(await check(k.secret)).toEqual({ allow: k.id, scopes: '' });
    expect(await check(k.secret, { required_scopes: 'agents:read' })).toEqual({
      deny: 'insufficient_scope',
      body: { required: ['agents:read'] },
    });
  });

  it('UpdateKey expiry: a new expiry and clearing it take effect on the next Check', async () => {
    const k = await newKey();
    await warm(k.secret, k.id);
    const soon = new Date(h.clock.now().getTime() + 60 * SECOND);
    await h.root.updateKey({ id: k.id, expiresAt: soon });
    expect(await check(k.secret)).toEqual({ allow: k.id, scopes: 'chat' });
    h.clock.advance(60 * SECOND);
    expect(await check(k.secret)).toEqual({ deny: 'expired_api_key', body: { expired_at: soon.toISOString() } });
    await h.root.updateKey({ id: k.id, clearExpiresAt: true });
    expect(await check(k.secret)).toEqual({ allow: k.id, scopes: 'chat' });
  });

  it('RotateKey: the old key works during the grace period, then is expired; the new key works', async () => {
    const old = await newKey(['chat', 'agents:read']);
    await warm(old.secret, old.id, 'chat,agents:read');
    const t0 = h.clock.now().getTime();
    const r = await h.root.rotateKey({ id: old.id, gracePeriodSeconds: 3600 });
    const fresh = { id: r.newKey!.id, secret: r.secret };
    expect(fresh.id).not.toBe(old.id);
    const graceEnd = new Date(t0 + 3600 * SECOND).toISOString();
    expect(r.oldKey!.expiresAt?.toISOString()).toBe(graceEnd);

    expect(await check(old.secret)).toEqual({ allow: old.id, scopes: 'chat,agents:read' });
    expect(await check(fresh.secret)).toEqual({ allow: fresh.id, scopes: 'chat,agents:read' });

    h.clock.advance(3600 * SECOND - 1);
    expect(await check(old.secret)).toEqual({ allow: old.id, scopes: 'chat,agents:read' });
    h.clock.advance(1);
    expect(await check(old.secret)).toEqual({ deny: 'expired_api_key', body: { expired_at: graceEnd } });
    expect(await check(fresh.secret)).toEqual({ allow: fresh.id, scopes: 'chat,agents:read' });
    h.clock.advance(86_400 * SECOND);
    expect(await check(old.secret)).toEqual({ deny: 'expired_api_key', body: { expired_at: graceEnd } });
    expect(await check(fresh.secret)).toEqual({ allow: fresh.id, scopes: 'chat,agents:read' });
  });

  it('RotateKey with no grace period denies the cached old key at once', async () => {
    const old = await newKey();
    await warm(old.secret, old.id);
    const now = h.clock.now().toISOString();
    const r = await h.root.rotateKey({ id: old.id, gracePeriodSeconds: 0 });
    expect(await check(old.secret)).toEqual({ deny: 'expired_api_key', body: { expired_at: now } });
    expect(await check(r.secret)).toEqual({ allow: r.newKey!.id, scopes: 'chat' });
  });

  it('deactivating the organization denies its cached keys at once; reactivating allows them again', async () => {
    const org = await h.root.createOrganization({ name: 'Toggle' });
    const a = await newKey(['chat'], org.id);
    const b = await newKey(['chat'], org.id);
    const elsewhere = await newKey();
    await warm(a.secret, a.id);
    await warm(b.secret, b.id);
    await warm(elsewhere.secret, elsewhere.id);
    const t = h.clock.now().getTime();

    await h.root.updateOrganization({ id: org.id, active: false });
    expect(await check(a.secret)).toEqual({ deny: 'organization_inactive', body: {} });
    expect(await check(b.secret)).toEqual({ deny: 'organization_inactive', body: {} });
    expect(await check(elsewhere.secret)).toEqual({ allow: elsewhere.id, scopes: 'chat' });

    await h.root.updateOrganization({ id: org.id, active: true });
    expect(await check(a.secret)).toEqual({ allow: a.id, scopes: 'chat' });
    expect(await check(b.secret)).toEqual({ allow: b.id, scopes: 'chat' });
    expect(h.clock.now().getTime()).toBe(t);
  });

  it('a revoked key stays denied after its organization is reactivated', async () => {
    const org = await h.root.createOrganization({ name: 'Toggle 2' });
    const k = await newKey(['chat'], org.id);
    await warm(k.secret, k.id);
    await h.root.revokeKey({ id: k.id, reason: 'done' });
    await h.root.updateOrganization({ id: org.id, active: false });
    await h.root.updateOrganization({ id: org.id, active: true });
    expect(await check(k.secret)).toEqual({ deny: 'revoked_api_key', body: {} });
  });
});
