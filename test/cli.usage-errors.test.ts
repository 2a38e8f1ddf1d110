/**
 * The CLI's usage and connection errors, in process and without a server: bad option
 * values exit 2 with one `error: invalid_argument: …` line, and a closed port exits 1
 * with `error: unavailable: …`.
 */
import { runCli } from '../src/cli/main';
import { closedPort } from './support/ports';

const TOKEN = 'cli-test-admin-token-0123456789';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(argv: string[], env: Record<string, string | undefined> = {}): Promise<Run> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(argv, {
    stdout: { write: (s: string) => (stdout += s) },
    stderr: { write: (s: string) => (stderr += s) },
    env: { KEYWARD_ADMIN_TOKEN: TOKEN, ...env },
  });
  return { code, stdout, stderr };
}

describe('keyward CLI usage errors', () => {
  it.each([
    [['org', 'create', '--name', 'Acme', '--rate-limit', 'abc'], '--rate-limit'],
    [['org', 'create', '--name', 'Acme', '--rate-limit', '-5'], '--rate-limit'],
    [['org', 'create', '--name', 'Acme', '--max-keys', '1.5'], '--max-keys'],
    [['org', 'update', 'org_x', '--monthly-quota', '1e3'], '--monthly-quota'],
    [['key', 'create', '--org', 'org_x', '--name', 'k', '--expires-in-days', ''], '--expires-in-days'],
    [['key', 'rotate', 'key_x', '--grace-seconds', ' 10'], '--grace-seconds'],
    [['org', 'list', '--limit', 'ten'], '--limit'],
  ])('%j exits 2 naming %s', async (argv, option) => {
    const r = await run(argv);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`error: invalid_argument: ${option} must be a non-negative integer\n`);
    expect(r.stdout).toBe('');
  });

  it('rejects an unknown --env with exit 2', async () => {
    const r = await run(['key', 'create', '--org', 'org_x', '--name', 'k', '--env', 'prod']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('error: invalid_argument: --env must be live or test\n');
  });

  it('reports commander usage errors as one invalid_argument line, exit 2', async () => {
    for (const argv of [
      ['org', 'create'], // missing required --name
      ['org', 'create', '--name', 'A', '--bogus'],
      ['key', 'update', 'key_x', '--rate-limit', '5', '--clear-rate-limit'],
      ['key', 'update', 'key_x', '--expires-at', 'tomorrow'],
      ['org', 'update', 'org_x', '--active', 'maybe'],
      ['nonsense'],
    ]) {
      const r = await run(argv);
      expect({ argv, code: r.code }).toEqual({ argv, code: 2 });
      expect(r.stderr).toMatch(/^error: invalid_argument: [^\n]+\n$/);
    }
  });

  it('prints help with exit 0', async () => {
    const r = await run(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Usage: keyward');
    const sub = await run(['key', 'create', '--help']);
    expect(sub.code).toBe(0);
    expect(sub.stdout).toContain('--expires-in-days');
  });

  it('exits 2 on a configuration error, without calling anything', async () => {
    const bad = await run(['org', 'list'], { KEYWARD_ADMIN_URL: 'not a url' });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^error: invalid_config: KEYWARD_ADMIN_URL: [^\n]+\n$/);

    const noToken = await run(['org', 'list'], { KEYWARD_ADMIN_TOKEN: undefined });
    expect(noToken.code).toBe(2);
    expect(noToken.stderr).toMatch(/^error: missing_credentials: [^\n]+\n$/);
  });

  it('exits 1 with error: unavailable when no server is listening', async () => {
    const port = await closedPort();
    const r = await run(['org', 'list', '--json'], { KEYWARD_ADMIN_URL: `127.0.0.1:${port}` });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^error: unavailable: [^\n]+\n$/);
    expect(r.stderr).not.toContain(TOKEN);
  });
});
