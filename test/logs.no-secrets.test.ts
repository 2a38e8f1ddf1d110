/**
 * Logs never hold a secret. Every harness test logs at debug and its stop() scans the
 * captured lines with secretsIn (test/support/harness.ts); this file checks that the
 * scanner finds each kind of secret, and runs one end-to-end session at debug with
 * decision logging on (allowed, denied, revoked, rate-limited Checks; failed and
 * successful KeyAdmin calls; a rotation) whose lines must hold none.
 */
import { randomBytes } from 'node:crypto';
import { createHasher } from '../src/keys/hash';
import { generateAdminToken, generateKey } from '../src/keys/format';
import { DIALECTS } from './support/databases';
import { EnvoyClient } from './support/envoy-client';
import { secretsIn, startHarness, TEST_ADMIN_TOKEN } from './support/harness';

describe('secretsIn', () => {
  const config = { hashSecret: randomBytes(32), adminToken: TEST_ADMIN_TOKEN };
  it('finds keys, admin tokens, the configured token, the hash secret and hash-shaped strings, and nothing in clean text', () => {
    expect(secretsIn('{"msg":"check","keyId":"key_01abc","code":"ok"}', config)).toEqual([]);
    expect(secretsIn(`{"x":"${generateKey('live')}"}`, config)).toEqual(['an API key']);
    expect(secretsIn(`bearer ${generateAdminToken()}`, config)).toEqual(['an admin token']);
    expect(secretsIn(`t=${TEST_ADMIN_TOKEN}`, config)).toEqual(['the configured admin token']);
    expect(secretsIn(config.hashSecret.toString('base64'), config)).toEqual(['the hash secret']);
    expect(secretsIn(`"h":"${createHasher(config.hashSecret).hash('x')}"`, config)).toEqual(['a 64-hex-digit hash']);
  });
});

describe.each(DIALECTS)('an end-to-end session at debug on %s', (dialect) => {
  it('logs plenty and no secret', async () => {
    const h = await startHarness(dialect, { authz: { checkLog: 'all', checkLogSample: 1 } });
    const envoy = new EnvoyClient(h.app.authzPort);
    try {
      const org = await h.root.createOrganization({ name: 'Logs', rateLimitPerMinute: 2 });
      const a = await h.root.createKey({ organizationId: org.id, name: 'a', scopes: ['admin'] });
      const b = await h.root.createKey({ organizationId: org.id, name: 'b' });
      for (let i = 0; i < 3; i++) await envoy.check({ headers: { 'x-api-key': a.secret, 'x-request-id': `r${i}` } });
      await envoy.check({ headers: { authorization: `Bearer ${b.secret}` } });
      // A key in x-request-id (a client's mistake) is neither logged nor stored as the request id.
      await envoy.check({ headers: { 'x-api-key': a.secret, 'x-request-id': b.secret } });
      await envoy.check({ headers: { 'x-api-key': generateKey('live') } });
      await envoy.check({ headers: { 'x-api-key': `${b.secret}x` } });
      await h.root.revokeKey({ id: b.key!.id, reason: 'test' });
      await envoy.check({ headers: { 'x-api-key': b.secret } });
      await h.client(a.secret).listKeys({ organizationId: org.id });
      await h
        .client(b.secret)
        .listKeys({ organizationId: org.id })
        .catch(() => undefined);
      await h
        .client(generateAdminToken())
        .listOrganizations({})
        .catch(() => undefined);
      await h.root.rotateKey({ id: a.key!.id, gracePeriodSeconds: 60 });
      await h.app.usage.flush();
      const text = h.logs.join('');
      expect(text).toContain('"msg":"check"');
      expect(text).toContain('"code":"revoked_api_key"');
      expect(text).toContain('admin authentication failed');
      expect(secretsIn(text, h.config)).toEqual([]);
      expect(text).toContain('"requestId":"r0"');
      for (const s of [a.secret, b.secret]) expect(text).not.toContain(s.slice(8, 40));
    } finally {
      envoy.close();
      await h.stop();
    }
  });
});
