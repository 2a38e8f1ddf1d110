/**
 * The quota in Redis (backend `redis`, KEYWARD_REDIS_URL): exact across replicas.
 * Each consume is one Lua script on the key `kw:quota:{<orgId>}:<periodStartMs>`
 * (the braces are a cluster hash tag): if the count is below the limit it is
 * incremented and the key set to expire 35 days after the period ends; the script
 * answers {allowed, count}.
 *
 * Redis failures (KEYWARD_REDIS_FAILURE_MODE, option onFailure):
 *   - `deny`: consume() and used() throw LimiterUnavailableError (the Check answers 503);
 *   - `local`: the request is decided here. The local count of a period is the last
 *     count Redis returned for it plus the requests allowed here during the failure
 *     ("outage" counts). With a database (option db) the decision is also made by an
 *     internal DbSyncedQuotaCounter, so during a Redis outage the replicas still share
 *     their counts through quota_counters (which starts from the count last persisted
 *     from Redis, see below); without one the local count alone decides.
 *     Outage counts are added back to Redis once it answers again: by the next consume
 *     of that period (in the same script, atomically) or by the next flush. So the
 *     requests allowed during an outage are not forgotten by Redis afterwards.
 *   A command that fails on the client but ran on the server (a timeout at the wrong
 *   moment) is then counted twice; that errs on the side of the quota. An own client
 *   never resends a command cut off by a lost connection (ioredis'
 *   autoResendUnfulfilledCommands is off: the request was already decided as failed).
 *   Like the rate limiter, an own client fails fast (no offline queue, a command
 *   timeout), drops a connection that answers nothing for socketTimeoutMs while
 *   commands wait and reconnects in the background (so it returns to Redis by itself),
 *   calls wait for its first connection attempt to settle rather than fall back at
 *   startup, and onError hears of Redis failures once per outage.
 *
 * Persistence (flush(), every sync interval and at close): the Redis counts of the
 * periods consumed here since the last flush are read (MGET) and written into
 * quota_counters as count = max(count, redisCount), so GetQuota and reporting keep the
 * count if Redis loses its data. It is a floor, not a second counter: enforcement
 * stays in Redis (after a Redis data loss Redis counts again from 0 for the rest of
 * the period), and used() answers max(Redis count, stored count).
 */
import Redis from 'ioredis';
import type { Knex } from '@mikro-orm/knex';
import type { Orm } from '../store/orm';
import { billingPeriod } from './billing';
import { withDeadline } from './deadline';
import { DbSyncedQuotaCounter, QuotaTable, type QuotaDialect, type QuotaRow } from './quota-memory';
import { LimiterUnavailableError, type BillingPeriod, type QuotaCounter, type QuotaDecision, type QuotaOrg } from './types';
import { timerScheduler, type Scheduler } from '../util/scheduler';

/** Keys live this long after their period ends (GetQuota of the previous period, late reports). */
export const QUOTA_KEY_GRACE_MS = 35 * 24 * 60 * 60 * 1000;

export function quotaKey(organizationId: string, periodStartMs: number): string {
  return `kw:quota:{${organizationId}}:${periodStartMs}`;
}

/**
 * KEYS[1] the counter; ARGV[1] limit, ARGV[2] expire-at (ms), ARGV[3] requests counted
 * during a Redis failure to add first (0 normally). Returns {allowed 0|1, count}.
 */
const CONSUME_LUA = `
local add = tonumber(ARGV[3])
local c
if add > 0 then
  c = redis.call('INCRBY', KEYS[1], add)
  redis.call('PEXPIREAT', KEYS[1], ARGV[2])
else
  c = tonumber(redis.call('GET', KEYS[1]) or '0')
end
if c < tonumber(ARGV[1]) then
  c = redis.call('INCR', KEYS[1])
  redis.call('PEXPIREAT', KEYS[1], ARGV[2])
  return {1, c}
end
return {0, c}
`;

