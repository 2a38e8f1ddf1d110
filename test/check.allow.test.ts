/**
 * Allowed Checks, asserted in full: status OK, the identity headers (append false),
 * headers_to_remove (credential and spoofed x-keyward-* headers) and
 * dynamic_metadata; where the credential may come from; and configuration of the
 * credential headers and of stripping.
 */
import { DIALECTS } from './support/databases';
import { startHarness, type Harness, type HarnessOverrides } from './support/harness';
import { EnvoyClient, metadataOf, type CheckOptions, type WireCheckResponse, type WireHeaderOption } from './support/envoy-client';
import { parseRouteRules } from '../src/authz/routes';
import { Environment } from '../src/gen/keyward/admin/v1/key_admin';

function headerTriples(opts: WireHeaderOption[] | undefined): [string, string, boolean | 'unset'][] {
  return (opts ?? [])
    .map((o): [string, string, boolean | 'unset'] => [
      o.header.key,
      o.header.value ?? '',
      o.append === undefined ? 'unset' : (o.append.value ?? false),
    ])
    .sort((a, b) => a[0].localeCompare(b[0]));
}

interface Identity {
  keyId: string;
  orgId: string;
  scopes: string;
  environment: 'live' | 'test';
}

/**
 * Asserts a complete allow: status present (code 0), identity headers, removals and
 * metadata (with the endpoint label usage was counted under: the default path's).
 */
function expectAllowed(r: WireCheckResponse, id: Identity | null, remove: string[], endpoint = '/v1/things'): void {
  expect(r.http_response).toBe('ok_response');
  expect(r.denied_response).toBeUndefined();
  // Status OK is set explicitly; proto-loader (defaults: false) drops the zero code,
  // so the object is present but its code may be absent.
  expect(r.status).toBeDefined();
  expect(r.status?.code ?? 0).toBe(0);
  expect(r.status?.details ?? []).toEqual([]);
  const ok = r.ok_response!;
  expect(ok).toBeDefined();
  expect(headerTriples(ok.headers)).toEqual(
    id === null
      ? []
      : [
          ['x-keyward-environment', id.environment, false],
          ['x-keyward-key-id', id.keyId, false],
          ['x-keyward-org-id', id.orgId, false],
          ['x-keyward-scopes', id.scopes, false],
        ],
  );
  expect([...(ok.headers_to_remove ?? [])].sort()).toEqual([...remove].sort());
  expect(ok.response_headers_to_add ?? []).toEqual([]);
  expect(metadataOf(r)).toEqual(id === null ? {} : { key_id: id.keyId, org_id: id.orgId, environment: id.environment, endpoint });
}

function expectMissingKey(r: WireCheckResponse): void {
  expect(r.http_response).toBe('denied_response');
  expect(r.status?.code).toBe(16);
  expect(r.denied_response?.status?.code).toBe(401);
  expect(JSON.parse(r.denied_response!.body!)).toEqual({ error: { code: 'missing_api_key', message: 'an API key is required' } });
}

/** One keyward with one organization, and a way to make keys in it. */
function setup(dialect: 'sqlite' | 'postgres', overrides: HarnessOverrides = {}) {
  const s = {} as {
    h: Harness;
    envoy: EnvoyClient;
    orgId: string;
    newKey(scopes?: string[], environment?: Environment): Promise<{ secret: string; id: Identity }>;
  };
  let n = 0;
  beforeAll(async () => {
    s.h = await startHarness(dialect, overrides);
    s.envoy = new EnvoyClient(s.h.app.authzPort);
    // Unlimited, so the exact allowed response carries no rate-limit headers (see check.rate-limit).
    s.orgId = (await s.h.root.createOrganization({ name: 'Acme', rateLimitPerMinute: 0 })).id;
    s.newKey = async (scopes = ['chat', 'agents:read'], environment = Environment.ENVIRONMENT_LIVE) => {
      const r = await s.h.root.createKey({ organizationId: s.orgId, name: `k${++n}`, scopes, environment });
      return {
        secret: r.secret,
        id: {
          keyId: r.key!.id,
          orgId: s.orgId,
          scopes: scopes.join(','),
          environment: environment === Environment.ENVIRONMENT_TEST ? 'test' : 'live',
        },
      };
    };
  });
  afterAll(async () => {
    s.envoy.close();
    await s.h.stop();
  });
  return s;
}

