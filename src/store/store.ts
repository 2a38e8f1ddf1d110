/**
 * The store: the narrow interface the control plane (and later the data plane) uses
 * to reach the database, chosen once at start (SQLite or PostgreSQL behind MikroORM).
 *
 * Contract:
 *  - transaction(fn) runs fn in one database transaction; everything fn writes,
 *    including audit rows, commits together or not at all.
 *  - read(fn) runs fn on a fresh unit of work without a transaction.
 *  - A database that cannot be reached surfaces as StoreUnavailableError
 *    (code store_unavailable); any other database failure is rethrown as is
 *    (and reported as `internal`, with no detail).
 */
// First: MikroORM is loaded with its AsyncLocalStorage instances recorded (see there).
import { withOrmContext } from './orm-async-context';
import { ConnectionException, LockMode, type FilterQuery } from '@mikro-orm/core';
import type { EntityManager } from '@mikro-orm/knex';
import { StoreUnavailableError } from '../errors/domain';
import { AdminRequestRecord, AdminTokenRecord, ApiKeyRecord, AuditEventRecord, OrganizationRecord } from './entities';
import type { Orm } from './orm';
import { WebhookRepo } from './webhooks';

export interface PageRequest {
  /** Return rows strictly after (ascending) or before (descending) this cursor. */
  after?: string | number;
  limit: number;
}

export interface AuditFilter {
  organizationId?: string;
  keyId?: string;
  action?: string;
  /** Inclusive. */
  from?: Date;
  /** Exclusive. */
  to?: Date;
}

/** An audit row to append; occurrences default to 1. */
export type NewAuditEvent = Omit<AuditEventRecord, 'id' | 'occurrences'> & { occurrences?: number };

export class OrganizationRepo {
  constructor(
    private readonly em: EntityManager,
    /** Row locks exist on PostgreSQL; SQLite serializes writers instead. */
    private readonly locking: boolean,
  ) {}
  add(org: OrganizationRecord): void {
    this.em.persist(org);
  }
  get(id: string): Promise<OrganizationRecord | null> {
    return this.em.findOne(OrganizationRecord, { id });
  }
  /** Reads and locks the row until the transaction ends (PostgreSQL; SQLite serializes writers). */
  getForUpdate(id: string): Promise<OrganizationRecord | null> {
    return this.em.findOne(OrganizationRecord, { id }, this.locking ? { lockMode: LockMode.PESSIMISTIC_WRITE } : {});
  }
  /** Ascending by id; deleted organizations only with includeDeleted. */
  list(page: PageRequest, includeDeleted = false): Promise<OrganizationRecord[]> {
    const where: FilterQuery<OrganizationRecord> = {};
    if (!includeDeleted) where.deletedAt = null;
    if (page.after !== undefined) where.id = { $gt: String(page.after) };
    return this.em.find(OrganizationRecord, where, { orderBy: { id: 'asc' }, limit: page.limit });
  }
}

export class KeyRepo {
  constructor(private readonly em: EntityManager) {}
  add(key: ApiKeyRecord): void {
    this.em.persist(key);
  }
  get(id: string): Promise<ApiKeyRecord | null> {
    return this.em.findOne(ApiKeyRecord, { id });
  }
  /** The lookup of the data plane and of admin-key authentication: by keyed hash only. */
  findByHash(keyHash: string): Promise<ApiKeyRecord | null> {
    return this.em.findOne(ApiKeyRecord, { keyHash });
  }
  /** Keys that can still be used at `now`: not revoked and not expired. */
  countUsable(organizationId: string, now: Date): Promise<number> {
    return this.em.count(ApiKeyRecord, {
      organizationId,
      revokedAt: null,
      $or: [{ expiresAt: null }, { expiresAt: { $gt: now } }],
    });
  }
  /** Every key of the organization that is not revoked (managed: changes are written at commit). */
  listUnrevoked(organizationId: string): Promise<ApiKeyRecord[]> {
    return this.em.find(ApiKeyRecord, { organizationId, revokedAt: null }, { orderBy: { id: 'asc' } });
  }
  /** Ascending by id. */
  list(organizationId: string, includeRevoked: boolean, page: PageRequest): Promise<ApiKeyRecord[]> {
    const where: FilterQuery<ApiKeyRecord> = { organizationId };
    if (!includeRevoked) where.revokedAt = null;
    if (page.after !== undefined) where.id = { $gt: String(page.after) };
    return this.em.find(ApiKeyRecord, where, { orderBy: { id: 'asc' }, limit: page.limit });
  }
}

export class AuditRepo {
  constructor(private readonly em: EntityManager) {}
  /** Appends a row; it is written when the surrounding transaction commits. */
  append(event: NewAuditEvent): void {
    this.em.persist(Object.assign(new AuditEventRecord(), { occurrences: 1 }, event));
  }
  /** Newest first (descending id). */
  list(filter: AuditFilter, page: PageRequest): Promise<AuditEventRecord[]> {
    const where: FilterQuery<AuditEventRecord> = {};
    if (filter.organizationId) where.organizationId = filter.organizationId;
    if (filter.keyId) where.keyId = filter.keyId;
    if (filter.action) where.action = filter.action;
    if (filter.from || filter.to) {
      where.at = {};
      if (filter.from) where.at.$gte = filter.from;
      if (filter.to) where.at.$lt = filter.to;
    }
    if (page.after !== undefined) where.id = { $lt: Number(page.after) };
    return this.em.find(AuditEventRecord, where, { orderBy: { id: 'desc' }, limit: page.limit });
  }
}

