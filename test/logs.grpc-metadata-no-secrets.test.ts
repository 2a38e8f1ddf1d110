/**
 * A metadata value that gRPC does not allow (a tab, a byte above 0x7e) is dropped by
 * grpc-js, whose own log line used to quote it in full on stderr: a bearer token or
 * API key sent that way reached the process's output. keyward routes grpc-js's log
 * through its logger, which says only that an entry was dropped. Checked on a real
 * `keyward serve` process (dist/), reading all of its stdout and stderr.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServerProcess, type ServerProcess } from './support/server-process';
import { adminClient, secretsIn } from './support/harness';
import { checkRequest, http2Unary, keywardError } from './support/raw-grpc';
import { CheckResponse } from '../src/gen/envoy/service/auth/v3/external_auth';

describe('grpc-js log lines about dropped metadata', () => {
  let dir: string;
  let server: ServerProcess | undefined;
  const hashSecret = randomBytes(32);
  const adminToken = `leak-check-token-${randomBytes(12).toString('hex')}`;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'keyward-grpc-log-'));
    server = await startServerProcess({
      KEYWARD_DATABASE_URL: `sqlite:${join(dir, 'kw.db')}`,
      KEYWARD_HASH_SECRET: hashSecret.toString('hex'),
      KEYWARD_ADMIN_TOKEN: adminToken,
      KEYWARD_LOG_LEVEL: 'debug',
    });
  });
  afterAll(async () => {
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('never carry the credential to stdout or stderr, on either port', async () => {
    const s = server!;
    const root = adminClient(s.adminPort, adminToken);
    const org = await root.createOrganization({ name: 'Leaks' });
    const key = await root.createKey({ organizationId: org.id, name: 'k', scopes: ['chat'] });
    root.close();

    // KeyAdmin: the credential with a tab is dropped, so the call has none.
    const admin = await http2Unary(s.adminPort, '/keyward.admin.v1.KeyAdmin/ListOrganizations', Buffer.alloc(0), {
      authorization: `Bearer\t${adminToken}`,
      'x-note': `${key.secret}\u00e9`,
    });
    expect(admin.status).toBe(16);
    expect(keywardError(admin).trailerCode).toBe('missing_credentials');
    // The authz port: metadata of the Check call itself (not the checked request's headers).
    const check = await http2Unary(s.authzPort, '/envoy.service.auth.v3.Authorization/Check', checkRequest({}), {
      'x-api-key': `${key.secret}\tx`,
      'x-forwarded': `Bearer ${adminToken}\u00ff`,
    });
    expect(check.status).toBe(0);
    expect(CheckResponse.decode(check.response!).deniedResponse?.status?.code).toBe(401);

    server = undefined;
    expect(await s.stop()).toBe(0);
    const output = s.stdout() + s.stderr();
    // Nothing of what the dropped entries carried was written anywhere ...
    expect(output).not.toContain(adminToken);
    expect(output).not.toContain(key.secret);
    expect(secretsIn(output, { hashSecret, adminToken })).toEqual([]);
    // ... while the drops themselves were logged, without content.
    expect(output.split('grpc metadata entry dropped').length - 1).toBeGreaterThanOrEqual(4);
  });
});
