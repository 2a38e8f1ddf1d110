/**
 * Scans what the database actually holds — the SQLite file (and its WAL) and every
 * PostgreSQL table — for a created key's text, a rotated key's text, the admin
 * token and the hash secret, and finds none of them.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { Client } from 'pg';
import { startHarness, TEST_ADMIN_TOKEN, type Harness } from './support/harness';

async function postgresText(url: string): Promise<string> {
  const c = new Client({ connectionString: url });
  await c.connect();
  try {
    const tables = await c.query<{ tablename: string }>(`select tablename from pg_tables where schemaname = 'public'`);
    expect(tables.rows.map((t) => t.tablename)).toEqual(
      expect.arrayContaining(['organizations', 'api_keys', 'audit_events', 'admin_tokens']),
    );
    let out = '';
    for (const { tablename } of tables.rows) {
      const rows = await c.query<{ j: string }>(`select row_to_json(t)::text as j from "${tablename}" t`);
      out += rows.rows.map((r) => r.j).join('\n');
    }
    return out;
  } finally {
    await c.end();
  }
}

function sqliteBytes(file: string): string {
  const dir = dirname(file);
  return readdirSync(dir)
    .filter((f) => f.startsWith('keyward.db'))
    .map((f) => readFileSync(`${dir}/${f}`).toString('latin1'))
    .join('\n');
}

describe.each(['sqlite', 'postgres'] as const)('no plaintext secrets in %s', (dialect) => {
  let h: Harness;
  afterEach(async () => h.stop());

  it('stores keys and the admin token only as keyed hashes', async () => {
    h = await startHarness(dialect);
    const org = await h.root.createOrganization({ name: 'Secretive' });
    const created = await h.root.createKey({ organizationId: org.id, name: 'k', scopes: ['chat', 'admin'] });
    const rotated = await h.root.rotateKey({ id: created.key!.id, gracePeriodSeconds: 60 });
    await h.root.revokeKey({ id: rotated.newKey!.id, reason: 'done' });

    const text = dialect === 'sqlite' ? sqliteBytes(h.db.file!) : await postgresText(h.db.config.url);
    // The scan must see real data, or finding nothing proves nothing.
    expect(text).toContain(created.key!.id);
    expect(text).toContain(created.key!.hint);
    // Debug logging was on throughout; the log must hold no secret either.
    expect(h.logs.length).toBeGreaterThan(3);
    const logs = h.logs.join('\n');
    const { createHasher } = await import('../src/keys/hash');
    const hashes = [created.secret, rotated.secret, TEST_ADMIN_TOKEN].map((x) => createHasher(h.config.hashSecret).hash(x));
    for (const hash of hashes) expect(logs).not.toContain(hash);
    for (const secret of [
      created.secret,
      rotated.secret,
      TEST_ADMIN_TOKEN,
      h.config.hashSecret.toString('hex'),
      h.config.hashSecret.toString('base64'),
    ]) {
      expect(text).not.toContain(secret);
      expect(logs).not.toContain(secret);
      // nor the random body alone, without its prefix
      expect(text).not.toContain(secret.slice(8, 40));
    }
  });
});

describe('generated admin token', () => {
  it('is created once when none is configured, shown once, and never logged', async () => {
    const { startApp } = await import('../src/app');
    const { createLogger } = await import('../src/util/logger');
    const { createTestDatabase } = await import('./support/databases');
    const { adminClient } = await import('./support/harness');
    const { randomBytes } = await import('node:crypto');
    const { defaultAuthzConfig } = await import('../src/config');
    const db = await createTestDatabase('sqlite');
    const logs: string[] = [];
    const logger = createLogger('debug', { write: (s: string) => logs.push(s) });
    const config = {
      database: db.config,
      authzListen: '127.0.0.1:0',
      adminListen: '127.0.0.1:0',
      hashSecret: randomBytes(32),
      hashSecretSource: 'env' as const,
      logLevel: 'debug' as const,
      autoMigrate: true,
      rotationGraceSeconds: 60,
      heapGrowingPercent: 20,
      authz: defaultAuthzConfig(),
    };
    const shown: string[] = [];
    const app1 = await startApp({ config, logger, onGeneratedAdminToken: (t) => shown.push(t) });
    await app1.close(100);
    const app2 = await startApp({ config, logger, onGeneratedAdminToken: (t) => shown.push(t) });
    try {
      expect(shown).toHaveLength(1);
      expect(shown[0]).toMatch(/^kwadm_[0-9A-Za-z]{49}$/);
      const c = adminClient(app2.adminPort, shown[0]);
      const org = await c.createOrganization({ name: 'with generated token' });
      expect(org.id).toMatch(/^org_/);
      c.close();
      expect(logs.join('\n')).not.toContain(shown[0]!);
      expect(sqliteBytes(db.file!)).not.toContain(shown[0]!);
    } finally {
      await app2.close(100);
      await db.dispose();
    }
  });
});
