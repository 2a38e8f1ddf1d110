/**
 * The webhook tables' SQL (the records are in ./webhook-entities.ts).
 *
 * WebhookRepo: KeyAdmin's reads and changes, inside the store's transactions (so each
 * change commits with its audit row).
 *
 * WebhookQueue: the outbox machinery (src/webhooks/ decides the policy). Contract:
 *  - dispatch(): one transaction that locks the cursor row (`FOR UPDATE` on PostgreSQL;
 *    SQLite's BEGIN IMMEDIATE serialises writers), reads the audit rows after it, queues
 *    one delivery per event and subscribed endpoint, and advances the cursor. Replicas
 *    take turns on the cursor, and (webhook, audit row) is unique: each event is queued
 *    once. On PostgreSQL, `LOCK audit_events IN SHARE MODE` first waits for every
 *    transaction still inserting audit rows, so a row with a lower id can never commit
 *    after the cursor passed it.
 *  - claim(): takes due deliveries of active, unpaused endpoints (`FOR UPDATE SKIP
 *    LOCKED` on PostgreSQL) and moves their due time to the end of a lease, in one
 *    transaction: another worker skips them until the lease ends, and a worker that dies
 *    mid-attempt leaves them due again after it (at least once).
 *  - recordAttempt(): the attempt row, the delivery's new state and the endpoint's
 *    failure count in one transaction; a pause is audited in it.
 */
// First: MikroORM is loaded with its AsyncLocalStorage instances recorded (see there).
import { withOrmContext } from './orm-async-context';
import { LockMode, type FilterQuery } from '@mikro-orm/core';
import type { EntityManager } from '@mikro-orm/knex';
import { AuditEventRecord } from './entities';
import type { Orm } from './orm';
import type { PageRequest } from './store';
import { rethrowStoreError } from './store';
import { WebhookAttemptRecord, WebhookCursorRecord, WebhookDeliveryRecord, WebhookRecord } from './webhook-entities';

export class WebhookRepo {
  constructor(
    private readonly em: EntityManager,
    private readonly locking: boolean,
  ) {}
  add(webhook: WebhookRecord): void {
    this.em.persist(webhook);
  }
  get(id: string, forUpdate = false): Promise<WebhookRecord | null> {
    return this.em.findOne(WebhookRecord, { id }, forUpdate && this.locking ? { lockMode: LockMode.PESSIMISTIC_WRITE } : {});
  }
  /** Ascending by id. */
  list(organizationId: string, page: PageRequest): Promise<WebhookRecord[]> {
    const where: FilterQuery<WebhookRecord> = { organizationId };
    if (page.after !== undefined) where.id = { $gt: String(page.after) };
    return this.em.find(WebhookRecord, where, { orderBy: { id: 'asc' }, limit: page.limit });
  }
  /** Deletes the endpoint, its deliveries and their attempts. */
  async remove(webhook: WebhookRecord): Promise<void> {
    await this.em.nativeDelete(WebhookAttemptRecord, { webhookId: webhook.id });
    await this.em.nativeDelete(WebhookDeliveryRecord, { webhookId: webhook.id });
    this.em.remove(webhook);
  }
  /** Newest first (descending id), each with its attempts oldest first. */
  async deliveries(webhookId: string, page: PageRequest): Promise<{ delivery: WebhookDeliveryRecord; attempts: WebhookAttemptRecord[] }[]> {
    const where: FilterQuery<WebhookDeliveryRecord> = { webhookId };
    if (page.after !== undefined) where.id = { $lt: Number(page.after) };
    const rows = await this.em.find(WebhookDeliveryRecord, where, { orderBy: { id: 'desc' }, limit: page.limit });
    const attempts =
      rows.length === 0
        ? []
        : await this.em.find(WebhookAttemptRecord, { deliveryId: { $in: rows.map((d) => Number(d.id)) } }, { orderBy: { id: 'asc' } });
    return rows.map((delivery) => ({ delivery, attempts: attempts.filter((a) => Number(a.deliveryId) === Number(delivery.id)) }));
  }
}

/** One event as the dispatcher queues it: the payload is built by src/webhooks/. */
export interface QueuedEvent {
  eventId: string;
  kind: string;
  payload: string;
}

