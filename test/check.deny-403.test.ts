/**
 * Check denials with HTTP 403 (google.rpc PERMISSION_DENIED): an inactive
 * organization, a disabled key, and missing scopes (context_extensions required_scopes
 * / any_scopes, with key-scope wildcards; the RFC 6750 insufficient_scope challenge).
 */
import { DIALECTS } from './support/databases';
import { startHarness, type Harness } from './support/harness';
import { EnvoyClient, metadataOf, type WireCheckResponse, type WireHeaderOption } from './support/envoy-client';
import { ErrorInfo } from '../src/gen/google/rpc/error_details';

const MESSAGES = {
  organization_inactive: 'the organization is inactive',
  disabled_api_key: 'the API key is disabled',
  insufficient_scope: 'the API key lacks a scope this route requires',
} as const;
type Code403 = keyof typeof MESSAGES;

function headerTriples(opts: WireHeaderOption[] | undefined): [string, string, boolean | 'unset'][] {
  return (opts ?? [])
    .map((o): [string, string, boolean | 'unset'] => [
      o.header.key,
      o.header.value ?? '',
      o.append === undefined ? 'unset' : (o.append.value ?? false),
    ])
    .sort((a, b) => a[0].localeCompare(b[0]));
}

/**
 * Asserts a complete 403 denial: ErrorInfo, exact body, and www-authenticate only on
 * insufficient_scope (RFC 6750 §3.1: error="insufficient_scope" and the scopes lacking:
 * `required`, then `any_of`).
 */
function expect403(r: WireCheckResponse, code: Code403, details: Record<string, unknown> = {}): void {
  expect(r.http_response).toBe('denied_response');
  expect(r.ok_response).toBeUndefined();
  expect(r.status?.code).toBe(7);
  expect(r.status?.message).toBe(MESSAGES[code]);
  expect(r.status?.details?.map((d) => d.type_url)).toEqual(['type.googleapis.com/google.rpc.ErrorInfo']);
  expect(ErrorInfo.decode(r.status!.details![0]!.value)).toEqual({ reason: code, domain: 'keyward', metadata: {} });
  expect(r.denied_response?.status?.code).toBe(403);
  const scopes = [...((details.required as string[] | undefined) ?? []), ...((details.any_of as string[] | undefined) ?? [])];
  const challenge: [string, string, boolean][] =
    code === 'insufficient_scope'
      ? [['www-authenticate', `Bearer realm="keyward", error="insufficient_scope", scope="${scopes.join(' ')}"`, false]]
      : [];
  expect(headerTriples(r.denied_response?.headers)).toEqual([
    ['content-type', 'application/json', false],
    ...challenge,
    ['x-keyward-error-code', code, false],
  ]);
  expect(JSON.parse(r.denied_response!.body!)).toEqual({ error: { code, message: MESSAGES[code], ...details } });
}

function expectAllowed(r: WireCheckResponse, keyId: string): void {
  expect(r.http_response).toBe('ok_response');
  expect(r.denied_response).toBeUndefined();
  expect(r.status).toBeDefined();
  expect(r.status?.code ?? 0).toBe(0);
  expect(metadataOf(r).key_id).toBe(keyId);
}