export class AdminTokenRepo {
  constructor(private readonly em: EntityManager) {}
  all(): Promise<AdminTokenRecord[]> {
    return this.em.find(AdminTokenRecord, {}, { orderBy: { createdAt: 'asc' } });
  }
  add(token: AdminTokenRecord): void {
    this.em.persist(token);
  }
  remove(token: AdminTokenRecord): void {
    this.em.remove(token);
  }
  /** Rewrites a token's hash made with a previous secret; the number of rows changed (0 if already done). */
  rehash(fromHash: string, toHash: string, hashSecretId: string): Promise<number> {
    return this.em.nativeUpdate(AdminTokenRecord, { tokenHash: fromHash }, { tokenHash: toHash, hashSecretId });
  }
}

/**
 * Remembered retry-safe KeyAdmin calls (src/admin/requests.ts). claim() writes at once,
 * inside the transaction: a concurrent claim of the same (caller, requestId) waits for
 * it (PostgreSQL) or runs after it (SQLite) and then fails with a unique violation.
 */
export class AdminRequestRepo {
  constructor(private readonly em: EntityManager) {}
  /** Read past the identity map: the row claim() writes next must not meet a managed copy of the old one. */
  get(caller: string, requestId: string): Promise<AdminRequestRecord | null> {
    return this.em.findOne(AdminRequestRecord, { caller, requestId }, { disableIdentityMap: true });
  }
  async claim(record: AdminRequestRecord): Promise<void> {
    await this.em.insert(AdminRequestRecord, { ...record });
  }
  /** Stores the response of a claimed call. */
  async complete(caller: string, requestId: string, response: string, sealedSecret: string | null): Promise<void> {
    await this.em.nativeUpdate(AdminRequestRecord, { caller, requestId }, { response, sealedSecret });
  }
  /** Deletes the records made at or before `cutoff` (of one caller and request id, or all); the number deleted. */
  removeBefore(cutoff: Date, only?: { caller: string; requestId: string }): Promise<number> {
    return this.em.nativeDelete(AdminRequestRecord, { ...only, createdAt: { $lte: cutoff } });
  }
}

export interface Repos {
  orgs: OrganizationRepo;
  keys: KeyRepo;
  audit: AuditRepo;
  adminTokens: AdminTokenRepo;
  adminRequests: AdminRequestRepo;
  webhooks: WebhookRepo;
  /**
   * Announces a change to every keyward process sharing the database: on PostgreSQL a
   * NOTIFY on CHANGES_CHANNEL, delivered only if the transaction commits; nothing on
   * SQLite (one process). The payload holds ids only, never a hash.
   */
  announce(payload: string): Promise<void>;
}

/** The PostgreSQL channel on which KeyAdmin changes are announced. */
export const CHANGES_CHANNEL = 'keyward_changes';

export interface Store {
  readonly dialect: 'sqlite' | 'postgres';
  transaction<T>(fn: (r: Repos) => Promise<T>): Promise<T>;
  read<T>(fn: (r: Repos) => Promise<T>): Promise<T>;
  /** Succeeds when the database answers. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

function repos(em: EntityManager, locking: boolean): Repos {
  return {
    announce: locking
      ? async (payload) => {
          await em.getConnection().execute('select pg_notify(?, ?)', [CHANGES_CHANNEL, payload], 'run', em.getTransactionContext());
        }
      : () => Promise.resolve(),
    orgs: new OrganizationRepo(em, locking),
    keys: new KeyRepo(em),
    audit: new AuditRepo(em),
    adminTokens: new AdminTokenRepo(em),
    adminRequests: new AdminRequestRepo(em),
    webhooks: new WebhookRepo(em, locking),
  };
}

const UNREACHABLE = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EHOSTUNREACH',
  '57P01',
  '57P03',
  '08006',
  '08001',
  '08003',
  '08004',
  'SQLITE_BUSY',
  'SQLITE_CANTOPEN',
  'SQLITE_IOERR',
]);

/** True for failures that mean "the database cannot be reached now". */
export function isUnavailable(e: unknown): boolean {
  if (e instanceof ConnectionException) return true;
  const err = e as { code?: unknown; message?: unknown } | null;
  if (!err || typeof err !== 'object') return false;
  if (typeof err.code === 'string' && UNREACHABLE.has(err.code)) return true;
  const msg = typeof err.message === 'string' ? err.message : '';
  return /Connection terminated|Connection ended unexpectedly|connect ECONNREFUSED|timeout exceeded when trying to connect|Knex: Timeout acquiring a connection|is not currently accepting connections|is not accepting connections|the database system is (starting up|shutting down)/i.test(
    msg,
  );
}

/** Rethrows a failure: store_unavailable when the database cannot be reached, else as is. */
export function rethrowStoreError(e: unknown): never {
  if (isUnavailable(e)) throw new StoreUnavailableError(e);
  throw e;
}

export function createStore(orm: Orm, dialect: 'sqlite' | 'postgres'): Store {
  const locking = dialect === 'postgres';
  return {
    dialect,
    async transaction(fn) {
      try {
        return await withOrmContext(() => orm.em.fork().transactional((em) => fn(repos(em as EntityManager, locking))));
      } catch (e) {
        return rethrowStoreError(e);
      }
    },
    async read(fn) {
      try {
        return await fn(repos(orm.em.fork() as EntityManager, locking));
      } catch (e) {
        return rethrowStoreError(e);
      }
    },
    async ping() {
      try {
        await orm.em.getConnection().execute('select 1');
      } catch (e) {
        rethrowStoreError(e);
      }
    },
    close: () => orm.close(true),
  };
}