describe.each(DIALECTS)('allowed Checks on %s', (dialect) => {
  describe('default configuration', () => {
    const s = setup(dialect);

    it('a live key: the exact allowed response', async () => {
      const k = await s.newKey(['chat', 'agents:read']);
      expect(k.id.scopes).toBe('chat,agents:read');
      expectAllowed(await s.envoy.check({ headers: { authorization: `Bearer ${k.secret}` } }), k.id, ['authorization']);
    });

    it('a test-environment key', async () => {
      const k = await s.newKey(['chat'], Environment.ENVIRONMENT_TEST);
      expect(k.secret).toMatch(/^kw_test_/);
      expect(k.id.environment).toBe('test');
      expectAllowed(await s.envoy.check({ headers: { 'x-api-key': k.secret } }), k.id, ['x-api-key']);
    });

    it('a key with a single scope and with a wildcard scope', async () => {
      const one = await s.newKey(['*']);
      expectAllowed(await s.envoy.check({ headers: { 'x-api-key': one.secret } }), { ...one.id, scopes: '*' }, ['x-api-key']);
      const three = await s.newKey(['agents:*', 'chat', 'billing:read']);
      expectAllowed(
        await s.envoy.check({ headers: { 'x-api-key': three.secret } }),
        { ...three.id, scopes: 'agents:*,chat,billing:read' },
        ['x-api-key'],
      );
    });

    it.each(['Bearer', 'bearer', 'BEARER', 'bEaReR'])('authorization scheme %s', async (scheme) => {
      const k = await s.newKey();
      expectAllowed(await s.envoy.check({ headers: { authorization: `${scheme} ${k.secret}` } }), k.id, ['authorization']);
    });

    it('authorization with extra blanks around the key', async () => {
      const k = await s.newKey();
      expectAllowed(await s.envoy.check({ headers: { authorization: `Bearer   ${k.secret}  ` } }), k.id, ['authorization']);
    });

    it('x-api-key', async () => {
      const k = await s.newKey();
      expectAllowed(await s.envoy.check({ headers: { 'x-api-key': k.secret } }), k.id, ['x-api-key']);
    });

    it('the same key in both headers: both are removed', async () => {
      const k = await s.newKey();
      expectAllowed(await s.envoy.check({ headers: { authorization: `Bearer ${k.secret}`, 'x-api-key': k.secret } }), k.id, [
        'authorization',
        'x-api-key',
      ]);
    });

    it('raw headers (header_map), names in any case', async () => {
      const k = await s.newKey();
      expectAllowed(
        await s.envoy.check({
          rawHeaders: [
            ['Authorization', `Bearer ${k.secret}`],
            ['accept', '*/*'],
          ],
        }),
        k.id,
        ['authorization'],
      );
      expectAllowed(await s.envoy.check({ rawHeaders: [['X-API-Key', k.secret]] }), k.id, ['x-api-key']);
    });

    it('Basic authorization is not a credential', async () => {
      expectMissingKey(await s.envoy.check({ headers: { authorization: 'Basic dXNlcjpwYXNz' } }));
      const k = await s.newKey();
      // With an x-api-key beside it, the Basic header is neither the credential nor removed.
      expectAllowed(await s.envoy.check({ headers: { authorization: 'Basic dXNlcjpwYXNz', 'x-api-key': k.secret } }), k.id, ['x-api-key']);
    });

    it('spoofed identity headers are overwritten, other x-keyward-* headers are removed', async () => {
      const k = await s.newKey();
      const r = await s.envoy.check({
        headers: {
          authorization: `Bearer ${k.secret}`,
          'x-keyward-key-id': 'key_evil',
          'x-keyward-org-id': 'org_evil',
          'x-keyward-scopes': '*',
          'x-keyward-environment': 'live',
          'x-keyward-anything-else': 'x',
          'x-keyward-error-code': 'none',
          'x-keywardish': 'not ours',
        },
      });
      expectAllowed(r, k.id, ['authorization', 'x-keyward-anything-else', 'x-keyward-error-code']);
    });

    it('spoofed headers sent raw, in mixed case', async () => {
      const k = await s.newKey();
      const r = await s.envoy.check({
        rawHeaders: [
          ['X-Api-Key', k.secret],
          ['X-Keyward-Key-Id', 'key_evil'],
          ['X-KEYWARD-Other', 'a'],
          ['x-keyward-other', 'b'],
        ],
      });
      expectAllowed(r, k.id, ['x-api-key', 'x-keyward-other']);
    });
  });

  describe('credentialHeaders = [x-custom-key]', () => {
    const s = setup(dialect, { authz: { credentialHeaders: ['x-custom-key'] } });

    it('the key is read from x-custom-key only', async () => {
      const k = await s.newKey();
      expectAllowed(await s.envoy.check({ headers: { 'x-custom-key': k.secret } }), k.id, ['x-custom-key']);
    });

    it('authorization and x-api-key are ignored, neither read nor removed', async () => {
      const k = await s.newKey();
      expectMissingKey(await s.envoy.check({ headers: { authorization: `Bearer ${k.secret}` } }));
      expectMissingKey(await s.envoy.check({ headers: { 'x-api-key': k.secret } }));
      const other = await s.newKey();
      // Another key in authorization does not make the request ambiguous.
      expectAllowed(await s.envoy.check({ headers: { authorization: `Bearer ${other.secret}`, 'x-custom-key': k.secret } }), k.id, [
        'x-custom-key',
      ]);
    });
  });

  describe('stripCredential = false', () => {
    const s = setup(dialect, { authz: { stripCredential: false } });

    it('the credential header goes upstream; spoofed headers are still removed', async () => {
      const k = await s.newKey();
      expectAllowed(await s.envoy.check({ headers: { authorization: `Bearer ${k.secret}` } }), k.id, []);
      expectAllowed(
        await s.envoy.check({ headers: { 'x-api-key': k.secret, 'x-keyward-key-id': 'key_evil', 'x-keyward-foo': '1' } }),
        k.id,
        ['x-keyward-foo'],
      );
    });
  });

  describe('a public route', () => {
    const s = setup(dialect, {
      routes: parseRouteRules(['rules:', '  - name: open', '    path: /public/**', '    public: true'].join('\n'), 'inline'),
    });

    it('sets no identity headers and removes every spoofed x-keyward-* header', async () => {
      const r = await s.envoy.check({
        path: '/public/page',
        headers: {
          'x-keyward-key-id': 'key_evil',
          'x-keyward-org-id': 'org_evil',
          'x-keyward-scopes': '*',
          'x-keyward-environment': 'live',
          'x-keyward-other': '1',
        },
      });
      expectAllowed(r, null, ['x-keyward-key-id', 'x-keyward-org-id', 'x-keyward-scopes', 'x-keyward-environment', 'x-keyward-other']);
    });

    it('with a valid key: still no identity headers (the key is not examined), the credential is stripped', async () => {
      const k = await s.newKey();
      const before = { ...s.h.app.cache.stats };
      expectAllowed(
        await s.envoy.check({ path: '/public/page', headers: { authorization: `Bearer ${k.secret}`, 'x-keyward-key-id': 'key_evil' } }),
        null,
        ['authorization', 'x-keyward-key-id'],
      );
      expect(s.h.app.cache.stats).toEqual(before);
    });

    it('elsewhere the key is needed as usual', async () => {
      const k = await s.newKey();
      expectMissingKey(await s.envoy.check({ path: '/private' }));
      const opts: CheckOptions = { path: '/private', headers: { 'x-api-key': k.secret, 'x-keyward-key-id': 'key_evil' } };
      expectAllowed(await s.envoy.check(opts), k.id, ['x-api-key'], '/private');
    });
  });
});
