/**
 * The CLI end to end: a real `keyward serve` process (the built dist/, on SQLite, with
 * a generated admin token), driven by real `keyward` CLI processes.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EnvoyClient, headerMap } from './support/envoy-client';

const BIN = join(__dirname, '..', 'dist', 'cli', 'main.js');

interface Served {
  proc: ChildProcess;
  adminUrl: string;
  authzUrl: string;
  token: string;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
}

/** The parts of the CLI's --json views that the test reads. */
interface OrgView {
  id: string;
  active: boolean;
}
interface KeyView {
  id: string;
  /** The secret: only in create and rotate replies. */
  key: string;
  scopes: string[];
}

async function serve(dir: string): Promise<Served> {
  const proc = spawn(process.execPath, [BIN, 'serve'], {
    cwd: dir,
    env: {
      PATH: process.env.PATH,
      KEYWARD_DATABASE_URL: `sqlite:${join(dir, 'data', 'keyward.db')}`,
      KEYWARD_ADMIN_LISTEN: '127.0.0.1:0',
      KEYWARD_AUTHZ_LISTEN: '127.0.0.1:0',
      KEYWARD_HTTP_LISTEN: '127.0.0.1:0',
      KEYWARD_CONSOLE_LISTEN: '127.0.0.1:0',
      KEYWARD_LOG_LEVEL: 'debug',
    },
  });
  let out = '';
  let err = '';
  proc.stdout.on('data', (d) => (out += String(d)));
  proc.stderr.on('data', (d) => (err += String(d)));
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  const deadline = Date.now() + 20000;
  for (;;) {
    const line = out.split('\n').find((l) => l.includes('"keyward serving"'));
    const token = /kwadm_[0-9A-Za-z]{49}/.exec(err)?.[0];
    if (line && token) {
      const started = JSON.parse(line) as { admin: string; authz: string };
      return {
        proc,
        adminUrl: started.admin,
        authzUrl: started.authz,
        token,
        stdout: () => out,
        stderr: () => err,
        exited,
      };
    }
    if (Date.now() > deadline || proc.exitCode !== null) throw new Error(`server did not start:\n${out}\n${err}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('keyward CLI against a running server', () => {
  let dir: string;
  let s: Served;
  const cli = (args: string[], token = s.token) =>
    spawnSync(process.execPath, [BIN, ...args], {
      env: { PATH: process.env.PATH, KEYWARD_ADMIN_URL: s.adminUrl, KEYWARD_ADMIN_TOKEN: token },
      encoding: 'utf8',
      timeout: 20000,
    });
  /** The command's --json document, typed as the test expects it (the assertions check it). */
  const json = <T = Record<string, unknown>>(args: string[]): T => {
    const r = cli([...args, '--json']);
    if (r.status !== 0) throw new Error(`keyward ${args.join(' ')} failed: ${r.stderr}`);
    return JSON.parse(r.stdout) as T;
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'keyward-cli-'));
    s = await serve(dir);
  });
  afterAll(() => {
    if (s.proc.exitCode === null) s.proc.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  it('manages organizations and keys, shows the secret once, and stops on SIGTERM', async () => {
    const org = json<OrgView>([
      'org',
      'create',
      '--name',
      'Acme',
      '--rate-limit',
      '120',
      '--monthly-quota',
      '1000000',
      '--max-keys',
      '5',
      '--anchor-day',
      '15',
    ]);
    expect(org).toMatchObject({
      id: expect.stringMatching(/^org_/) as unknown,
      name: 'Acme',
      rateLimitPerMinute: 120,
      monthlyQuota: 1000000,
      maxKeys: 5,
      billingAnchorDay: 15,
      active: true,
    });

    const key = json<KeyView>([
      'key',
      'create',
      '--org',
      org.id,
      '--name',
      'backend',
      '--env',
      'test',
      '--scopes',
      'chat,agents:read',
      '--expires-in-days',
      '30',
    ]);
    expect(key.id).toMatch(/^key_/);
    expect(key.key).toMatch(/^kw_test_[0-9A-Za-z]{49}$/);
    expect(key.scopes).toEqual(['chat', 'agents:read']);

    // listings are sanitized: id and hint, never the key
    const table = cli(['key', 'list', '--org', org.id]);
    expect(table.status).toBe(0);
    expect(table.stdout).toContain(key.id);
    expect(table.stdout).toContain(key.key.slice(-4));
    expect(table.stdout).not.toContain(key.key);
    const listed = json<{ keys: KeyView[] }>(['key', 'list', '--org', org.id]);
    expect(listed.keys.map((k: { id: string }) => k.id)).toEqual([key.id]);
    expect(JSON.stringify(listed)).not.toContain(key.key);
    expect(json(['key', 'get', key.id])).toMatchObject({ id: key.id, status: 'active' });
    expect(JSON.stringify(json(['key', 'get', key.id]))).not.toContain(key.key);

    // The data plane allows the new key at once, as Envoy would ask.
    const envoy = new EnvoyClient(Number(s.authzUrl.split(':').pop()));
    const allowed = await envoy.check({ headers: { 'x-api-key': key.key }, contextExtensions: { required_scopes: 'chat' } });
    expect(allowed.http_response).toBe('ok_response');
    expect(headerMap(allowed.ok_response?.headers)['x-keyward-key-id']?.value).toBe(key.id);
    const noScope = await envoy.check({ headers: { 'x-api-key': key.key }, contextExtensions: { required_scopes: 'billing' } });
    expect(noScope.denied_response?.status?.code).toBe(403);

    // Metering commands: limits (the org's 120/min), quota (1,000,000) and usage.
    expect(json(['key', 'limits', key.id])).toMatchObject({
      keyId: key.id,
      limit: 120,
      unlimited: false,
      remaining: 119,
      limitSource: 'organization',
    });
    expect(json(['key', 'limits', key.id, '--reset'])).toMatchObject({ remaining: 120 });
    expect(cli(['key', 'limits', key.id]).stdout).toContain('120/min (organization)');
    expect(json(['quota', '--org', org.id])).toMatchObject({
      organizationId: org.id,
      limit: 1000000,
      used: 1,
      remaining: 999999,
      unlimited: false,
    });
    expect(cli(['quota', '--org', org.id]).stdout).toMatch(/used:\s+1\n/);
    const usage = json<{ totals: { requests: number }; byKey: unknown[] }>(['usage', '--org', org.id]);
    expect(usage.totals.requests).toBe(1);
    expect(usage.byKey).toEqual([expect.objectContaining({ keyId: key.id })]);
    expect(cli(['usage', '--org', org.id]).stdout).toContain('By endpoint:');
    const badMonth = cli(['usage', '--org', org.id, '--month', '2026-13']);
    expect(badMonth.status).toBe(2);
    expect(badMonth.stderr).toContain('invalid_argument');

    const rotated = json<KeyView & { oldKeyId: string; oldKeyExpiresAt: string }>(['key', 'rotate', key.id, '--grace-seconds', '3600']);
    expect(rotated.key).toMatch(/^kw_test_/);
    expect(rotated.key).not.toBe(key.key);
    expect(rotated.oldKeyId).toBe(key.id);
    expect(Date.parse(rotated.oldKeyExpiresAt) - Date.now()).toBeGreaterThan(3500_000);

    const revoked = json<KeyView>(['key', 'revoke', rotated.id, '--reason', 'leaked in a log']);
    expect(revoked).toMatchObject({ id: rotated.id, status: 'revoked', revokeReason: 'leaked in a log', revokedBy: 'admin' });
    expect(json<{ keys: KeyView[] }>(['key', 'list', '--org', org.id]).keys.map((k: { id: string }) => k.id)).toEqual([key.id]);
    // revoked through the CLI: the very next Check denies it
    const denied401 = await envoy.check({ headers: { authorization: `Bearer ${rotated.key}` } });
    expect(denied401.denied_response?.status?.code).toBe(401);
    expect((JSON.parse(denied401.denied_response!.body!) as { error: { code: string } }).error.code).toBe('revoked_api_key');
    envoy.close();
    expect(json<{ keys: KeyView[] }>(['key', 'list', '--org', org.id, '--include-revoked']).keys).toHaveLength(2);

    const updated = json(['org', 'update', org.id, '--active', 'false', '--name', 'Acme Inc']);
    expect(updated).toMatchObject({ active: false, name: 'Acme Inc' });
    expect(json<OrgView>(['org', 'get', org.id]).active).toBe(false);
    expect(json<{ organizations: OrgView[] }>(['org', 'list']).organizations.map((o: { id: string }) => o.id)).toEqual([org.id]);

    // a failure: non-zero exit, one line with the error code
    const denied = cli(['key', 'create', '--org', org.id, '--name', 'x']);
    expect(denied.status).toBe(1);
    expect(denied.stderr.trim().split('\n')).toHaveLength(1);
    expect(denied.stderr).toContain('organization_inactive');

    const badAuth = cli(['org', 'list'], 'kwadm_wrong_token_of_enough_length');
    expect(badAuth.status).toBe(1);
    expect(badAuth.stderr).toMatch(/^error: invalid_credentials: /);

    // The admin changes (security events from the request path, actor `keyward`, land with the next usage flush).
    const events = json<{ events: { action: string; actor: string }[] }>(['audit', '--org', org.id, '--limit', '50'])
      .events.filter((e) => e.actor !== 'keyward')
      .map((e: { action: string }) => e.action);
    expect(events).toEqual([
      'organization.update',
      'key.revoke',
      'key.create',
      'key.rotate',
      'key.rate_limit_reset',
      'key.create',
      'organization.create',
    ]);
    const human = cli(['audit', '--key', key.id]);
    expect(human.stdout).toContain('key.rotate');

    // The generated token went to the terminal once, never into the structured log,
    // and no full key was ever logged.
    expect(s.stdout()).not.toContain(s.token);
    expect(s.stdout()).not.toContain(key.key);
    expect(s.stdout()).not.toContain(rotated.key);

    s.proc.kill('SIGTERM');
    expect(await s.exited).toBe(0);
  });
});
