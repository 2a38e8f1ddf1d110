/**
 * The quota in Redis (backend `redis`, KEYWARD_REDIS_URL): exact across replicas, with
 * quota_counters as a persisted floor and, in `local` failure mode, as the shared fallback.
 */
import type Redis from 'ioredis';
import { RedisConnection } from '../redis/client';
import { billingPeriod, billingPeriodShared } from './billing';
import { timerScheduler, type Scheduler } from '../util/scheduler';
import { DbSyncedQuotaCounter } from './quota-memory';
import { defineQuotaScripts, QUOTA_KEY_GRACE_MS, quotaConsumeBatcher, quotaKey, type QuotaScripts } from './quota-redis-scripts';
import {
  LimiterUnavailableError,
  type BillingPeriod,
  type QuotaCounter,
  type QuotaDecision,
  type QuotaOrg,
  type QuotaRow,
  type QuotaStore,
} from './types';

export { QUOTA_KEY_GRACE_MS, quotaKey } from './quota-redis-scripts';

interface Seen {
  organizationId: string;
  startMs: number;
  endMs: number;
  key: string;
  /** The count Redis last answered. */
  redisCount: number;
  /** Allowed here and not yet added to Redis: while Redis failed, or counted by count() (no quota). */
  outage: number;
  /** Outage counts being added to Redis by a command in flight (taken from `outage`). */
  sending: number;
  /** Consumed since the last persist. */
  touched: boolean;
  idleFlushes: number;
}

export interface RedisQuotaOptions {
  /**
   * A URL (redis:// or rediss://): the counter makes its own client, which fails fast
   * (no offline queue, commandTimeoutMs) and is closed by close(). Or a client to
   * share, left open by close().
   */
  redis: string | Redis;
  onFailure: 'local' | 'deny';
  /** quota_counters: persistence of the counts, and the shared fallback in `local` mode. */
  store?: QuotaStore;
  /** The default interval of start() (KEYWARD_QUOTA_SYNC_SECONDS × 1000). */
  syncIntervalMs: number;
  /** Per command, for an own client. Default 100 ms (as the rate limiter). */
  commandTimeoutMs?: number;
  /** For an own client. Default 1000 ms. */
  connectTimeoutMs?: number;
  /** For an own client: no byte from Redis for this long while commands wait drops and reopens the connection. Default 1000 ms. */
  socketTimeoutMs?: number;
  /** A period not consumed for this many flushes is forgotten here. Default 12. */
  idleFlushes?: number;
  /** Failed background flushes and database reads; Redis errors once per outage. */
  onError?: (e: unknown) => void;
}

export interface RedisQuotaStats {
  backend: 'redis';
  trackedPeriods: number;
  allowed: number;
  denied: number;
  /** Requests of organizations without a quota, counted by count(). */
  counted: number;
  redisErrors: number;
  fallbackDecisions: number;
  persistErrors: number;
}

/**
 * Contract:
 *  - consume() is one Lua script (./quota-redis-scripts) on `kw:quota:{<orgId>}:<periodStartMs>`:
 *    incremented if below the limit, expiring QUOTA_KEY_GRACE_MS after the period ends.
 *    The consumes of one event-loop turn share one script call and round trip
 *    (../redis/batch), each decided in order as if alone.
 *  - Redis failures (onFailure = KEYWARD_REDIS_FAILURE_MODE): `deny` throws
 *    LimiterUnavailableError from consume() and used() (the Check answers 503); `local`
 *    decides here on the last Redis count plus the requests allowed during the failure
 *    ("outage" counts), and, with a store, also through an internal DbSyncedQuotaCounter
 *    so replicas share their outage counts. Outage counts go back to Redis once it
 *    answers: with the next consume of the period (atomically, in its script) or the
 *    next flush. A command that ran on Redis but failed here counts twice (on the side
 *    of the quota). The connection policy is ../redis/client's.
 *  - count() (an organization without a quota) adds to the outage counts, with no
 *    command: they reach Redis with the next flush (or consume) like outage counts.
 *  - seed() sets the Redis count to max(count + this period's outage counts, used) in
 *    one script (the next flush persists it); Redis failing rejects
 *    (LimiterUnavailableError) and keeps the outage counts.
 *  - flush() (every interval, at close; concurrent calls share one run) adds outage
 *    counts back, writes the Redis counts of the periods consumed since the last flush
 *    into quota_counters as max(stored, Redis) — a floor, so reporting survives a Redis
 *    data loss while enforcement stays in Redis — and flushes the fallback. It rejects
 *    with the first error after trying every step. used() answers max(Redis, stored).
 */
