/**
 * The console under TLS (a Secure, `__Host-` cookie and HSTS; plaintext refused), a
 * session's maximum lifetime however active, and a root session ended by replacing the
 * administrator token.
 */
import { request } from 'node:https';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPki, writePair, type TestPki } from './support/certs';
import { startHarness, TEST_ADMIN_TOKEN, type Harness } from './support/harness';

function httpsCall(
  port: number,
  ca: string,
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: string,
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, ca, servername: 'localhost', headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('the console over TLS', () => {
  let h: Harness;
  let pki: TestPki;
  let dir: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'keyward-console-tls-'));
    pki = createPki('console');
    h = await startHarness('sqlite', {
      consoleListen: '127.0.0.1:0',
      tls: { console: writePair(dir, 'server', pki.server), reloadSeconds: 10 },
    });
  });
  afterAll(async () => {
    await h.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('sets a Secure __Host- cookie and HSTS, and the session works over HTTPS', async () => {
    const port = h.app.consolePort!;
    const signIn = await httpsCall(
      port,
      pki.ca.cert,
      'POST',
      '/api/session',
      { 'content-type': 'application/json', origin: `https://127.0.0.1:${port}`, host: `127.0.0.1:${port}` },
      JSON.stringify({ credential: TEST_ADMIN_TOKEN }),
    );
    expect(signIn.status).toBe(200);
    const cookie = String(signIn.headers['set-cookie']);
    expect(cookie).toMatch(/^__Host-keyward_session=[A-Za-z0-9_-]+; Path=\/; HttpOnly; SameSite=Strict; Max-Age=\d+; Secure$/);
    expect(signIn.headers['strict-transport-security']).toBe('max-age=31536000');
    const { csrfToken } = JSON.parse(signIn.body) as { csrfToken: string };
    const list = await httpsCall(
      port,
      pki.ca.cert,
      'POST',
      '/api/rpc/ListOrganizations',
      { 'content-type': 'application/json', cookie: cookie.split(';')[0]!, 'x-csrf-token': csrfToken },
      '{}',
    );
    expect(list.status).toBe(200);
    // The plain-HTTP cookie name is not the session's under TLS.
    const plainName = await httpsCall(port, pki.ca.cert, 'GET', '/api/session', {
      cookie: cookie.split(';')[0]!.replace('__Host-', ''),
    });
    expect(plainName.status).toBe(401);
  });

  it('refuses plain HTTP on the TLS port', async () => {
    await expect(fetch(`http://127.0.0.1:${h.app.consolePort}/api/session`)).rejects.toThrow();
  });
});

describe('console session lifetime', () => {
  let h: Harness;
  let base: string;

  beforeAll(async () => {
    h = await startHarness('sqlite', { consoleListen: '127.0.0.1:0', console: { sessionIdleSeconds: 300, sessionMaxSeconds: 900 } });
    base = `http://127.0.0.1:${h.app.consolePort}`;
  });
  afterAll(() => h.stop());

  async function signIn(credential: string) {
    const res = await fetch(`${base}/api/session`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ credential }),
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { csrfToken: string; expiresAt: string };
    return { cookie: res.headers.get('set-cookie')!.split(';')[0]!, ...body };
  }
  const session = (cookie: string) => fetch(`${base}/api/session`, { headers: { cookie } });

  it('ends at the maximum lifetime even when used all along', async () => {
    const s = await signIn(TEST_ADMIN_TOKEN);
    expect(Date.parse(s.expiresAt)).toBe(h.clock.now().getTime() + 300_000);
    for (let i = 0; i < 4; i++) {
      h.clock.advance(200_000);
      expect((await session(s.cookie)).status).toBe(200);
    }
    h.clock.advance(100_001); // 900 s and a bit since sign-in
    expect((await session(s.cookie)).status).toBe(401);
  });

  it('ends a root session when the administrator token is replaced', async () => {
    const s = await signIn(TEST_ADMIN_TOKEN);
    expect((await session(s.cookie)).status).toBe(200);
    await h.app.admin.authenticator.bootstrapAdminToken(`${TEST_ADMIN_TOKEN}-next`, () => 'unused');
    const after = await session(s.cookie);
    expect(after.status).toBe(401);
    expect(((await after.json()) as { error: { code: string } }).error.code).toBe('invalid_credentials');
    expect((await signIn(`${TEST_ADMIN_TOKEN}-next`)).cookie).toMatch(/^keyward_session=/);
  });
});