describe.each(DIALECTS)('Check 403 denials on %s', (dialect) => {
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

  const newKey = async (scopes: string[], organizationId = orgId) => {
    const r = await h.root.createKey({ organizationId, name: `k${++n}`, scopes });
    return { id: r.key!.id, secret: r.secret };
  };
  const NO_CHANGE = { clearExpiresAt: false, clearRateLimitPerMinute: false, scopes: undefined, expiresAt: undefined, metadata: undefined };
  const check = (secret: string, ext: Record<string, string> = {}) =>
    envoy.check({ headers: { authorization: `Bearer ${secret}` }, contextExtensions: ext });

  it('organization_inactive at once after UpdateOrganization active=false, for a cached key, without moving the clock', async () => {
    const org = await h.root.createOrganization({ name: 'Soon inactive' });
    const k = await newKey(['chat'], org.id);
    const t = h.clock.now().getTime();
    expectAllowed(await check(k.secret), k.id);
    const hitsBefore = h.app.cache.stats.hits;
    expectAllowed(await check(k.secret), k.id);
    expect(h.app.cache.stats.hits).toBe(hitsBefore + 1); // it is cached

    await h.root.updateOrganization({ id: org.id, active: false });
    expect(h.clock.now().getTime()).toBe(t);
    const r = await check(k.secret);
    expect403(r, 'organization_inactive');
    expect(metadataOf(r)).toEqual({ error_code: 'organization_inactive', key_id: k.id, org_id: org.id, environment: 'live' });
    // Also when the route asks for a scope the key lacks: the organization is checked first.
    expect403(await check(k.secret, { required_scopes: 'admin' }), 'organization_inactive');
  });

  it('disabled_api_key at once after UpdateKey enabled=false for a cached key; usable again once enabled', async () => {
    const k = await newKey(['chat']);
    const t = h.clock.now().getTime();
    expectAllowed(await check(k.secret), k.id);
    expectAllowed(await check(k.secret), k.id); // cached

    const disabled = await h.root.updateKey({ ...NO_CHANGE, id: k.id, enabled: false });
    expect(disabled.enabled).toBe(false);
    expect(h.clock.now().getTime()).toBe(t);
    const r = await check(k.secret);
    expect403(r, 'disabled_api_key');
    expect(metadataOf(r)).toEqual({ error_code: 'disabled_api_key', key_id: k.id, org_id: orgId, environment: 'live' });
    // Checked before the scopes: a disabled key learns nothing about the route.
    expect403(await check(k.secret, { required_scopes: 'admin' }), 'disabled_api_key');

    expect((await h.root.updateKey({ ...NO_CHANGE, id: k.id, enabled: true })).enabled).toBe(true);
    expectAllowed(await check(k.secret), k.id);
  });

  describe('insufficient_scope', () => {
    it('required_scopes: every one is needed; the body lists only the missing ones, in order', async () => {
      const k = await newKey(['chat', 'agents:read']);
      const r = await check(k.secret, { required_scopes: 'billing:read, chat,agents:write, agents:read' });
      expect403(r, 'insufficient_scope', { required: ['billing:read', 'agents:write'] });
      expect(metadataOf(r)).toEqual({ error_code: 'insufficient_scope', key_id: k.id, org_id: orgId, environment: 'live' });
      expect403(await check(k.secret, { required_scopes: 'chat,admin' }), 'insufficient_scope', { required: ['admin'] });
      expectAllowed(await check(k.secret, { required_scopes: 'chat,agents:read' }), k.id);
      expectAllowed(await check(k.secret, { required_scopes: 'chat' }), k.id);
      expectAllowed(await check(k.secret, { required_scopes: ' , ' }), k.id);
    });

    it('any_scopes: one is enough; when none is held the body lists them all as any_of', async () => {
      const k = await newKey(['org:member']);
      expect403(await check(k.secret, { any_scopes: 'org:admin,org:owner' }), 'insufficient_scope', { any_of: ['org:admin', 'org:owner'] });
      expectAllowed(await check(k.secret, { any_scopes: 'org:admin,org:member' }), k.id);
      expectAllowed(await check(k.secret, { any_scopes: 'org:member' }), k.id);
    });

    it('required_scopes and any_scopes together: both must hold, and the body says what is lacking of each', async () => {
      const k = await newKey(['chat', 'org:member']);
      expect403(await check(k.secret, { required_scopes: 'chat,admin', any_scopes: 'org:admin,org:owner' }), 'insufficient_scope', {
        required: ['admin'],
        any_of: ['org:admin', 'org:owner'],
      });
      expect403(await check(k.secret, { required_scopes: 'chat,admin', any_scopes: 'org:member' }), 'insufficient_scope', {
        required: ['admin'],
      });
      expect403(await check(k.secret, { required_scopes: 'chat', any_scopes: 'org:admin' }), 'insufficient_scope', {
        any_of: ['org:admin'],
      });
      expectAllowed(await check(k.secret, { required_scopes: 'chat', any_scopes: 'org:admin,org:member' }), k.id);
    });
  });

  describe('wildcard key scopes', () => {
    it('agents:* grants agents:read and agents:write, but not agents, agentsx:read or chat', async () => {
      const k = await newKey(['agents:*']);
      expectAllowed(await check(k.secret, { required_scopes: 'agents:read' }), k.id);
      expectAllowed(await check(k.secret, { required_scopes: 'agents:read,agents:write,agents:run:x' }), k.id);
      expectAllowed(await check(k.secret, { any_scopes: 'chat,agents:read' }), k.id);
      expect403(await check(k.secret, { required_scopes: 'agents' }), 'insufficient_scope', { required: ['agents'] });
      expect403(await check(k.secret, { required_scopes: 'agentsx:read' }), 'insufficient_scope', { required: ['agentsx:read'] });
      expect403(await check(k.secret, { required_scopes: 'agents:read,chat' }), 'insufficient_scope', { required: ['chat'] });
    });

    it('* grants every scope', async () => {
      const k = await newKey(['*']);
      expectAllowed(await check(k.secret, { required_scopes: 'agents:write,chat,billing:read,admin' }), k.id);
      expectAllowed(await check(k.secret, { any_scopes: 'anything' }), k.id);
    });

    it('agents:read does not grant agents:write, nor agents:*', async () => {
      const k = await newKey(['agents:read']);
      expectAllowed(await check(k.secret, { required_scopes: 'agents:read' }), k.id);
      expect403(await check(k.secret, { required_scopes: 'agents:write' }), 'insufficient_scope', { required: ['agents:write'] });
      expect403(await check(k.secret, { required_scopes: 'agents:*' }), 'insufficient_scope', { required: ['agents:*'] });
      expect403(await check(k.secret, { any_scopes: 'agents:write,agents:admin' }), 'insufficient_scope', {
        any_of: ['agents:write', 'agents:admin'],
      });
    });

    it('a * inside a scope is literal: agents* grants only agents*', async () => {
      const k = await newKey(['agents*']);
      expect403(await check(k.secret, { required_scopes: 'agents:read' }), 'insufficient_scope', { required: ['agents:read'] });
      expect403(await check(k.secret, { required_scopes: 'agentsx' }), 'insufficient_scope', { required: ['agentsx'] });
      expectAllowed(await check(k.secret, { required_scopes: 'agents*' }), k.id);
    });
  });
});
