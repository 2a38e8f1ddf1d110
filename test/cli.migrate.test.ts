/**
 * `keyward migrate` and `keyward serve --no-migrate`, as processes, on both dialects:
 *  - `migrate` on a fresh database applies every migration and logs them; a second
 *    run applies none ("database is up to date");
 *  - `serve --no-migrate` on a database never migrated stops at start with status 2
 *    and one configuration-error line naming KEYWARD_AUTO_MIGRATE and the fix, and
 *    creates no table;
 *  - `serve --no-migrate` on a migrated database serves: ready, and a Check is decided.
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { EntityManager } from '@mikro-orm/knex';
import { postgresMigrations, sqliteMigrations } from '../src/store/migrations';
import { openOrm } from '../src/store/orm';
import { BIN } from './support/server-process';
import { createTestDatabase, DIALECTS, type TestDatabase } from './support/databases';
import { adminClient } from './support/harness';
import { EnvoyClient } from './support/envoy-client';

const TOKEN = `migrate-admin-token-${randomBytes(8).toString('hex')}`;

/** Tables in the database (keyward's and the migrations table). */
async function tables(db: TestDatabase): Promise<string[]> {
  const orm = await openOrm(db.config);
  try {
    const knex = (orm.em as unknown as EntityManager).getKnex();
    const rows: { name: string }[] =
      db.config.kind === 'sqlite'
        ? await knex<{ name: string }>('sqlite_master').where('type', 'table').select('name')
        : await knex<{ tablename: string }>('pg_tables')
            .where('schemaname', 'public')
            .select('tablename')
            .then((list) => list.map((t) => ({ name: t.tablename })));
    return rows.map((r) => r.name).filter((n) => !n.startsWith('sqlite_'));
  } finally {
    await orm.close(true);
  }
}

describe.each(DIALECTS)('keyward migrate and serve --no-migrate on %s', (dialect) => {
  let db: TestDatabase;
  let dir: string;
  const migrations = (dialect === 'sqlite' ? sqliteMigrations : postgresMigrations).map((m) => m.name);
  beforeAll(async () => {
    db = await createTestDatabase(dialect);
    dir = mkdtempSync(join(tmpdir(), 'keyward-migrate-cli-'));
  });
  afterAll(async () => {
    await db.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  const env = () => ({
    PATH: process.env.PATH ?? '',
    KEYWARD_DATABASE_URL: db.config.url,
    KEYWARD_HASH_SECRET: randomBytes(32).toString('hex'),
    KEYWARD_ADMIN_TOKEN: TOKEN,
    KEYWARD_ADMIN_LISTEN: '127.0.0.1:0',
    KEYWARD_AUTHZ_LISTEN: '127.0.0.1:0',
    KEYWARD_HTTP_LISTEN: '127.0.0.1:0',
    KEYWARD_CONSOLE_LISTEN: '127.0.0.1:0',
    KEYWARD_USAGE_JOURNAL_DIR: join(dir, 'journal'),
  });
  const run = (...args: string[]) => spawnSync(process.execPath, [BIN, ...args], { env: env(), encoding: 'utf8', timeout: 60_000 });
  const logged = (stdout: string, msg: string) =>
    stdout
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { msg: string; migrations?: string[] })
      .filter((l) => l.msg === msg);

  // The tests run in order on one database: unmigrated, then migrated.
  it('serve --no-migrate on a database never migrated stops at start with one line naming the setting and the fix', async () => {
    const r = run('serve', '--no-migrate');
    expect(r.status).toBe(2);
    expect(r.stderr).toBe(
      'keyward: configuration error: KEYWARD_AUTO_MIGRATE: migrations are off (serve --no-migrate or KEYWARD_AUTO_MIGRATE=false) and the database has no keyward schema; run `keyward migrate` first\n',
    );
    expect(r.stdout).not.toContain('keyward serving');
    expect(await tables(db)).toEqual([]);
  });

  it('migrate applies every migration once; a second run applies none', () => {
    const first = run('migrate');
    expect(first.status).toBe(0);
    expect(logged(first.stdout, 'migrations applied').map((l) => l.migrations)).toEqual([migrations]);
    const second = run('migrate');
    expect(second.status).toBe(0);
    expect(logged(second.stdout, 'database is up to date').map((l) => l.migrations)).toEqual([[]]);
  }, 60_000);

  it('serve --no-migrate on a migrated database serves', async () => {
    const proc = spawn(process.execPath, [BIN, 'serve', '--no-migrate'], { env: env() });
    let out = '';
    proc.stdout.on('data', (d) => (out += String(d)));
    const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
    try {
      const deadline = Date.now() + 30_000;
      let serving: { admin: string; authz: string; http: string } | undefined;
      while (!serving) {
        const line = out.split('\n').find((l) => l.includes('"keyward serving"'));
        if (line) serving = JSON.parse(line) as { admin: string; authz: string; http: string };
        else if (Date.now() > deadline || proc.exitCode !== null) throw new Error(`serve --no-migrate did not start:\n${out}`);
        else await new Promise((r) => setTimeout(r, 50));
      }
      expect(out).not.toContain('"migrations applied"');
      const port = (address: string) => Number(address.split(':').pop());
      expect((await fetch(`http://127.0.0.1:${port(serving.http)}/readyz`)).status).toBe(200);
      const root = adminClient(port(serving.admin), TOKEN);
      const envoy = new EnvoyClient(port(serving.authz));
      try {
        const org = await root.createOrganization({ name: 'no-migrate', rateLimitPerMinute: 100, monthlyQuota: 0 });
        const { secret } = await root.createKey({ organizationId: org.id, name: 'k' });
        const r = await envoy.check({ headers: { 'x-api-key': secret }, path: '/v1/x', method: 'GET' });
        expect(r.http_response).toBe('ok_response');
      } finally {
        root.close();
        envoy.close();
      }
    } finally {
      proc.kill('SIGTERM');
      expect(await exited).toBe(0);
    }
  }, 60_000);
});