/** A claimed delivery with what sending it needs. */
export interface ClaimedDelivery {
  delivery: WebhookDeliveryRecord;
  webhook: Pick<WebhookRecord, 'id' | 'url' | 'secretSealed' | 'organizationId'>;
}

/** An attempt's outcome and the policy's decisions about it (src/webhooks/worker.ts). */
export interface AttemptOutcome {
  at: Date;
  statusCode?: number;
  durationMs: number;
  /** undefined: delivered. */
  error?: string;
  /** When to try again after a failure; null: give up (status `failed`). */
  retryAt: Date | null;
  /** Pause the endpoint when its consecutive failures reach this. */
  pauseAfterFailures: number;
}

export interface WebhookQueue {
  /** Queues the events of up to `limit` audit rows after the cursor; returns how many rows were read. */
  dispatch(limit: number, eventOf: (row: AuditEventRecord) => QueuedEvent | undefined, now: Date): Promise<number>;
  claim(now: Date, leaseUntil: Date, limit: number): Promise<ClaimedDelivery[]>;
  /** Records the attempt; returns whether it paused the endpoint. */
  recordAttempt(deliveryId: number, outcome: AttemptOutcome): Promise<{ paused: boolean }>;
}

/** How long dispatch waits for audit writers in flight (PostgreSQL) before trying again on the next tick. */
const DISPATCH_LOCK_TIMEOUT_MS = 2000;

/** The audit actor of what the webhook machinery itself does. */
export const SYSTEM_ACTOR = 'system';