/** KEYS[1] the counter; ARGV[1] to add, ARGV[2] expire-at (ms). Returns the count. */
const ADD_LUA = `
local c = redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('PEXPIREAT', KEYS[1], ARGV[2])
return c
`;

interface ScriptClient {
  keywardQuotaConsume(key: string, limit: number, expireAtMs: number, add: number): Promise<[number, number]>;
  keywardQuotaAdd(key: string, add: number, expireAtMs: number): Promise<number>;
}

interface Seen {
  organizationId: string;
  startMs: number;
  endMs: number;
  key: string;
  /** The count Redis last answered. */
  redisCount: number;
  /** Allowed here while Redis failed, not yet added to Redis. */
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
  /** The database: persistence of the counts, and the shared fallback in `local` mode. */
  db?: { db: Orm | Knex; dialect: QuotaDialect };
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
  redisErrors: number;
  fallbackDecisions: number;
  persistErrors: number;
}

export class RedisQuotaCounter implements QuotaCounter {
  readonly backend = 'redis' as const;
  readonly syncIntervalMs: number;
  readonly redis: Redis;
  private readonly ownClient: boolean;
  private readonly scripts: ScriptClient;
  private readonly onFailure: 'local' | 'deny';
  private readonly table: QuotaTable | undefined;
  /** The `local` fallback with a database. */
  readonly fallback: DbSyncedQuotaCounter | undefined;
  private readonly idleFlushes: number;
  private readonly onError: (e: unknown) => void;
  private readonly seen = new Map<string, Seen>();
  private cancelTimer: (() => void) | undefined;
  private readonly commandTimeoutMs: number;
  private flushing: Promise<void> | undefined;
  /** Pending while an own client's first connection attempt is under way. */
  private startup: Promise<void> | null = null;
  /** Redis failed and has not answered since (onError once per outage). */
  private failing = false;
  private closed = false;
  private latestNowMs = Number.NEGATIVE_INFINITY;
  private counts = { allowed: 0, denied: 0, redisErrors: 0, fallbackDecisions: 0, persistErrors: 0 };