export class RedisQuotaCounter implements QuotaCounter {
  readonly backend = 'redis' as const;
  readonly syncIntervalMs: number;
  readonly redis: Redis;
  private readonly connection: RedisConnection;
  private readonly scripts: QuotaScripts;
  /** The consumes of one event-loop turn, one script call. */
  private readonly consumeBatch: ReturnType<typeof quotaConsumeBatcher>;
  private readonly onFailure: 'local' | 'deny';
  private readonly store: QuotaStore | undefined;
  /** The `local` fallback with a database. */
  readonly fallback: DbSyncedQuotaCounter | undefined;
  private readonly idleFlushes: number;
  private readonly onError: (e: unknown) => void;
  private readonly seen = new Map<string, Seen>();
  private cancelTimer: (() => void) | undefined;
  private flushing: Promise<void> | undefined;
  private closed = false;
  private latestNowMs = Number.NEGATIVE_INFINITY;
  private counts = { allowed: 0, denied: 0, counted: 0, fallbackDecisions: 0, persistErrors: 0 };

  constructor(opts: RedisQuotaOptions) {
    this.onFailure = opts.onFailure;
    this.syncIntervalMs = opts.syncIntervalMs;
    this.idleFlushes = opts.idleFlushes ?? 12;
    const onError = opts.onError ?? (() => undefined);
    this.onError = (e) => {
      try {
        onError(e);
      } catch {
        // A logger that throws must not take the counter down.
      }
    };
    this.connection =
      typeof opts.redis === 'string'
        ? RedisConnection.open({
            url: opts.redis,
            connectionName: 'keyward-quota',
            commandTimeoutMs: opts.commandTimeoutMs,
            connectTimeoutMs: opts.connectTimeoutMs,
            socketTimeoutMs: opts.socketTimeoutMs,
            onError: this.onError,
          })
        : RedisConnection.wrap(opts.redis, { commandTimeoutMs: opts.commandTimeoutMs, onError: this.onError });
    this.redis = this.connection.client;
    this.scripts = defineQuotaScripts(this.redis);
    this.consumeBatch = quotaConsumeBatcher(this.connection, this.scripts);
    this.store = opts.store;
    if (opts.store && opts.onFailure === 'local') {
      this.fallback = new DbSyncedQuotaCounter({
        store: opts.store,
        syncIntervalMs: opts.syncIntervalMs,
        idleFlushes: opts.idleFlushes,
        onError: this.onError,
      });
    }
  }

  /** Resolves once an own client's first connection attempt has settled (ready, failed or timed out). */
  ready(): Promise<void> {
    return this.connection.ready();
  }

  private redisError(e: unknown): void {
    this.connection.failures.failed(e);
  }

  private track(organizationId: string, period: BillingPeriod, nowMs: number): Seen {
    if (nowMs > this.latestNowMs) this.latestNowMs = nowMs;
    const startMs = period.start.getTime();
    const key = quotaKey(organizationId, startMs);
    let s = this.seen.get(key);
    if (!s) {
      s = {
        organizationId,
        startMs,
        endMs: period.end.getTime(),
        key,
        redisCount: 0,
        outage: 0,
        sending: 0,
        touched: false,
        idleFlushes: 0,
      };
      this.seen.set(key, s);
    }
    s.idleFlushes = 0;
    return s;
  }