export function createWebhookQueue(orm: Orm, dialect: 'sqlite' | 'postgres'): WebhookQueue {
  const pg = dialect === 'postgres';
  const tx = async <T>(fn: (em: EntityManager) => Promise<T>): Promise<T> => {
    try {
      return await withOrmContext(() => orm.em.fork().transactional((em) => fn(em as EntityManager)));
    } catch (e) {
      return rethrowStoreError(e);
    }
  };
  // Lock-free looks first, so an idle tick takes no lock (and no SQLite write lock).
  // Safe: the cursor only ever passes rows that had committed (see dispatch), so a row
  // not yet visible will have an id above it.
  const newAuditRows = async (): Promise<boolean> => {
    try {
      const em = orm.em.fork();
      const [cursor, newest] = await Promise.all([
        em.findOne(WebhookCursorRecord, { id: 1 }),
        em.find(AuditEventRecord, { id: { $gt: 0 } }, { orderBy: { id: 'desc' }, fields: ['id'], limit: 1 }),
      ]);
      return newest.length > 0 && (!cursor || Number(newest[0]!.id) > Number(cursor.lastAuditId));
    } catch (e) {
      return rethrowStoreError(e);
    }
  };
  const anyDue = async (now: Date): Promise<boolean> => {
    try {
      return (await orm.em.fork().count(WebhookDeliveryRecord, { status: 'pending', nextAttemptAt: { $lte: now } })) > 0;
    } catch (e) {
      return rethrowStoreError(e);
    }
  };
  return {
    dispatch: async (limit, eventOf, now) => {
      if (!(await newAuditRows())) return 0;
      return tx(async (em) => {
        let cursor = await em.findOne(WebhookCursorRecord, { id: 1 }, pg ? { lockMode: LockMode.PESSIMISTIC_WRITE } : {});
        if (!cursor) {
          cursor = Object.assign(new WebhookCursorRecord(), { id: 1, lastAuditId: 0, updatedAt: now });
          em.persist(cursor);
        }
        if (pg) {
          const run = (sql: string) => em.getConnection().execute(sql, [], 'run', em.getTransactionContext());
          // A long audit writer makes this pass fail (and the next retry) rather than queue every audit write behind it.
          await run(`set local lock_timeout = '${DISPATCH_LOCK_TIMEOUT_MS}ms'`);
          await run('lock table audit_events in share mode');
        }
        const rows = await em.find(AuditEventRecord, { id: { $gt: Number(cursor.lastAuditId) } }, { orderBy: { id: 'asc' }, limit });
        if (rows.length === 0) return 0;
        const events = rows.flatMap((row) => {
          const event = row.organizationId ? eventOf(row) : undefined;
          return event ? [{ row, event }] : [];
        });
        if (events.length > 0) {
          const orgs = [...new Set(events.map((e) => e.row.organizationId!))];
          const hooks = await em.find(WebhookRecord, { organizationId: { $in: orgs }, active: true, pausedAt: null });
          for (const { row, event } of events)
            for (const hook of hooks) {
              if (hook.organizationId !== row.organizationId || !hook.events.includes(event.kind)) continue;
              // An endpoint hears of events from its creation on.
              if (hook.createdAt.getTime() > row.at.getTime()) continue;
              em.persist(
                Object.assign(new WebhookDeliveryRecord(), {
                  webhookId: hook.id,
                  organizationId: hook.organizationId,
                  auditEventId: Number(row.id),
                  ...event,
                  status: 'pending',
                  attempts: 0,
                  nextAttemptAt: now,
                  createdAt: now,
                }),
              );
            }
        }
        cursor.lastAuditId = Number(rows[rows.length - 1]!.id);
        cursor.updatedAt = now;
        return rows.length;
      });
    },

    claim: async (now, leaseUntil, limit) => {
      if (!(await anyDue(now))) return [];
      return tx(async (em) => {
        // Only endpoints that send: a subquery, so the number of endpoints does not matter.
        const qb = em
          .createQueryBuilder(WebhookDeliveryRecord)
          .where({ status: 'pending', nextAttemptAt: { $lte: now } })
          .andWhere(`webhook_id in (select id from webhooks where active = ${pg ? 'true' : '1'} and paused_at is null)`)
          .orderBy({ nextAttemptAt: 'asc', id: 'asc' })
          .limit(limit);
        if (pg) qb.setLockMode(LockMode.PESSIMISTIC_PARTIAL_WRITE);
        const due = await qb.getResultList();
        if (due.length === 0) return [];
        const hooks = await em.find(WebhookRecord, { id: { $in: [...new Set(due.map((d) => d.webhookId))] } });
        const byId = new Map(hooks.map((h) => [h.id, h]));
        for (const d of due) d.nextAttemptAt = leaseUntil;
        return due.map((delivery) => ({ delivery, webhook: byId.get(delivery.webhookId)! }));
      });
    },

    recordAttempt: (deliveryId, outcome) =>
      tx(async (em) => {
        const delivery = await em.findOne(WebhookDeliveryRecord, { id: deliveryId });
        // Deleted with its endpoint meanwhile, or already settled by another worker.
        if (!delivery || delivery.status !== 'pending') return { paused: false };
        const hook = await em.findOne(WebhookRecord, { id: delivery.webhookId }, pg ? { lockMode: LockMode.PESSIMISTIC_WRITE } : {});
        em.persist(
          Object.assign(new WebhookAttemptRecord(), {
            deliveryId,
            webhookId: delivery.webhookId,
            at: outcome.at,
            statusCode: outcome.statusCode ?? null,
            durationMs: outcome.durationMs,
            error: outcome.error ?? null,
          }),
        );
        delivery.attempts += 1;
        delivery.lastAttemptAt = outcome.at;
        delivery.lastStatusCode = outcome.statusCode ?? null;
        delivery.lastError = outcome.error ?? null;
        if (outcome.error === undefined) {
          delivery.status = 'delivered';
          delivery.deliveredAt = outcome.at;
        } else if (outcome.retryAt === null) delivery.status = 'failed';
        else delivery.nextAttemptAt = outcome.retryAt;
        if (!hook) return { paused: false };
        if (outcome.error === undefined) {
          hook.consecutiveFailures = 0;
          return { paused: false };
        }
        hook.consecutiveFailures += 1;
        if (hook.pausedAt || hook.consecutiveFailures < outcome.pauseAfterFailures) return { paused: false };
        hook.pausedAt = outcome.at;
        hook.updatedAt = outcome.at;
        em.persist(
          Object.assign(new AuditEventRecord(), {
            at: outcome.at,
            actor: SYSTEM_ACTOR,
            action: 'webhook.paused',
            organizationId: hook.organizationId,
            keyId: null,
            outcome: 'success',
            reason: `webhook=${hook.id} consecutive_failures=${hook.consecutiveFailures} last_error=${outcome.error}`,
            peer: null,
          }),
        );
        return { paused: true };
      }),
  };
}
