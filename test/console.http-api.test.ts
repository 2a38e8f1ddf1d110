/**
 * The web console's HTTP API on a real server (sqlite): sign-in and its cookie, CSRF
 * and origin checks, KeyAdmin RPCs through JSON, a tenant held to its organization,
 * session expiry on the injected clock, a revoked key ending its session, throttled and
 * audited failed sign-ins, sign-out, and the headers every answer carries.
 */
import { startHarness, TEST_ADMIN_TOKEN, type Harness } from './support/harness';

interface Answer {
  status: number;
  headers: Headers;
  body: Record<string, unknown> | undefined;
}

let h: Harness;
let base: string;

beforeAll(async () => {
  h = await startHarness('sqlite', { consoleListen: '127.0.0.1:0', adminAuthMaxFailures: 3, adminAuthBlockSeconds: 60 });
  base = `http://127.0.0.1:${h.app.consolePort}`;
});
afterAll(() => h.stop());

async function send(
  method: string,
  path: string,
  o: { cookie?: string; csrf?: string; body?: unknown; headers?: Record<string, string> } = {},
): Promise<Answer> {
  const headers: Record<string, string> = { ...o.headers };
  if (o.cookie) headers.cookie = o.cookie;
  if (o.csrf) headers['x-csrf-token'] = o.csrf;
  if (o.body !== undefined) headers['content-type'] ??= 'application/json';
  const res = await fetch(`${base}${path}`, {
    method,
    headers,
    ...(o.body !== undefined && { body: typeof o.body === 'string' ? o.body : JSON.stringify(o.body) }),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? (JSON.parse(text) as Record<string, unknown>) : undefined };
}

interface Session {
  cookie: string;
  csrf: string;
  setCookie: string;
  body: Record<string, unknown>;
}

async function signIn(credential: string): Promise<Session> {
  const r = await send('POST', '/api/session', { body: { credential } });
  expect(r.status).toBe(200);
  const setCookie = r.headers.get('set-cookie')!;
  return { cookie: setCookie.split(';')[0]!, csrf: r.body!.csrfToken as string, setCookie, body: r.body! };
}

function rpc(s: Session, method: string, body: unknown): Promise<Answer> {
  return send('POST', `/api/rpc/${method}`, { cookie: s.cookie, csrf: s.csrf, body });
}

const errorCode = (a: Answer) => (a.body?.error as { code?: string; field?: string } | undefined)?.code;
const errorField = (a: Answer) => (a.body?.error as { field?: string } | undefined)?.field;

describe('console HTTP API', () => {
  let root: Session;

  beforeAll(async () => {
    root = await signIn(TEST_ADMIN_TOKEN);
  });

  it('signs in with the admin token: an HttpOnly, SameSite=Strict cookie, never the credential back', () => {
    expect(root.setCookie).toMatch(/^keyward_session=[A-Za-z0-9_-]{43};/);
    expect(root.setCookie).toContain('HttpOnly');
    expect(root.setCookie).toContain('SameSite=Strict');
    expect(root.setCookie).not.toContain('Secure'); // plain HTTP here; tls.console covers Secure
    expect(root.body).toMatchObject({ kind: 'root' });
    expect(JSON.stringify(root.body)).not.toContain(TEST_ADMIN_TOKEN);
  });

  it('answers the session with the cookie, and 401 missing_credentials without', async () => {
    const r = await send('GET', '/api/session', { cookie: root.cookie });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ kind: 'root', csrfToken: root.csrf });
    const none = await send('GET', '/api/session');
    expect([none.status, errorCode(none)]).toEqual([401, 'missing_credentials']);
  });

  it('runs KeyAdmin RPCs in proto3 JSON, audited as the signed-in caller', async () => {
    const created = await rpc(root, 'CreateOrganization', { name: 'Acme', rateLimitPerMinute: 60, requestId: 'console-test-1' });
    expect(created.status).toBe(200);
    expect(created.body).toMatchObject({ name: 'Acme', rateLimitPerMinute: 60, active: true });
    const again = await rpc(root, 'CreateOrganization', { name: 'Acme', rateLimitPerMinute: 60, requestId: 'console-test-1' });
    expect(again.body!.id).toBe(created.body!.id); // retry-safe, as over gRPC
    const audit = await h.root.listAuditEvents({ action: 'organization.create' });
    const rows = audit.events.filter((e) => e.organizationId === created.body!.id);
    expect(rows.map((e) => [e.actor, e.outcome])).toEqual([['admin', 'success']]);
    expect(rows[0]!.peer).toMatch(/^ipv[46]:/);
  });

  it('refuses an RPC without the CSRF token, with a wrong one, or from another origin', async () => {
    const without = await send('POST', '/api/rpc/ListOrganizations', { cookie: root.cookie, body: {} });
    expect([without.status, errorCode(without)]).toEqual([403, 'csrf_token_invalid']);
    const wrong = await send('POST', '/api/rpc/ListOrganizations', { cookie: root.cookie, csrf: 'x'.repeat(43), body: {} });
    expect([wrong.status, errorCode(wrong)]).toEqual([403, 'csrf_token_invalid']);
    const crossSite = await send('POST', '/api/rpc/CreateOrganization', {
      cookie: root.cookie,
      csrf: root.csrf,
      body: { name: 'Evil' },
      headers: { origin: 'https://evil.example' },
    });
    expect([crossSite.status, errorCode(crossSite)]).toEqual([403, 'csrf_token_invalid']);
    const fetchSite = await send('POST', '/api/rpc/CreateOrganization', {
      cookie: root.cookie,
      csrf: root.csrf,
      body: { name: 'Evil' },
      headers: { 'sec-fetch-site': 'cross-site' },
    });
    expect(errorCode(fetchSite)).toBe('csrf_token_invalid');
    const orgs = await h.root.listOrganizations({});
    expect(orgs.organizations.map((o) => o.name)).not.toContain('Evil');
  });

  it('names the field of bad input with a machine-readable code', async () => {
    const notJson = await send('POST', '/api/rpc/ListOrganizations', { cookie: root.cookie, csrf: root.csrf, body: '{nope' });
    expect([notJson.status, errorCode(notJson), errorField(notJson)]).toEqual([400, 'invalid_argument', 'body']);
    const notObject = await rpc(root, 'ListOrganizations', [1]);
    expect([errorCode(notObject), errorField(notObject)]).toEqual(['invalid_argument', 'body']);
    const form = await send('POST', '/api/rpc/ListOrganizations', {
      cookie: root.cookie,
      csrf: root.csrf,
      body: 'a=b',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect([errorCode(form), errorField(form)]).toEqual(['invalid_argument', 'content-type']);
    const unknown = await rpc(root, 'DropEverything', {});
    expect([unknown.status, errorCode(unknown), errorField(unknown)]).toEqual([400, 'invalid_argument', 'rpc']);
    const invalid = await rpc(root, 'CreateOrganization', { name: '' });
    expect([invalid.status, errorCode(invalid), errorField(invalid)]).toEqual([400, 'invalid_argument', 'name']);
    const missing = await rpc(root, 'GetOrganization', { id: `org_${'0'.repeat(25)}` });
    expect([missing.status, errorCode(missing)]).toEqual([404, 'organization_not_found']);
  });

  describe('a tenant (an admin-scoped key)', () => {
    let orgA: string;
    let orgB: string;
    let keyB: string;
    let tenant: Session;
    let adminKeyId: string;

    beforeAll(async () => {
      orgA = (await h.root.createOrganization({ name: 'Tenant A' })).id;
      orgB = (await h.root.createOrganization({ name: 'Tenant B' })).id;
      keyB = (await h.root.createKey({ organizationId: orgB, name: 'b' })).key!.id;
      const admin = await h.root.createKey({ organizationId: orgA, name: 'a-admin', scopes: ['admin'] });
      adminKeyId = admin.key!.id;
      tenant = await signIn(admin.secret);
      expect(JSON.stringify(tenant.body)).not.toContain(admin.secret);
    });

    it('is signed in to its own organization', () => {
      expect(tenant.body).toMatchObject({ kind: 'org', organizationId: orgA, keyId: adminKeyId });
    });

    it('works on its own organization', async () => {
      const keys = await rpc(tenant, 'ListKeys', { organizationId: orgA });
      expect(keys.status).toBe(200);
      expect((keys.body!.keys as { id: string }[]).map((k) => k.id)).toEqual([adminKeyId]);
    });

    it('cannot see or touch another organization', async () => {
      for (const [method, body] of [
        ['GetOrganization', { id: orgB }],
        ['ListKeys', { organizationId: orgB }],
        ['GetUsageStats', { organizationId: orgB }],
        ['GetQuota', { organizationId: orgB }],
        ['ListAuditEvents', { organizationId: orgB }],
        ['UpdateOrganization', { id: orgB, name: 'Pwned' }],
        ['CreateKey', { organizationId: orgB, name: 'intruder', scopes: ['admin'] }],
        ['RevokeKey', { id: keyB, reason: 'x' }],
        ['GetRateLimitStatus', { keyId: keyB }],
        ['DeleteOrganization', { organizationId: orgB, reason: 'x' }],
      ] as const) {
        const r = await rpc(tenant, method, body);
        expect([method, r.status, errorCode(r)]).toEqual([method, 403, 'permission_denied']);
      }
      const b = await h.root.getOrganization({ id: orgB });
      expect([b.name, b.active]).toEqual(['Tenant B', true]);
      expect((await h.root.getKey({ id: keyB })).revokedAt).toBeUndefined();
    });

    it('loses its session when its key is revoked', async () => {
      const other = await h.root.createKey({ organizationId: orgA, name: 'a-admin-2', scopes: ['admin'] });
      const s = await signIn(other.secret);
      expect((await rpc(s, 'ListKeys', { organizationId: orgA })).status).toBe(200);
      await h.root.revokeKey({ id: other.key!.id, reason: 'left the company' });
      const r = await rpc(s, 'ListKeys', { organizationId: orgA });
      expect([r.status, errorCode(r)]).toEqual([401, 'invalid_credentials']);
      const after = await send('GET', '/api/session', { cookie: s.cookie });
      expect(after.status).toBe(401);
    });
  });

  it('ends a session after the idle time, on the injected clock', async () => {
    const s = await signIn(TEST_ADMIN_TOKEN);
    h.clock.advance(29 * 60 * 1000);
    expect((await rpc(s, 'ListOrganizations', {})).status).toBe(200);
    h.clock.advance(29 * 60 * 1000); // idle time starts again at each request
    expect((await rpc(s, 'ListOrganizations', {})).status).toBe(200);
    h.clock.advance(31 * 60 * 1000);
    const r = await rpc(s, 'ListOrganizations', {});
    expect([r.status, errorCode(r)]).toEqual([401, 'missing_credentials']);
  });

  it('signs out: the session ends and the cookie is cleared; sign-out needs the CSRF token', async () => {
    const s = await signIn(TEST_ADMIN_TOKEN);
    const noToken = await send('DELETE', '/api/session', { cookie: s.cookie });
    expect([noToken.status, errorCode(noToken)]).toEqual([403, 'csrf_token_invalid']);
    const out = await send('DELETE', '/api/session', { cookie: s.cookie, csrf: s.csrf });
    expect(out.status).toBe(204);
    expect(out.headers.get('set-cookie')).toMatch(/^keyward_session=; .*Max-Age=0/);
    expect((await rpc(s, 'ListOrganizations', {})).status).toBe(401);
    const audit = await h.root.listAuditEvents({ action: 'console.sign_out' });
    expect(audit.events.length).toBeGreaterThan(0);
  });

  it('throttles and audits failed sign-ins like KeyAdmin', async () => {
    const bad = await send('POST', '/api/session', { body: { credential: 'not-the-token' } });
    expect([bad.status, errorCode(bad)]).toEqual([401, 'invalid_credentials']);
    const empty = await send('POST', '/api/session', { body: {} });
    expect([empty.status, errorCode(empty), errorField(empty)]).toEqual([400, 'invalid_argument', 'credential']);
    await send('POST', '/api/session', { body: { credential: 'not-the-token-2' } });
    await send('POST', '/api/session', { body: { credential: 'not-the-token-3' } });
    const blocked = await send('POST', '/api/session', { body: { credential: TEST_ADMIN_TOKEN } });
    expect([blocked.status, errorCode(blocked)]).toEqual([429, 'too_many_auth_failures']);
    expect(Number(blocked.headers.get('retry-after'))).toBeGreaterThan(0);
    // One throttle per address for KeyAdmin and the console: gRPC from here is blocked too.
    await expect(h.root.listOrganizations({})).rejects.toThrow(/too many failed/);
    h.clock.advance(61_000);
    expect((await send('POST', '/api/session', { body: { credential: TEST_ADMIN_TOKEN } })).status).toBe(200);
    const failures = await h.root.listAuditEvents({ action: 'admin.auth_failed' });
    expect(failures.events.length).toBeGreaterThanOrEqual(3);
    expect((await h.root.listAuditEvents({ action: 'admin.auth_throttled' })).events.length).toBeGreaterThan(0);
  });

  it('sends a strict Content-Security-Policy and no-sniff on the page and the API', async () => {
    for (const path of ['/', '/api/session']) {
      const r = await fetch(`${base}${path}`);
      expect(r.headers.get('content-security-policy')).toContain("script-src 'self'");
      expect(r.headers.get('content-security-policy')).not.toContain('unsafe-inline');
      expect(r.headers.get('x-content-type-options')).toBe('nosniff');
      expect(r.headers.get('x-frame-options')).toBe('DENY');
    }
    const page = await fetch(`${base}/orgs/anything`);
    expect([page.status, page.headers.get('content-type')]).toEqual([200, 'text/html; charset=utf-8']);
    expect((await fetch(`${base}/assets/nothing.js`)).status).toBe(404);
  });
});