  async consume(org: QuotaOrg, nowMs: number): Promise<QuotaDecision> {
    const period = billingPeriodShared(org.billingAnchorDay, nowMs);
    const s = this.track(org.id, period, nowMs);
    const limit = org.monthlyQuota;
    // Outage counts go with this command; taken now, so concurrent commands do not add them twice.
    const add = s.outage;
    s.outage -= add;
    s.sending += add;
    let res: [number, number];
    try {
      res = await this.consumeBatch.run({ key: s.key, limit, expireAt: s.endMs + QUOTA_KEY_GRACE_MS, add });
    } catch (e) {
      s.sending -= add;
      s.outage += add;
      return this.failed(e, org, nowMs, s, period);
    }
    s.sending -= add;
    this.connection.failures.succeeded();
    const [ok, count] = res;
    s.redisCount = Number(count);
    s.touched = true;
    const allowed = Number(ok) === 1;
    if (allowed) this.counts.allowed++;
    else this.counts.denied++;
    return { allowed, limit, used: s.redisCount + s.outage + s.sending, period };
  }

  count(org: QuotaOrg, nowMs: number): void {
    const s = this.track(org.id, billingPeriodShared(org.billingAnchorDay, nowMs), nowMs);
    s.outage++;
    this.counts.counted++;
  }

  async seed(org: QuotaOrg, nowMs: number, used: number): Promise<void> {
    const s = this.track(org.id, billingPeriod(org.billingAnchorDay, nowMs), nowMs);
    // This replica's unsent counts go in the same script, so the max does not count them twice.
    const add = s.outage;
    s.outage -= add;
    s.sending += add;
    try {
      const expireAt = s.endMs + QUOTA_KEY_GRACE_MS;
      s.redisCount = Number(await this.connection.call(() => this.scripts.keywardQuotaRaise(s.key, used, expireAt, add)));
    } catch (e) {
      s.outage += add;
      this.redisError(e);
      throw new LimiterUnavailableError(e);
    } finally {
      s.sending -= add;
    }
    this.connection.failures.succeeded();
    // Persisted (as a floor) by the next flush.
    s.touched = true;
  }

  private async failed(e: unknown, org: QuotaOrg, nowMs: number, s: Seen, period: BillingPeriod): Promise<QuotaDecision> {
    this.redisError(e);
    if (this.onFailure === 'deny') throw new LimiterUnavailableError(e);
    this.counts.fallbackDecisions++;
    // Kept (or put back, if a flush forgot it meanwhile): its outage counts must reach Redis.
    if (!this.seen.has(s.key)) this.seen.set(s.key, s);
    const limit = org.monthlyQuota;
    const local = s.redisCount + s.outage + s.sending;
    // Denied on what this replica knows: the fallback counter does not spend.
    if (local >= limit) {
      this.counts.denied++;
      return { allowed: false, limit, used: local, period };
    }
    if (this.fallback) {
      const d = await this.fallback.consume(org, nowMs);
      if (!d.allowed) {
        this.counts.denied++;
        return { allowed: false, limit, used: Math.max(d.used, local), period };
      }
      s.outage++;
      this.counts.allowed++;
      return { allowed: true, limit, used: Math.max(d.used, local + 1), period };
    }
    s.outage++;
    this.counts.allowed++;
    return { allowed: true, limit, used: local + 1, period };
  }

  /** max(the Redis count + outage counts not yet in Redis, the count persisted in the database). */
  async used(org: QuotaOrg, nowMs: number): Promise<{ used: number; period: BillingPeriod }> {
    const period = billingPeriod(org.billingAnchorDay, nowMs);
    const startMs = period.start.getTime();
    const key = quotaKey(org.id, startMs);
    const s = this.seen.get(key);
    const outage = (s?.outage ?? 0) + (s?.sending ?? 0);
    let redisCount: number;
    try {
      const v = await this.connection.call((client) => client.get(key));
      redisCount = v === null ? 0 : Number(v);
      this.connection.failures.succeeded();
    } catch (e) {
      this.redisError(e);
      if (this.onFailure === 'deny') throw new LimiterUnavailableError(e);
      const local = (s?.redisCount ?? 0) + outage;
      if (!this.fallback) return { used: local, period };
      const f = await this.fallback.used(org, nowMs);
      return { used: Math.max(f.used, local), period };
    }
    let used = redisCount + outage;
    if (this.store) {
      try {
        used = Math.max(used, await this.store.count(org.id, startMs));
      } catch (e) {
        // Redis answered; the stored copy is only a floor.
        this.onError(e);
      }
    }
    return { used, period };
  }