  constructor(opts: RedisQuotaOptions) {
    this.commandTimeoutMs = opts.commandTimeoutMs ?? 100;
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
    if (typeof opts.redis === 'string') {
      this.ownClient = true;
      const connectTimeout = opts.connectTimeoutMs ?? 1000;
      this.redis = new Redis(opts.redis, {
        enableOfflineQueue: false,
        maxRetriesPerRequest: 1,
        // Calls carry their own stall-tolerant deadline (./deadline); ioredis's is a backstop.
        commandTimeout: Math.max(1000, 10 * this.commandTimeoutMs),
        connectTimeout,
        // A partition leaves the socket open but dead; timed-out commands alone never close it.
        socketTimeout: opts.socketTimeoutMs ?? 1000,
        retryStrategy: (times) => Math.min(100 * 2 ** Math.min(times - 1, 5), 2000),
        connectionName: 'keyward-quota',
        // A command cut off by a lost connection has already been decided here (as failed):
        // resending it after the reconnect would count its request a second time.
        autoResendUnfulfilledCommands: false,
        // disconnect() of a client that never connected waits this long for a socket already closed.
        disconnectTimeout: 200,
      });
      this.redis.on('error', (e: unknown) => this.report(e));
      this.redis.on('ready', () => {
        this.failing = false;
      });
      // Until the first connection attempt settles, commands wait for it rather than fall back.
      this.startup = new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(timer);
          this.redis.off('ready', done);
          this.redis.off('close', done);
          this.startup = null;
          resolve();
        };
        const timer = setTimeout(done, connectTimeout);
        timer.unref();
        this.redis.once('ready', done);
        this.redis.once('close', done);
      });
    } else {
      this.ownClient = false;
      this.redis = opts.redis;
    }
    this.redis.defineCommand('keywardQuotaConsume', { numberOfKeys: 1, lua: CONSUME_LUA });
    this.redis.defineCommand('keywardQuotaAdd', { numberOfKeys: 1, lua: ADD_LUA });
    this.scripts = this.redis as unknown as ScriptClient;
    if (opts.db) {
      this.table = new QuotaTable(opts.db.db, opts.db.dialect);
      if (opts.onFailure === 'local') {
        this.fallback = new DbSyncedQuotaCounter({
          db: opts.db.db,
          dialect: opts.db.dialect,
          syncIntervalMs: opts.syncIntervalMs,
          idleFlushes: opts.idleFlushes,
          onError: this.onError,
        });
      }
    }
  }

  /** Resolves once an own client's first connection attempt has settled (ready, failed or timed out). */
  async ready(): Promise<void> {
    if (this.startup) await this.startup;
  }

  private report(e: unknown): void {
    if (this.failing) return;
    this.failing = true;
    this.onError(e);
  }

  private redisError(e: unknown): void {
    this.counts.redisErrors++;
    this.report(e);
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
    const period = billingPeriod(org.billingAnchorDay, nowMs);
    const s = this.track(org.id, period, nowMs);
    const limit = org.monthlyQuota;
    // Outage counts go with this command; taken now, so concurrent commands do not add them twice.
    const add = s.outage;
    s.outage -= add;
    s.sending += add;
    let res: [number, number];
    try {
      if (this.startup) await this.startup;
      res = await withDeadline(this.scripts.keywardQuotaConsume(s.key, limit, s.endMs + QUOTA_KEY_GRACE_MS, add), this.commandTimeoutMs);
    } catch (e) {
      s.sending -= add;
      s.outage += add;
      return this.failed(e, org, nowMs, s, period);
    }
    s.sending -= add;
    this.failing = false;
    const [ok, count] = res;
    s.redisCount = Number(count);
    s.touched = true;
    const allowed = Number(ok) === 1;
    if (allowed) this.counts.allowed++;
    else this.counts.denied++;
    return { allowed, limit, used: s.redisCount + s.outage + s.sending, period };
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
      if (this.startup) await this.startup;
      const v = await withDeadline(this.redis.get(key), this.commandTimeoutMs);
      redisCount = v === null ? 0 : Number(v);
      this.failing = false;
    } catch (e) {
      this.redisError(e);
      if (this.onFailure === 'deny') throw new LimiterUnavailableError(e);
      const local = (s?.redisCount ?? 0) + outage;
      if (!this.fallback) return { used: local, period };
      const f = await this.fallback.used(org, nowMs);
      return { used: Math.max(f.used, local), period };
    }
    let used = redisCount + outage;
    if (this.table) {
      try {
        used = Math.max(used, await this.table.readOne(org.id, startMs));
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
    if (this.startup) await this.startup;
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
        s.redisCount = Number(
          await withDeadline(this.scripts.keywardQuotaAdd(s.key, add, s.endMs + QUOTA_KEY_GRACE_MS), this.commandTimeoutMs),
        );
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
    if (this.table) {
      const touched = [...this.seen.values()].filter((s) => s.touched);
      // Cleared now: a consume during this persist marks its period again for the next one.
      for (const s of touched) s.touched = false;
      if (touched.length) {
        try {
          const values = await withDeadline(this.redis.mget(touched.map((s) => s.key)), this.commandTimeoutMs);
          const rows: QuotaRow[] = [];
          touched.forEach((s, i) => {
            const v = values[i];
            if (v !== null && v !== undefined) rows.push({ organizationId: s.organizationId, startMs: s.startMs, count: Number(v) });
          });
          const table = this.table;
          if (rows.length) await table.transaction((trx) => table.raiseTo(trx, rows));
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
    if (this.ownClient) {
      if (this.redis.status === 'ready') await this.redis.quit().catch(() => this.redis.disconnect());
      else this.redis.disconnect();
    }
  }

  stats(): RedisQuotaStats {
    return { backend: 'redis', trackedPeriods: this.seen.size, ...this.counts };
  }
}
