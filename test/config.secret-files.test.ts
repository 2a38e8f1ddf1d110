/**
 * Secrets as files (*_FILE), as Kubernetes mounts them: KEYWARD_DATABASE_URL_FILE,
 * KEYWARD_REDIS_URL_FILE, KEYWARD_HASH_SECRET_FILE and KEYWARD_ADMIN_TOKEN_FILE.
 * Each is read once at start; setting both forms, a missing file or an empty one is an
 * error naming the variable, and no error or log line carries a URL's password.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Redis from 'ioredis';
import { Client } from 'pg';
import { runCli } from '../src/cli/main';
import { loadConfig } from '../src/config';
import { createTestDatabase, type TestDatabase } from './support/databases';
import { EnvoyClient } from './support/envoy-client';
import { adminClient } from './support/harness';
import { describeRedis, testRedisUrl } from './support/redis';
import { startServerProcess, type ServerProcess } from './support/server-process';
import { configErrorOf as errorOf } from './support/config';

const HEX32 = 'cd'.repeat(32);
const PASSWORD = `pw-${randomBytes(9).toString('hex')}`;

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'keyward-secret-files-'));
}

/** Writes `content` to a new file in `dir`, as a mounted Secret would be. */
function secretFile(dir: string, name: string, content: string): string {
  const file = join(dir, name);
  writeFileSync(file, content, { mode: 0o400 });
  return file;
}

describe('URLs from files', () => {
  it('reads KEYWARD_DATABASE_URL_FILE and KEYWARD_REDIS_URL_FILE, dropping the trailing newline', () => {
    const dir = tmp();
    const pg = `postgres://keyward:${PASSWORD}@db.internal:5432/keyward?sslmode=require`;
    const redis = `rediss://:${PASSWORD}@redis.internal:6380/2`;
    const c = loadConfig({
      KEYWARD_DATABASE_URL_FILE: secretFile(dir, 'database-url', `${pg}\n`),
      KEYWARD_REDIS_URL_FILE: secretFile(dir, 'redis-url', `${redis}\n`),
      KEYWARD_HASH_SECRET_FILE: secretFile(dir, 'hash-secret', `${HEX32}\n`),
    });
    expect(c.database).toEqual({ kind: 'postgres', url: pg });
    expect(c.authz.redisUrl).toBe(redis);
    expect(c.hashSecretSource).toBe('file');
  });

  it('reads a sqlite: URL from a file, and the variables keep working without files', () => {
    const dir = tmp();
    const c = loadConfig({ KEYWARD_DATABASE_URL_FILE: secretFile(dir, 'u', `sqlite:${dir}/k.db\n`) });
    expect(c.database).toMatchObject({ kind: 'sqlite', path: join(dir, 'k.db') });
    const d = loadConfig({ KEYWARD_DATABASE_URL: `sqlite:${dir}/k.db`, KEYWARD_REDIS_URL: 'redis://127.0.0.1:6379' });
    expect(d.database).toMatchObject({ kind: 'sqlite', path: join(dir, 'k.db') });
    expect(d.authz.redisUrl).toBe('redis://127.0.0.1:6379');
  });

  it.each([['KEYWARD_DATABASE_URL'], ['KEYWARD_REDIS_URL']])('refuses %s and its _FILE together, naming both', (name) => {
    const dir = tmp();
    const value = name === 'KEYWARD_DATABASE_URL' ? `sqlite:${dir}/k.db` : 'redis://127.0.0.1:6379';
    const env: Record<string, string> = { [name]: value, [`${name}_FILE`]: secretFile(dir, 'u', value) };
    if (name !== 'KEYWARD_DATABASE_URL') env.KEYWARD_DATABASE_URL = `sqlite:${dir}/k.db`;
    const e = errorOf(env);
    expect(e.variable).toBe(name);
    expect(e.message).toBe(`${name}: set either ${name} or ${name}_FILE, not both`);
  });

  it.each([['KEYWARD_DATABASE_URL_FILE'], ['KEYWARD_REDIS_URL_FILE']])('names %s when its file is missing', (variable) => {
    const dir = tmp();
    const env: Record<string, string> = { KEYWARD_DATABASE_URL: `sqlite:${dir}/k.db`, [variable]: join(dir, 'not-mounted') };
    if (variable === 'KEYWARD_DATABASE_URL_FILE') delete env.KEYWARD_DATABASE_URL;
    const e = errorOf(env);
    expect(e.variable).toBe(variable);
    expect(e.message).toBe(`${variable}: cannot read ${join(dir, 'not-mounted')}: ENOENT`);
  });

  it.each([['KEYWARD_DATABASE_URL_FILE'], ['KEYWARD_REDIS_URL_FILE'], ['KEYWARD_HASH_SECRET_FILE'], ['KEYWARD_ADMIN_TOKEN_FILE']])(
    'names %s when its file is empty, rather than falling back to a default',
    (variable) => {
      const dir = tmp();
      const env: Record<string, string> = { KEYWARD_DATABASE_URL: `sqlite:${dir}/k.db`, [variable]: secretFile(dir, 'empty', '\n') };
      if (variable === 'KEYWARD_DATABASE_URL_FILE') delete env.KEYWARD_DATABASE_URL;
      const e = errorOf(env);
      expect(e.variable).toBe(variable);
      expect(e.message).toBe(`${variable}: ${join(dir, 'empty')} is empty`);
    },
  );

  it('names the _FILE variable for a bad URL in a file, and never echoes the URL', () => {
    const dir = tmp();
    const badPg = `mysql://keyward:${PASSWORD}@db/keyward`;
    const e1 = errorOf({ KEYWARD_DATABASE_URL_FILE: secretFile(dir, 'd', badPg) });
    expect(e1.variable).toBe('KEYWARD_DATABASE_URL_FILE');
    expect(e1.message).not.toContain(PASSWORD);
    const badRedis = `redis://:${PASSWORD}@redis host:6379`;
    const e2 = errorOf({ KEYWARD_DATABASE_URL: `sqlite:${dir}/k.db`, KEYWARD_REDIS_URL_FILE: secretFile(dir, 'r', badRedis) });
    expect(e2.variable).toBe('KEYWARD_REDIS_URL_FILE');
    expect(e2.message).toBe('KEYWARD_REDIS_URL_FILE: must be a redis:// or rediss:// URL');
  });
});

