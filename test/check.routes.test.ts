/**
 * Route requirements end to end: context_extensions (required_scopes, any_scopes)
 * and a route-rules file loaded with loadRouteRules — first match wins, public
 * routes, method and host conditions, path normalization, and rule scopes combined
 * with context_extensions scopes.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DIALECTS } from './support/databases';
import { startHarness, type Harness } from './support/harness';
import { EnvoyClient, metadataOf, type CheckOptions, type WireCheckResponse } from './support/envoy-client';
import { loadRouteRules } from '../src/authz/routes';

const ROUTES_YAML = `
rules:
  - name: health
    path: /healthz
    methods: [GET, HEAD]
    public: true

  - name: public
    path: /public/**
    public: true

  - name: agents-internal
    path: /v1/agents/**
    methods: [POST, DELETE]
    hosts: [internal.example.com, "*.internal.example.com"]
    required_scopes: [agents:admin]

  - name: agents-write
    path: /v1/agents/**
    methods: [POST, PUT, PATCH, DELETE]
    required_scopes: [agents:write]
    any_scopes: [org:admin, org:member]

  - name: agents-read
    path_prefix: /v1/agents
    required_scopes: [agents:read]

  - name: shadow-scoped
    path_prefix: /v1/shadow/
    required_scopes: [shadow:a]

  - name: shadow-public
    path_prefix: /v1/shadow/
    public: true

  - name: everything-else
    path_prefix: /
`;

type Outcome =
  'allow' | 'public' | 'missing_api_key' | 'invalid_api_key' | { insufficient_scope: { required?: string[]; any_of?: string[] } };

/** Reduces a response to its outcome, checking the parts that make it that outcome. */
function outcome(r: WireCheckResponse): Outcome {
  if (r.http_response === 'ok_response') {
    expect(r.status).toBeDefined();
    expect(r.status?.code ?? 0).toBe(0);
    return Object.keys(metadataOf(r)).length === 0 ? 'public' : 'allow';
  }
  expect(r.http_response).toBe('denied_response');
  const body = JSON.parse(r.denied_response!.body!) as { error: { code: string; message: string; required?: string[]; any_of?: string[] } };
  if (body.error.code === 'insufficient_scope') {
    expect(r.status?.code).toBe(7);
    expect(r.denied_response?.status?.code).toBe(403);
    const { code: _c, message: _m, ...details } = body.error;
    return { insufficient_scope: details };
  }
  expect(r.status?.code).toBe(16);
  expect(r.denied_response?.status?.code).toBe(401);
  expect(Object.keys(body.error).sort()).toEqual(['code', 'message']);
  return body.error.code as Outcome;
}

