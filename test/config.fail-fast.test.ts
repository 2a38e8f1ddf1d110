import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultAuthzConfig, loadClientConfig, loadConfig, provision } from '../src/config';
import { configErrorOf as errorOf } from './support/config';

const HEX32 = 'ab'.repeat(32);

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'keyward-config-'));
}

describe('configuration', () => {
  it('has the documented defaults', () => {
    const dir = tmp();
    const c = loadConfig({ KEYWARD_DATABASE_URL: `sqlite:${dir}/sub/k.db`, KEYWARD_HASH_SECRET: HEX32 });
    expect(c.authzListen).toBe('127.0.0.1:9191');
    expect(c.adminListen).toBe('127.0.0.1:9192');
    expect(c.logLevel).toBe('info');
    expect(c.autoMigrate).toBe(true);
    expect(c.rotationGraceSeconds).toBe(86400);
    // The journal is on by default for `serve`; defaultAuthzConfig() (embedded and test use) has none.
    expect(c.authz).toEqual({ ...defaultAuthzConfig(), usageJournalDir: './data/usage-journal' });
    expect(c.hashSecret?.equals(Buffer.from(HEX32, 'hex'))).toBe(true);
    // The database's folder is created by `serve` and `migrate` (provision), not by loading.
    expect(existsSync(join(dir, 'sub'))).toBe(false);
    expect(provision(c).hashSecretSource).toBe('env');
    expect(existsSync(join(dir, 'sub'))).toBe(true);
    expect(loadClientConfig({}).adminUrl).toBe('127.0.0.1:9192');
  });

  it('uses sqlite:./data/keyward.db when KEYWARD_DATABASE_URL is unset', () => {
    const cwd = process.cwd();
    const dir = tmp();
    process.chdir(dir);
    try {
      const c = loadConfig({});
      expect(c.database).toMatchObject({ kind: 'sqlite', path: join(dir, 'data', 'keyward.db') });
      expect(c.hashSecretSource).toBe('unset');
      expect(provision(c).hashSecretSource).toBe('generated');
    } finally {
      process.chdir(cwd);
    }
  });

  it('creates the SQLite hash secret once, beside the database, readable only by its owner', () => {
    const dir = tmp();
    const env = { KEYWARD_DATABASE_URL: `sqlite:${dir}/keyward.db` };
    const first = provision(loadConfig(env));
    expect(first.hashSecretSource).toBe('generated');
    const file = join(dir, 'keyward.secret');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readdirSync(dir)).toEqual(['keyward.secret']);
    const second = loadConfig(env);
    expect(second.hashSecretSource).toBe('stored');
    expect(second.hashSecret?.equals(first.hashSecret)).toBe(true);
    expect(first.hashSecret.length).toBe(32);
    // Provisioning again keeps the stored secret.
    expect(provision(second).hashSecret.equals(first.hashSecret)).toBe(true);
  });

  it('writes no file while loading: the secret is generated and stored by `serve` and `migrate`', () => {
    const dir = tmp();
    const c = loadConfig({ KEYWARD_DATABASE_URL: `sqlite:${dir}/sub/keyward.db` });
    expect(c.hashSecretSource).toBe('unset');
    expect(c.hashSecret).toBeUndefined();
    expect(readdirSync(dir)).toEqual([]);
    const memory = provision(loadConfig({ KEYWARD_DATABASE_URL: 'sqlite::memory:' }));
    expect(memory.hashSecretSource).toBe('generated');
    expect(memory.hashSecret.length).toBe(32);
  });

  it('keeps the secret another process stored first', () => {
    const dir = tmp();
    const env = { KEYWARD_DATABASE_URL: `sqlite:${dir}/keyward.db` };
    const loaded = loadConfig(env);
    writeFileSync(join(dir, 'keyward.secret'), `${HEX32}\n`, { mode: 0o600 });
    const c = provision(loaded);
    expect(c.hashSecretSource).toBe('stored');
    expect(c.hashSecret.equals(Buffer.from(HEX32, 'hex'))).toBe(true);
    expect(readdirSync(dir)).toEqual(['keyward.secret']);
  });

  it('accepts the secret as base64 and from a file', () => {
    const dir = tmp();
    const b64 = Buffer.alloc(40, 7).toString('base64');
    expect(loadConfig({ KEYWARD_DATABASE_URL: `sqlite:${dir}/a.db`, KEYWARD_HASH_SECRET: b64 }).hashSecret?.length).toBe(40);
    writeFileSync(join(dir, 's'), `${HEX32}\n`);
    const c = loadConfig({ KEYWARD_DATABASE_URL: 'postgres://u@127.0.0.1/db', KEYWARD_HASH_SECRET_FILE: join(dir, 's') });
    expect(c.hashSecretSource).toBe('file');
    const t = join(dir, 't');
    writeFileSync(t, 'a-long-enough-admin-token\n');
    expect(loadConfig({ KEYWARD_DATABASE_URL: `sqlite:${dir}/a.db`, KEYWARD_ADMIN_TOKEN_FILE: t }).adminToken).toBe(
      'a-long-enough-admin-token',
    );
  });

  it.each([
    [{ KEYWARD_DATABASE_URL: 'mysql://x' }, 'KEYWARD_DATABASE_URL'],
    [{ KEYWARD_DATABASE_URL: 'sqlite:' }, 'KEYWARD_DATABASE_URL'],
    [{ KEYWARD_DATABASE_URL: 'postgres://u@127.0.0.1/db' }, 'KEYWARD_HASH_SECRET'],
    [{ KEYWARD_HASH_SECRET: 'abcd' }, 'KEYWARD_HASH_SECRET'],
    [{ KEYWARD_HASH_SECRET: 'not hex or base64!' }, 'KEYWARD_HASH_SECRET'],
    [{ KEYWARD_HASH_SECRET: HEX32, KEYWARD_HASH_SECRET_FILE: '/x' }, 'KEYWARD_HASH_SECRET'],
    [{ KEYWARD_HASH_SECRET_FILE: '/nonexistent/secret' }, 'KEYWARD_HASH_SECRET_FILE'],
    [{ KEYWARD_ADMIN_LISTEN: 'nonsense' }, 'KEYWARD_ADMIN_LISTEN'],
    [{ KEYWARD_AUTHZ_LISTEN: '127.0.0.1:70000' }, 'KEYWARD_AUTHZ_LISTEN'],
    [{ KEYWARD_HTTP_LISTEN: '' }, 'KEYWARD_HTTP_LISTEN'],
    [{ KEYWARD_LOG_LEVEL: 'loud' }, 'KEYWARD_LOG_LEVEL'],
    [{ KEYWARD_AUTO_MIGRATE: 'maybe' }, 'KEYWARD_AUTO_MIGRATE'],
    [{ KEYWARD_ROTATION_GRACE_SECONDS: '-1' }, 'KEYWARD_ROTATION_GRACE_SECONDS'],
    [{ KEYWARD_ADMIN_TOKEN: 'short' }, 'KEYWARD_ADMIN_TOKEN'],
    [{ KEYWARD_CREDENTIAL_HEADERS: 'x-api-key, bad header' }, 'KEYWARD_CREDENTIAL_HEADERS'],
    [{ KEYWARD_CREDENTIAL_HEADERS: ' , ' }, 'KEYWARD_CREDENTIAL_HEADERS'],
    [{ KEYWARD_STRIP_CREDENTIAL: 'sometimes' }, 'KEYWARD_STRIP_CREDENTIAL'],
    [{ KEYWARD_ON_STORE_ERROR: 'allow' }, 'KEYWARD_ON_STORE_ERROR'],
    [{ KEYWARD_ROUTES_FILE: '/nonexistent/routes.yaml' }, 'KEYWARD_ROUTES_FILE'],
    [{ KEYWARD_CACHE_TTL_SECONDS: '-5' }, 'KEYWARD_CACHE_TTL_SECONDS'],
    [{ KEYWARD_CACHE_MAX_ENTRIES: '0' }, 'KEYWARD_CACHE_MAX_ENTRIES'],
    [{ KEYWARD_NEGATIVE_CACHE_TTL_SECONDS: 'ten' }, 'KEYWARD_NEGATIVE_CACHE_TTL_SECONDS'],
    [{ KEYWARD_LAST_USED_FLUSH_SECONDS: '0' }, 'KEYWARD_LAST_USED_FLUSH_SECONDS'],
    [{ KEYWARD_CACHE_MISS_QUERIES_PER_SECOND: '-1' }, 'KEYWARD_CACHE_MISS_QUERIES_PER_SECOND'],
    [{ KEYWARD_HEAP_GROWING_PERCENT: '500' }, 'KEYWARD_HEAP_GROWING_PERCENT'],
    [{ KEYWARD_CACHE_MISS_QUERIES_PER_SECOND: '1.5' }, 'KEYWARD_CACHE_MISS_QUERIES_PER_SECOND'],
    [{ KEYWARD_USAGE_JOURNAL_DIR: __filename }, 'KEYWARD_USAGE_JOURNAL_DIR'],
    [{ KEYWARD_USAGE_JOURNAL_MAX_MB: '0' }, 'KEYWARD_USAGE_JOURNAL_MAX_MB'],
  ])('rejects %j naming %s', (env, variable) => {
    const dir = tmp();
    const e = errorOf({ KEYWARD_DATABASE_URL: `sqlite:${dir}/k.db`, ...env });
    expect(e.variable.startsWith(variable)).toBe(true);
    expect(e.message.startsWith(variable)).toBe(true);
    expect(e.message).not.toContain('\n');
  });

  it('turns the usage journal off with KEYWARD_USAGE_JOURNAL_DIR=off', () => {
    const dir = tmp();
    expect(
      loadConfig({ KEYWARD_DATABASE_URL: `sqlite:${dir}/k.db`, KEYWARD_USAGE_JOURNAL_DIR: 'off' }).authz.usageJournalDir,
    ).toBeUndefined();
    expect(
      loadConfig({ KEYWARD_DATABASE_URL: `sqlite:${dir}/k.db`, KEYWARD_USAGE_JOURNAL_DIR: join(dir, 'j') }).authz.usageJournalDir,
    ).toBe(join(dir, 'j'));
  });

  it('never echoes a bad secret in the error', () => {
    const secret = 'Zz'.repeat(8) + '!!';
    const e = errorOf({ KEYWARD_HASH_SECRET: secret });
    expect(e.message).not.toContain(secret);
  });

  it('stops `keyward serve` on a broken route-rules file, naming the rule and the field', () => {
    const dir = tmp();
    const rules = join(dir, 'routes.yaml');
    writeFileSync(
      rules,
      'rules:\n  - name: health\n    path_prefix: /healthz\n    public: true\n  - name: agents\n    path_prefix: /v1/agents/\n    methods: GET\n',
    );
    const r = spawnSync(process.execPath, [join(__dirname, '..', 'dist', 'cli', 'main.js'), 'serve'], {
      env: {
        PATH: process.env.PATH,
        KEYWARD_DATABASE_URL: `sqlite:${dir}/k.db`,
        KEYWARD_ROUTES_FILE: rules,
        KEYWARD_ADMIN_LISTEN: '127.0.0.1:0',
        KEYWARD_AUTHZ_LISTEN: '127.0.0.1:0',
        KEYWARD_HTTP_LISTEN: '127.0.0.1:0',
      },
      encoding: 'utf8',
      timeout: 20000,
    });
    expect(r.status).toBe(2);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('KEYWARD_ROUTES_FILE');
    expect(lines[0]).toContain('rule 2 (agents)');
    expect(lines[0]).toContain('methods');
  });

  it('stops `keyward serve` with one line naming the variable and exit status 2', () => {
    const dir = tmp();
    const r = spawnSync(process.execPath, [join(__dirname, '..', 'dist', 'cli', 'main.js'), 'serve'], {
      env: { PATH: process.env.PATH, KEYWARD_DATABASE_URL: `sqlite:${dir}/k.db`, KEYWARD_LOG_LEVEL: 'chatty' },
      encoding: 'utf8',
      timeout: 20000,
    });
    expect(r.status).toBe(2);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('KEYWARD_LOG_LEVEL');
  });
});