  /**
   * Adds outage counts back to Redis, persists the counts of the periods consumed
   * since the last flush into quota_counters, and flushes the database fallback.
   * Rejects with the first error after trying every step; what failed is retried by
   * the next flush. Concurrent calls share one run.
   */
  flush(): Promise<void> {
    if (!this.flushing) {
      this.flushing = this.sync().finally(() => {
        this.flushing = undefined;
      });
    }
    return this.flushing;
  }

  private async sync(): Promise<void> {
    await this.connection.ready();
    const errors: unknown[] = [];
    // Forget ended and idle periods with nothing left to do.
    for (const [k, s] of this.seen) {
      if (s.outage === 0 && s.sending === 0 && !s.touched && (s.endMs <= this.latestNowMs || s.idleFlushes >= this.idleFlushes))
        this.seen.delete(k);
      else s.idleFlushes++;
    }
    // 1. Outage counts back into Redis.
    for (const s of this.seen.values()) {
      if (s.outage === 0) continue;
      const add = s.outage;
      s.outage -= add;
      s.sending += add;
      try {
        s.redisCount = Number(await this.connection.call(() => this.scripts.keywardQuotaAdd(s.key, add, s.endMs + QUOTA_KEY_GRACE_MS)));
        s.sending -= add;
        s.touched = true;
      } catch (e) {
        s.sending -= add;
        s.outage += add;
        this.redisError(e);
        errors.push(e);
        break;
      }
    }
    // 2. Redis counts into the database.
    if (this.store) {
      const store = this.store;
      const touched = [...this.seen.values()].filter((s) => s.touched);
      // Cleared now: a consume during this persist marks its period again for the next one.
      for (const s of touched) s.touched = false;
      if (touched.length) {
        try {
          const values = await this.connection.call((client) => client.mget(touched.map((s) => s.key)));
          const rows: QuotaRow[] = [];
          touched.forEach((s, i) => {
            const v = values[i];
            if (v !== null && v !== undefined) rows.push({ organizationId: s.organizationId, startMs: s.startMs, count: Number(v) });
          });
          if (rows.length) await store.raiseTo(rows);
        } catch (e) {
          for (const s of touched) s.touched = true;
          this.counts.persistErrors++;
          errors.push(e);
        }
      }
    }
    // 3. The fallback's own sync (its counts from an outage, and its view of the others').
    if (this.fallback) {
      try {
        await this.fallback.flush();
      } catch (e) {
        errors.push(e);
      }
    }
    if (errors.length) throw errors[0];
  }

  /** Flushes every intervalMs (default syncIntervalMs) on `scheduler` (default: unref()ed timers). */
  start(intervalMs: number = this.syncIntervalMs, scheduler: Scheduler = timerScheduler): void {
    this.stop();
    this.cancelTimer = scheduler.every('quota-sync', intervalMs, () => {
      if (!this.flushing) this.flush().catch(this.onError);
    });
  }

  stop(): void {
    this.cancelTimer?.();
    this.cancelTimer = undefined;
  }

  /** Stops the timer, flushes (a failure goes to onError), and closes an own client. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.stop();
    // A flush in flight may have started before the last counts: one more after it.
    if (this.flushing) await this.flushing.catch(() => undefined);
    await this.flush().catch(this.onError);
    if (this.fallback) await this.fallback.close();
    await this.connection.close();
  }

  stats(): RedisQuotaStats {
    return { backend: 'redis', trackedPeriods: this.seen.size, ...this.counts, redisErrors: this.connection.failures.errors };
  }
}
