/**
 * Opens the MikroORM instance for the configured database, SQLite (the embedded
 * default) or PostgreSQL, with the same entities and per-dialect migrations.
 */
import type { Options } from '@mikro-orm/core';
import { MikroORM as SqliteORM } from '@mikro-orm/better-sqlite';
import { MikroORM as PostgresORM } from '@mikro-orm/postgresql';
import { Migrator } from '@mikro-orm/migrations';
import { Client } from 'pg';
import type { MikroORM as KnexORM } from '@mikro-orm/knex';
import type { DatabaseConfig } from '../config';
import { ALL_SCHEMAS } from './entities';
import { sqliteMigrations, postgresMigrations } from './migrations';

export type Orm = KnexORM;

export function ormOptions(db: DatabaseConfig, migrationsPath?: string): Options {
  const common = {
    entities: ALL_SCHEMAS,
    discovery: { warnWhenNoEntities: true },
    forceUtcTimezone: true,
    allowGlobalContext: false,
    debug: false,
    extensions: [Migrator],
    // Errors must surface as exceptions; never print queries (they hold key hashes).
    logger: () => undefined,
  };
  if (db.kind === 'sqlite') {
    return {
      ...common,
      dbName: db.path,
      migrations: {
        tableName: 'keyward_migrations',
        path: migrationsPath,
        migrationsList: migrationsPath ? undefined : sqliteMigrations,
        transactional: true,
        allOrNothing: true,
        emit: 'ts',
        snapshot: false,
      },
    };
  }
  return {
    ...common,
    clientUrl: db.url,
    pool: { min: 0, max: 10 },
    migrations: {
      tableName: 'keyward_migrations',
      path: migrationsPath,
      migrationsList: migrationsPath ? undefined : postgresMigrations,
      transactional: true,
      allOrNothing: true,
      emit: 'ts',
      snapshot: false,
    },
  };
}

/**
 * Opens the ORM. By default it connects at once and fails if the database cannot be
 * reached; `connect: false` defers connecting to the first query.
 */
export async function openOrm(db: DatabaseConfig, migrationsPath?: string, connect = true): Promise<Orm> {
  const opts = { ...ormOptions(db, migrationsPath), connect };
  if (db.kind === 'sqlite') {
    const orm = await SqliteORM.init(opts as Parameters<typeof SqliteORM.init>[0]);
    // WAL lets readers proceed while a writer commits; a busy timeout rides out short locks.
    const conn = orm.em.getConnection();
    await conn.execute('pragma journal_mode = wal');
    await conn.execute('pragma busy_timeout = 5000');
    await conn.execute('pragma foreign_keys = on');
    return orm as unknown as Orm;
  }
  return (await PostgresORM.init(opts as Parameters<typeof PostgresORM.init>[0])) as unknown as Orm;
}

/** The PostgreSQL advisory lock key `migrate` holds ("keyward-migrate" as an int). */
export const MIGRATION_LOCK_KEY = 0x6b77_6d67;

/**
 * Applies pending migrations; returns the names applied. On PostgreSQL, replicas that
 * start together take turns: each holds a session advisory lock (MIGRATION_LOCK_KEY)
 * on its own connection while it migrates, so the second finds nothing left to do.
 */
export async function migrate(orm: Orm): Promise<string[]> {
  const url = orm.config.get('clientUrl');
  // SQLite: one file, whose writers SQLite itself serializes.
  if (typeof url !== 'string' || !/^postgres(ql)?:/.test(url)) return (await orm.getMigrator().up()).map((m) => m.name);
  const lock = new Client({ connectionString: url });
  await lock.connect();
  try {
    await lock.query('select pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
    return (await orm.getMigrator().up()).map((m) => m.name);
  } finally {
    await lock.query('select pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]).catch(() => undefined);
    await lock.end().catch(() => undefined);
  }
}

/** Names of migrations not yet applied (readiness uses this). */
export async function pendingMigrations(orm: Orm): Promise<string[]> {
  return (await orm.getMigrator().getPendingMigrations()).map((m) => m.name);
}
