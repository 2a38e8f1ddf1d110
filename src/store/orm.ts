/**
 * Opens the MikroORM instance for the configured database, SQLite (the embedded
 * default) or PostgreSQL, with the same entities and per-dialect migrations.
 */
import type { Options } from '@mikro-orm/core';
import { MikroORM as SqliteORM } from '@mikro-orm/better-sqlite';
import { MikroORM as PostgresORM } from '@mikro-orm/postgresql';
import { Migrator } from '@mikro-orm/migrations';
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

/** Applies pending migrations; returns the names applied. */
export async function migrate(orm: Orm): Promise<string[]> {
  const done = await orm.getMigrator().up();
  return done.map((m) => m.name);
}

/** Names of migrations not yet applied (readiness uses this). */
export async function pendingMigrations(orm: Orm): Promise<string[]> {
  return (await orm.getMigrator().getPendingMigrations()).map((m) => m.name);
}
