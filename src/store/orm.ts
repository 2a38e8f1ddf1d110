/**
 * Opens the MikroORM instance for the configured database, SQLite (the embedded
 * default) or PostgreSQL, with the same entities and per-dialect migrations.
 */
// First: MikroORM is loaded with its AsyncLocalStorage instances recorded (see there).
import './orm-async-context';
import type { Options } from '@mikro-orm/core';
import { MikroORM as SqliteORM } from '@mikro-orm/better-sqlite';
import { MikroORM as PostgresORM } from '@mikro-orm/postgresql';
import { Migrator } from '@mikro-orm/migrations';
import { Client } from 'pg';
import { BetterSqliteKnexDialect, type MikroORM as KnexORM } from '@mikro-orm/knex';
import type { DatabaseConfig } from '../config';
import { ALL_SCHEMAS } from './entities';
import { sqliteMigrations, postgresMigrations } from './migrations';

export type Orm = KnexORM;

/** The table MikroORM records applied migrations in. */
const MIGRATIONS_TABLE = 'keyward_migrations';

/** How long a SQLite statement waits for another connection's lock before `database is locked`. */
export const SQLITE_BUSY_TIMEOUT_MS = 5000;
/** How long `migrate` waits for another process's SQLite migration to finish. */
export const SQLITE_MIGRATION_LOCK_WAIT_MS = 120_000;

/** The raw better-sqlite3 connection, as far as the pool hook uses it. */
interface SqliteHandle {
  pragma(source: string): unknown;
}

/**
 * knex's better-sqlite3 client whose transactions begin IMMEDIATE: a transaction takes
 * the write lock up front, waiting (busy timeout) for another process's writer, instead
 * of failing with `database is locked` when its first write finds one after its reads.
 */
class ImmediateTransactionDialect extends BetterSqliteKnexDialect {
  transaction(...args: unknown[]): unknown {
    const trx = (super.transaction as (...a: unknown[]) => KnexTransaction)(...args);
    trx.begin = (conn) => trx.query(conn, 'BEGIN IMMEDIATE;');
    return trx;
  }
}

/** The part of knex's (untyped) transaction the dialect above replaces. */
interface KnexTransaction {
  begin(conn: unknown): unknown;
  query(conn: unknown, sql: string): unknown;
}

/** Every SQLite connection the pool opens: wait for locks, WAL, foreign keys. */
function prepareSqliteConnection(conn: SqliteHandle, done: (err: Error | null, conn: SqliteHandle) => void): void {
  try {
    // The busy timeout first: switching to WAL itself waits for a concurrent opener.
    conn.pragma(`busy_timeout = ${SQLITE_BUSY_TIMEOUT_MS}`);
    // WAL lets readers proceed while a writer commits.
    conn.pragma('journal_mode = wal');
    conn.pragma('foreign_keys = on');
    done(null, conn);
  } catch (e) {
    done(e as Error, conn);
  }
}

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
      pool: { afterCreate: prepareSqliteConnection },
      driverOptions: { client: ImmediateTransactionDialect },
      migrations: {
        tableName: MIGRATIONS_TABLE,
        path: migrationsPath,
        migrationsList: migrationsPath ? undefined : sqliteMigrations,
        // migrate() runs the whole pass in one BEGIN IMMEDIATE transaction of its own.
        transactional: false,
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
      tableName: MIGRATIONS_TABLE,
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
  if (db.kind === 'sqlite') return await SqliteORM.init(opts);
  return await PostgresORM.init(opts);
}

/** The PostgreSQL advisory lock key `migrate` holds ("keyward-migrate" as an int). */
export const MIGRATION_LOCK_KEY = 0x6b77_6d67;

/**
 * Applies pending migrations; returns the names applied. Replicas that start together
 * take turns, so the second finds nothing left to do:
 *  - PostgreSQL: each holds a session advisory lock (MIGRATION_LOCK_KEY) on its own
 *    connection while it migrates;
 *  - SQLite: the whole pass (migrations table, check, apply) is one `BEGIN IMMEDIATE`
 *    transaction, which holds the database's write lock; a second process waits for
 *    it (up to SQLITE_MIGRATION_LOCK_WAIT_MS) without blocking its event loop.
 */
export async function migrate(orm: Orm): Promise<string[]> {
  const url = orm.config.get('clientUrl');
  if (typeof url !== 'string' || !/^postgres(ql)?:/.test(url)) return migrateSqlite(orm);
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

function isSqliteBusy(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('SQLITE_BUSY');
}

/** Takes SQLite's write lock by polling `BEGIN IMMEDIATE` (a blocking wait would stall other work in this process). */
async function beginImmediate(orm: Orm): Promise<void> {
  const conn = orm.em.getConnection();
  const deadline = Date.now() + SQLITE_MIGRATION_LOCK_WAIT_MS;
  await conn.execute('pragma busy_timeout = 0');
  try {
    for (let delay = 5; ; delay = Math.min(delay * 2, 100)) {
      try {
        await conn.execute('begin immediate');
        return;
      } catch (e) {
        if (!isSqliteBusy(e) || Date.now() > deadline) throw e;
      }
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  } finally {
    await conn.execute(`pragma busy_timeout = ${SQLITE_BUSY_TIMEOUT_MS}`);
  }
}

async function migrateSqlite(orm: Orm): Promise<string[]> {
  // One connection (the pool holds one for SQLite): everything below runs inside the transaction.
  const conn = orm.em.getConnection();
  await beginImmediate(orm);
  try {
    const applied = (await orm.getMigrator().up()).map((m) => m.name);
    await conn.execute('commit');
    return applied;
  } catch (e) {
    await conn.execute('rollback').catch(() => undefined);
    throw e;
  }
}

/** Names of migrations not yet applied (readiness uses this). */
export async function pendingMigrations(orm: Orm): Promise<string[]> {
  return (await orm.getMigrator().getPendingMigrations()).map((m) => m.name);
}

/**
 * Whether any migration was ever applied to this database, read without writing
 * anything (the migrations table is not created when it is missing).
 */
export async function schemaPresent(orm: Orm, kind: DatabaseConfig['kind']): Promise<boolean> {
  const conn = orm.em.getConnection();
  const firstCell = async (sql: string, column: string): Promise<unknown> => {
    const rows = (await conn.execute(sql)) as unknown as Record<string, unknown>[];
    return rows[0]?.[column];
  };
  const tableExists =
    kind === 'sqlite'
      ? Number(await firstCell(`select count(*) as n from sqlite_master where type = 'table' and name = '${MIGRATIONS_TABLE}'`, 'n')) > 0
      : Boolean(await firstCell(`select to_regclass('${MIGRATIONS_TABLE}')::text as t`, 't'));
  return tableExists && Number(await firstCell(`select count(*) as n from ${MIGRATIONS_TABLE}`, 'n')) > 0;
}