describe.each(DIALECTS)('route requirements on %s', (dialect) => {
  let dir: string;
  let h: Harness;
  let envoy: EnvoyClient;
  let orgId: string;
  let n = 0;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'keyward-routes-'));
    const file = join(dir, 'routes.yaml');
    writeFileSync(file, ROUTES_YAML);
    h = await startHarness(dialect, { routes: loadRouteRules(file) });
    envoy = new EnvoyClient(h.app.authzPort);
    orgId = (await h.root.createOrganization({ name: 'Acme' })).id;
  });
  afterAll(async () => {
    envoy.close();
    await h.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const key = async (scopes: string[]) => (await h.root.createKey({ organizationId: orgId, name: `k${++n}`, scopes })).secret;
  const check = (secret: string | undefined, o: CheckOptions = {}) =>
    envoy.check({ ...o, headers: { ...(secret !== undefined && { authorization: `Bearer ${secret}` }), ...o.headers } }).then(outcome);

  describe('context_extensions (on a rule with no requirement of its own)', () => {
    it('required_scopes: all are needed', async () => {
      const k = await key(['chat', 'files:read']);
      expect(await check(k, { path: '/v1/chat', contextExtensions: { required_scopes: 'chat,files:read' } })).toBe('allow');
      expect(await check(k, { path: '/v1/chat', contextExtensions: { required_scopes: 'chat,files:write' } })).toEqual({
        insufficient_scope: { required: ['files:write'] },
      });
    });

    it('any_scopes: one is enough', async () => {
      const k = await key(['chat']);
      expect(await check(k, { path: '/v1/chat', contextExtensions: { any_scopes: 'files:read,chat' } })).toBe('allow');
      expect(await check(k, { path: '/v1/chat', contextExtensions: { any_scopes: 'files:read,files:write' } })).toEqual({
        insufficient_scope: { any_of: ['files:read', 'files:write'] },
      });
    });

    it('no requirement at all: any valid key', async () => {
      expect(await check(await key([]), { path: '/v1/anything' })).toBe('allow');
      expect(await check(undefined, { path: '/v1/anything' })).toBe('missing_api_key');
    });
  });

  describe('public rules', () => {
    it('a public path is allowed without a key, and with a garbage key, without a lookup', async () => {
      const before = { ...h.app.cache.stats };
      expect(await check(undefined, { path: '/public/index.html' })).toBe('public');
      expect(await check(undefined, { path: '/public/' })).toBe('public');
      expect(await check('garbage', { path: '/public/a/b/c?x=1' })).toBe('public');
      expect(await check(undefined, { path: '/public/x', headers: { 'x-api-key': 'kw_live_nonsense' } })).toBe('public');
      expect(h.app.cache.stats).toEqual(before);
    });

    it('/public itself and paths that normalize outside /public/ are not public', async () => {
      for (const path of [
        '/public',
        '/public/../private',
        '/public/%2e%2e/private',
        '/public/./../private',
        '//public/..//private',
        '/publicity',
      ]) {
        expect([path, await check(undefined, { path })]).toEqual([path, 'missing_api_key']);
      }
      // …but a path that normalizes into /public/ is.
      expect(await check(undefined, { path: '/private/../public/x' })).toBe('public');
      expect(await check(undefined, { path: '//public//x' })).toBe('public');
    });

    it('a public rule with methods: only those methods are public', async () => {
      expect(await check(undefined, { path: '/healthz', method: 'GET' })).toBe('public');
      expect(await check(undefined, { path: '/healthz', method: 'head' })).toBe('public');
      expect(await check(undefined, { path: '/healthz?full=1', method: 'GET' })).toBe('public');
      expect(await check(undefined, { path: '/healthz', method: 'POST' })).toBe('missing_api_key');
      expect(await check(undefined, { path: '/healthz/x', method: 'GET' })).toBe('missing_api_key');
    });

    it('context_extensions scopes on a public path make a key necessary', async () => {
      expect(await check(undefined, { path: '/public/x', contextExtensions: { required_scopes: 'chat' } })).toBe('missing_api_key');
      expect(await check(await key(['chat']), { path: '/public/x', contextExtensions: { required_scopes: 'chat' } })).toBe('allow');
      expect(await check(await key(['files']), { path: '/public/x', contextExtensions: { required_scopes: 'chat' } })).toEqual({
        insufficient_scope: { required: ['chat'] },
      });
    });
  });

  it('the first matching rule wins: a later public rule for the same path does not apply', async () => {
    expect(await check(undefined, { path: '/v1/shadow/x' })).toBe('missing_api_key');
    expect(await check(await key(['shadow:a']), { path: '/v1/shadow/x' })).toBe('allow');
    expect(await check(await key(['chat']), { path: '/v1/shadow/x' })).toEqual({ insufficient_scope: { required: ['shadow:a'] } });
  });

  describe('method and host conditions', () => {
    it('GET falls through the write rules to agents-read', async () => {
      const reader = await key(['agents:read']);
      const writer = await key(['agents:write', 'org:member']);
      expect(await check(reader, { path: '/v1/agents/1', method: 'GET' })).toBe('allow');
      expect(await check(writer, { path: '/v1/agents/1', method: 'GET' })).toEqual({ insufficient_scope: { required: ['agents:read'] } });
      expect(await check(reader, { path: '/v1/agents', method: 'POST' })).toBe('allow'); // /v1/agents/** needs the slash
    });

    it('POST on the public host needs agents:write and one of org:admin, org:member', async () => {
      const writer = await key(['agents:write', 'org:member']);
      expect(await check(writer, { path: '/v1/agents/1', method: 'POST' })).toBe('allow');
      expect(await check(writer, { path: '/v1/agents/1', method: 'patch' })).toBe('allow');
      expect(await check(await key(['agents:write']), { path: '/v1/agents/1', method: 'PUT' })).toEqual({
        insufficient_scope: { any_of: ['org:admin', 'org:member'] },
      });
      expect(await check(await key(['agents:read', 'org:admin']), { path: '/v1/agents/1', method: 'DELETE' })).toEqual({
        insufficient_scope: { required: ['agents:write'] },
      });
    });

    it('POST and DELETE on the internal hosts need agents:admin (host case, port and trailing dot ignored)', async () => {
      const admin = await key(['agents:admin']);
      const writer = await key(['agents:write', 'org:member']);
      for (const host of [
        'internal.example.com',
        'INTERNAL.example.com',
        'internal.example.com:8443',
        'internal.example.com.',
        'eu.internal.example.com',
        'a.b.internal.example.com',
      ]) {
        expect([host, await check(admin, { path: '/v1/agents/1', method: 'POST', host })]).toEqual([host, 'allow']);
        expect([host, await check(writer, { path: '/v1/agents/1', method: 'DELETE', host })]).toEqual([
          host,
          { insufficient_scope: { required: ['agents:admin'] } },
        ]);
      }
      // PUT is not one of agents-internal's methods: agents-write applies, on any host.
      expect(await check(writer, { path: '/v1/agents/1', method: 'PUT', host: 'internal.example.com' })).toBe('allow');
      // Other hosts, even similar ones, get agents-write.
      for (const host of ['api.example.com', 'notinternal.example.com', 'internal.example.com.evil.net']) {
        expect([host, await check(writer, { path: '/v1/agents/1', method: 'POST', host })]).toEqual([host, 'allow']);
        expect([host, await check(admin, { path: '/v1/agents/1', method: 'POST', host })]).toEqual([
          host,
          { insufficient_scope: { required: ['agents:write'], any_of: ['org:admin', 'org:member'] } },
        ]);
      }
    });
  });

  describe("the rule's scopes and context_extensions' scopes are all required", () => {
    it('required_scopes from both', async () => {
      const opts: CheckOptions = { path: '/v1/agents/1', method: 'GET', contextExtensions: { required_scopes: 'billing:read' } };
      expect(await check(await key(['agents:read', 'billing:read']), opts)).toBe('allow');
      expect(await check(await key(['agents:read']), opts)).toEqual({ insufficient_scope: { required: ['billing:read'] } });
      expect(await check(await key(['billing:read']), opts)).toEqual({ insufficient_scope: { required: ['agents:read'] } });
      expect(await check(await key(['chat']), opts)).toEqual({ insufficient_scope: { required: ['billing:read', 'agents:read'] } });
    });

    it("context_extensions' any_scopes beside the rule's required_scopes", async () => {
      const opts: CheckOptions = { path: '/v1/agents/1', method: 'GET', contextExtensions: { any_scopes: 'tier:gold,tier:silver' } };
      expect(await check(await key(['agents:read', 'tier:silver']), opts)).toBe('allow');
      expect(await check(await key(['agents:read']), opts)).toEqual({ insufficient_scope: { any_of: ['tier:gold', 'tier:silver'] } });
      expect(await check(await key(['tier:gold']), opts)).toEqual({ insufficient_scope: { required: ['agents:read'] } });
    });

    it("context_extensions' required_scopes beside the rule's any_scopes", async () => {
      const opts: CheckOptions = { path: '/v1/agents/1', method: 'POST', contextExtensions: { required_scopes: 'billing:write' } };
      expect(await check(await key(['agents:write', 'org:admin', 'billing:write']), opts)).toBe('allow');
      expect(await check(await key(['agents:write', 'org:admin']), opts)).toEqual({ insufficient_scope: { required: ['billing:write'] } });
      expect(await check(await key(['agents:write', 'billing:write']), opts)).toEqual({
        insufficient_scope: { any_of: ['org:admin', 'org:member'] },
      });
    });

    it('any_scopes from both: one of each list is needed', async () => {
      const opts: CheckOptions = { path: '/v1/agents/1', method: 'POST', contextExtensions: { any_scopes: 'tier:gold,tier:silver' } };
      expect(await check(await key(['agents:write', 'org:member', 'tier:gold']), opts)).toBe('allow');
      // One of the rule's any_scopes but none of context_extensions'.
      expect(await check(await key(['agents:write', 'org:member']), opts)).toEqual({
        insufficient_scope: { any_of: ['tier:gold', 'tier:silver'] },
      });
      // One of context_extensions' any_scopes but none of the rule's.
      expect(await check(await key(['agents:write', 'tier:gold']), opts)).toEqual({
        insufficient_scope: { any_of: ['org:admin', 'org:member'] },
      });
      // Neither: the body names one list at a time, context_extensions' first.
      expect(await check(await key(['agents:write']), opts)).toEqual({ insufficient_scope: { any_of: ['tier:gold', 'tier:silver'] } });
      expect(await check(await key(['tier:silver']), opts)).toEqual({
        insufficient_scope: { required: ['agents:write'], any_of: ['org:admin', 'org:member'] },
      });
      // Wildcards count for both lists.
      expect(await check(await key(['agents:*', 'org:*', 'tier:*']), opts)).toBe('allow');
      expect(await check(await key(['*']), opts)).toBe('allow');
    });
  });
});
