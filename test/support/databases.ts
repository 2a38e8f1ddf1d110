/**
 * Real databases for tests: a fresh SQLite file, or a fresh PostgreSQL database on
 * the server global-setup found (KEYWARD_TEST_PG_URL). Each is migrated and dropped
 * by the returned dispose().
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Client } from 'pg';
import type { DatabaseConfig } from '../../src/config';

export type Dialect = 'sqlite' | 'postgres';
export const DIALECTS: Dialect[] = ['sqlite', 'postgres'];

export interface TestDatabase {
  config: DatabaseConfig;
  /** For SQLite, the database file. */
  file?: string;
  dispose(): Promise<void>;
}

export function adminPgUrl(): string {
  const url = process.env.KEYWARD_TEST_PG_URL;
  if (!url) throw new Error('KEYWARD_TEST_PG_URL is not set; run the tests through jest (global setup sets it)');
  return url;
}

export function pgUrlFor(database: string): string {
  const u = new URL(adminPgUrl());
  u.pathname = `/${database}`;
  return u.toString();
}

export async function createTestDatabase(dialect: Dialect): Promise<TestDatabase> {
  if (dialect === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'keyward-test-'));
    const file = join(dir, 'keyward.db');
    return {
      config: { kind: 'sqlite', path: file, url: `sqlite:${file}` },
      file,
      dispose: () => Promise.resolve(rmSync(dir, { recursive: true, force: true })),
    };
  }
  const name = `keyward_test_${randomBytes(6).toString('hex')}`;
  const admin = new Client({ connectionString: adminPgUrl() });
  await admin.connect();
  try {
    await admin.query(`create database ${name}`);
  } finally {
    await admin.end();
  }
  return {
    config: { kind: 'postgres', url: pgUrlFor(name) },
    dispose: async () => {
      const c = new Client({ connectionString: adminPgUrl() });
      await c.connect();
      try {
        await c.query(`drop database if exists ${name} with (force)`);
      } finally {
        await c.end();
      }
    },
  };
}
