/**
 * `keyward check` (in process, runCli) against a real server's authz port: an allowed
 * Check with the identity headers sent upstream and the rate-limit headers sent to the
 * client; a 401 with its body and WWW-Authenticate; a 403 insufficient_scope from
 * --context-extension required_scopes; the --json shape; the key from --key-file and
 * from standard input; exit statuses 0 / 3 / 1 / 2; and the key never printed.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { startHarness, type Harness } from './support/harness';
import { runCli } from '../src/cli/main';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

describe('keyward check', () => {
  let h: Harness;
  let dir: string;
  let orgId: string;
  let keyId: string;
  let secret: string;
  const printed: string[] = [];

  beforeAll(async () => {
    h = await startHarness('sqlite');
    dir = mkdtempSync(join(tmpdir(), 'keyward-check-'));
    orgId = (await h.root.createOrganization({ name: 'Acme' })).id;
    const created = await h.root.createKey({ organizationId: orgId, name: 'k', scopes: ['chat:read'], rateLimitPerMinute: 100 });
    keyId = created.key!.id;
    secret = created.secret;
  });
  afterAll(async () => {
    // No run printed the key, on stdout or stderr.
    for (const text of printed) expect(text).not.toContain(secret);
    expect(printed.length).toBeGreaterThan(0);
    rmSync(dir, { recursive: true, force: true });
    await h.stop();
  });

  async function run(argv: string[], opts: { stdin?: string; env?: Record<string, string> } = {}): Promise<Run> {
    let stdout = '';
    let stderr = '';
    const code = await runCli(['check', ...argv], {
      stdout: { write: (s: string) => (stdout += s) },
      stderr: { write: (s: string) => (stderr += s) },
      env: { KEYWARD_AUTHZ_URL: `127.0.0.1:${h.app.authzPort}`, ...opts.env },
      ...(opts.stdin !== undefined && { stdin: Readable.from([Buffer.from(opts.stdin)]) }),
    });
    printed.push(stdout, stderr);
    return { code, stdout, stderr };
  }
  const chat = ['--method', 'POST', '--path', '/v1/chat', '--host', 'api.example.com'];

  it('allowed: exit 0, the identity headers sent upstream, the credential removed, the rate-limit headers to the client', async () => {
    const r = await run([...chat, '--key', secret]);
    expect([r.code, r.stderr]).toEqual([0, '']);
    expect(r.stdout).toMatch(/^decision: allowed$/m);
    expect(r.stdout).toContain(`  x-keyward-key-id: ${keyId}\n`);
    expect(r.stdout).toContain(`  x-keyward-org-id: ${orgId}\n`);
    expect(r.stdout).toContain('  x-keyward-scopes: chat:read\n');
    expect(r.stdout).toContain('  x-keyward-environment: live\n');
    expect(r.stdout).toContain('removed from upstream: authorization\n');
    expect(r.stdout).toMatch(/^response headers:\n(.*\n)* {2}x-ratelimit-limit: 100$/m);
  });

  it('--json when allowed: allowed, code ok, no http_status, the headers as objects, body null', async () => {
    const r = await run([...chat, '--key', secret, '--header', 'X-Request-Id=req-1', '--json']);
    expect([r.code, r.stderr]).toEqual([0, '']);
    const out = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(out).not.toHaveProperty('http_status');
    expect(out).toMatchObject({
      allowed: true,
      code: 'ok',
      upstream_headers: {
        'x-keyward-key-id': keyId,
        'x-keyward-org-id': orgId,
        'x-keyward-scopes': 'chat:read',
        'x-keyward-environment': 'live',
      },
      upstream_headers_removed: ['authorization'],
      response_headers: { 'x-ratelimit-limit': '100' },
      body: null,
      dynamic_metadata: { key_id: keyId, org_id: orgId, environment: 'live' },
    });
    expect(Object.keys(out.upstream_headers as object).sort()).toEqual([
      'x-keyward-environment',
      'x-keyward-key-id',
      'x-keyward-org-id',
      'x-keyward-scopes',
    ]);
  });

  it('denied 401 (no key, an invalid key): exit 3, the status, WWW-Authenticate and the body; nothing on stderr', async () => {
    const missing = await run([...chat]);
    expect([missing.code, missing.stderr]).toEqual([3, '']);
    expect(missing.stdout).toMatch(/^decision: denied \(missing_api_key\), HTTP 401$/m);
    expect(missing.stdout).toContain('  www-authenticate: Bearer realm="keyward"\n');
    expect(missing.stdout).toContain('body: {"error":{"code":"missing_api_key","message":"an API key is required"}}\n');

    const bad = `${secret.slice(0, -4)}${secret.slice(-4) === 'AAAA' ? 'BBBB' : 'AAAA'}`;
    const r = await run([...chat, '--key-header', 'x-api-key', '--key', bad, '--json']);
    expect([r.code, r.stderr]).toEqual([3, '']);
    expect(r.stdout).not.toContain(bad);
    const out = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(out).toEqual({
      allowed: false,
      code: 'invalid_api_key',
      http_status: 401,
      upstream_headers: {},
      upstream_headers_removed: [],
      response_headers: {
        'content-type': 'application/json',
        'x-keyward-error-code': 'invalid_api_key',
        'www-authenticate': 'Bearer realm="keyward", error="invalid_token"',
      },
      body: { error: { code: 'invalid_api_key', message: 'the API key is not valid' } },
      dynamic_metadata: { error_code: 'invalid_api_key' },
    });
  });

  it('denied 403 insufficient_scope through --context-extension required_scopes', async () => {
    const r = await run([...chat, '--key', secret, '--context-extension', 'required_scopes=chat:write', '--json']);
    expect([r.code, r.stderr]).toEqual([3, '']);
    expect(JSON.parse(r.stdout)).toMatchObject({
      allowed: false,
      code: 'insufficient_scope',
      http_status: 403,
      response_headers: {
        'x-keyward-error-code': 'insufficient_scope',
        'www-authenticate': 'Bearer realm="keyward", error="insufficient_scope", scope="chat:write"',
      },
      body: { error: { code: 'insufficient_scope', required: ['chat:write'] } },
      dynamic_metadata: { error_code: 'insufficient_scope', key_id: keyId, org_id: orgId },
    });
    const text = await run([...chat, '--key', secret, '--context-extension', 'required_scopes=chat:read']);
    expect(text.code).toBe(0);
  });

  it('the key from --key-file and from standard input (--key-stdin), a final newline dropped', async () => {
    const file = join(dir, 'key');
    writeFileSync(file, `${secret}\n`, { mode: 0o600 });
    const fromFile = await run([...chat, '--key-file', file, '--json']);
    expect([fromFile.code, fromFile.stderr]).toEqual([0, '']);
    expect(JSON.parse(fromFile.stdout)).toMatchObject({ allowed: true, upstream_headers: { 'x-keyward-key-id': keyId } });

    const fromStdin = await run([...chat, '--key-stdin', '--json'], { stdin: `${secret}\n` });
    expect([fromStdin.code, fromStdin.stderr]).toEqual([0, '']);
    expect(JSON.parse(fromStdin.stdout)).toMatchObject({ allowed: true, upstream_headers: { 'x-keyward-key-id': keyId } });
  });

  it('usage errors exit 2: two key sources, an empty key, an unreadable key file, a bad --header', async () => {
    const cases: [string[], string | undefined, RegExp][] = [
      [
        [...chat, '--key', secret, '--key-stdin'],
        secret,
        /^error: invalid_argument: give at most one of --key, --key-file and --key-stdin\n$/,
      ],
      [[...chat, '--key-stdin'], '\n', /^error: invalid_argument: the key is empty\n$/],
      [[...chat, '--key', '-'], secret, /^error: invalid_argument: --key - is not standard input: use --key-stdin\n$/],
      [[...chat, '--key-file', join(dir, 'absent')], undefined, /^error: invalid_argument: --key-file: cannot read .*absent \(ENOENT\)\n$/],
      [[...chat, '--header', 'novalue'], undefined, /^error: invalid_argument: .*--header must be name=value\n$/],
      [['--path', '/v1/chat'], undefined, /^error: invalid_argument: .*--method/],
    ];
    for (const [argv, stdin, stderr] of cases) {
      const r = await run(argv, stdin === undefined ? {} : { stdin });
      expect([r.code, r.stdout]).toEqual([2, '']);
      expect(r.stderr).toMatch(stderr);
    }
    const badUrl = await run([...chat], { env: { KEYWARD_AUTHZ_URL: 'no port' } });
    expect(badUrl.code).toBe(2);
    expect(badUrl.stderr).toMatch(/^error: invalid_config: KEYWARD_AUTHZ_URL/);
  });

  it('no server: exit 1 with one error line naming the gRPC status, the key not in it', async () => {
    const r = await run([...chat, '--key', secret, '--timeout-ms', '2000'], { env: { KEYWARD_AUTHZ_URL: '127.0.0.1:1' } });
    expect([r.code, r.stdout]).toEqual([1, '']);
    expect(r.stderr).toMatch(/^error: unavailable: .+\n$/);
  });
});