describeRedis('keyward serve with every secret from a file', () => {
  let db: TestDatabase;
  let server: ServerProcess;
  const token = `file-admin-token-${randomBytes(8).toString('hex')}`;
  const hashSecret = randomBytes(32).toString('hex');
  let pgUrl: string;
  let redisUrl: string;
  let files: Record<string, string>;

  beforeAll(async () => {
    db = await createTestDatabase('postgres');
    // The test server trusts local connections, so a password in the URL is sent and
    // not needed: it is there to show that it never reaches a log line.
    const pg = new URL(db.config.url);
    pg.username = pg.username || 'postgres';
    pg.password = PASSWORD;
    pgUrl = pg.toString();
    const redis = new URL(testRedisUrl());
    redis.username = 'default';
    redis.password = PASSWORD;
    redisUrl = redis.toString();
    const dir = tmp();
    files = {
      KEYWARD_DATABASE_URL_FILE: secretFile(dir, 'database-url', `${pgUrl}\n`),
      KEYWARD_REDIS_URL_FILE: secretFile(dir, 'redis-url', `${redisUrl}\n`),
      KEYWARD_HASH_SECRET_FILE: secretFile(dir, 'hash-secret', `${hashSecret}\n`),
      KEYWARD_ADMIN_TOKEN_FILE: secretFile(dir, 'admin-token', `${token}\n`),
    };
    server = await startServerProcess({ ...files, KEYWARD_LOG_LEVEL: 'debug' });
  });
  afterAll(async () => {
    await server?.stop('SIGKILL');
    await db?.dispose();
  });

  it('uses the files (admin token, database, Redis) and logs none of the secrets', async () => {
    // The admin token from the file is the bootstrap token: the CLI reads the same file.
    let out = '';
    const code = await runCli(['org', 'create', '--name', 'from-files', '--rate-limit', '5', '--json'], {
      env: { KEYWARD_ADMIN_URL: `127.0.0.1:${server.adminPort}`, KEYWARD_ADMIN_TOKEN_FILE: files.KEYWARD_ADMIN_TOKEN_FILE! },
      stdout: { write: (s: string) => (out += s) },
      stderr: { write: () => true },
    });
    expect(code).toBe(0);
    const org = JSON.parse(out) as { id: string };

    // The organization is in the database the URL file names.
    const pg = new Client({ connectionString: db.config.url });
    await pg.connect();
    try {
      expect((await pg.query('select name from organizations where id = $1', [org.id])).rows).toEqual([{ name: 'from-files' }]);
    } finally {
      await pg.end();
    }
    const admin = adminClient(server.adminPort, token);
    const envoy = new EnvoyClient(server.authzPort);
    try {
      const { secret, key } = await admin.createKey({ organizationId: org.id, name: 'k', scopes: [] });
      const r = await envoy.check({ headers: { authorization: `Bearer ${secret}` } });
      expect(r.http_response).toBe('ok_response');
      // The rate-limit window is in the Redis the URL file names.
      const redis = new Redis(testRedisUrl());
      try {
        // (the strict mode's hash, the default: see src/limits/redis-strict-script.ts)
        expect(await redis.exists(`kw:rls:{${key!.id}}`)).toBe(1);
      } finally {
        redis.disconnect();
      }
    } finally {
      admin.close();
      envoy.close();
    }

    const logs = server.stdout() + server.stderr();
    expect(logs).toContain('"keyward serving"');
    for (const secret of [PASSWORD, token, hashSecret, pgUrl, redisUrl]) expect(logs).not.toContain(secret);
  });
});
