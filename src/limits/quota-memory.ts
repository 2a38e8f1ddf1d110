/**
 * The quota without Redis (backend `memory`): counted in memory on each replica and
 * synced through quota_counters every KEYWARD_QUOTA_SYNC_SECONDS, with no database
 * round trip on the hot path once a period is known here.
 */
import { rethrowStoreError } from '../store/store';
import { billingPeriod, billingPeriodShared } from './billing';
import { timerScheduler, type Scheduler } from '../util/scheduler';
import type { BillingPeriod, QuotaCounter, QuotaDecision, QuotaOrg, QuotaRow, QuotaStore } from './types';

function rowKey(organizationId: string, startMs: number): string {
  return `${startMs}:${organizationId}`;
}

/** A chain of async work run one at a time; when idle, fn starts synchronously. */
class Serial {
  private tail: Promise<unknown> = Promise.resolve();
  private queued = 0;
  get busy(): boolean {
    return this.queued > 0;
  }
  run<T>(fn: () => Promise<T>): Promise<T> {
    const started = this.queued === 0 ? fn() : this.tail.then(fn);
    this.queued++;
    const p = started.finally(() => {
      this.queued--;
    });
    this.tail = p.catch(() => undefined);
    return p;
  }
}

interface Entry {
  organizationId: string;
  startMs: number;
  endMs: number;
  /** The period's count last read from the database. */
  base: number;
  /** Allowed here since the last successful flush. */
  pending: number;
  /** False while base is 0 only because the first load failed, or was never read (count() only). */
  loaded: boolean;
  /** consume() may decide on base: it was read (or its read failed: fail-open). False for a period only count()ed so far. */
  checked: boolean;
  /** Some consume() used it: kept, and re-read by flushes, while recently used. */
  enforced: boolean;
  /** Flushes since the last consume. */
  idleFlushes: number;
  /** Removed from `entries` by a flush (and not put back): the per-organization memo must not use it. */
  dropped?: boolean;
}

export interface DbSyncedQuotaOptions {
  /** quota_counters (src/store/quota-counters.ts). */
  store: QuotaStore;
  /** KEYWARD_QUOTA_SYNC_SECONDS × 1000: the default interval of start(). */
  syncIntervalMs: number;
  /**
   * A period not consumed for this many flushes is dropped from memory (and reloaded
   * by its next consume) instead of being re-read at every flush. Default 12.
   */
  idleFlushes?: number;
  /** Failed background flushes and failed loads (the counter goes on). */
  onError?: (e: unknown) => void;
}

export interface DbSyncedQuotaStats {
  backend: 'memory';
  /** (organization, period) entries in memory. */
  trackedPeriods: number;
  /** Requests counted here and not yet in the database. */
  pending: number;
  allowed: number;
  denied: number;
  /** Requests of organizations without a quota, counted by count(). */
  counted: number;
  syncErrors: number;
  loadErrors: number;
}

/**
 * Contract:
 *  - Per (organization, period) a replica keeps `base` (the stored count, last read)
 *    and `pending` (allowed here since the last successful flush). consume() allows iff
 *    base + pending < limit, then pending += 1, synchronously once the period is known;
 *    the first consume of a period loads base (one read shared by concurrent callers).
 *  - flush() is ONE QuotaStore.sync transaction: pending counts are added (the new
 *    totals become base), periods used in the last `idleFlushes` flushes are re-read;
 *    idle and ended periods with nothing pending are dropped from memory. Memory changes
 *    only after the commit; a failed flush changes nothing, so no request is lost or
 *    counted twice (except a connection lost while COMMIT is in flight: one batch may
 *    count twice, erring on the side of the quota). flush() and used() run one at a time.
 *  - count() (an organization without a quota) adds to pending synchronously without
 *    reading base; such a period is read by its first consume(), and dropped from memory
 *    at the first flush that leaves it with nothing pending.
 *  - seed() runs one flush, then raises the stored count to at least `used` and reads it
 *    back as base (pending counted since stays on top), in the flush chain.
 *  - A failed first load is fail-open: the period counts here from 0 (loadErrors,
 *    onError) until a flush brings the true total; consume() never throws for the
 *    database, used() rethrows (StoreUnavailableError when unreachable).
 *  - Overshoot: none with one replica. With N replicas, at most (N − 1) × the requests a
 *    replica allows per staleness window (one interval, up to two when the timers are
 *    out of phase), and never more than (N − 1) × limit. A crash loses at most one
 *    interval of the replica's counts (under-counting); close() flushes.
 */
export class DbSyncedQuotaCounter implements QuotaCounter {
  readonly backend = 'memory' as const;
  readonly syncIntervalMs: number;
  private readonly store: QuotaStore;
  private readonly idleFlushes: number;
  private readonly onError: (e: unknown) => void;
  private readonly entries = new Map<string, Entry>();
  /** Per organization, the entry it used last: the hot path finds it without building a row key. */
  private readonly lastByOrg = new Map<string, Entry>();
  private readonly loading = new Map<string, Promise<Entry>>();
  private readonly serial = new Serial();
  private cancelTimer: (() => void) | undefined;
  /** The latest time seen by consume/used: periods ending before it are over. */
  private latestNowMs = Number.NEGATIVE_INFINITY;
  private counts = { allowed: 0, denied: 0, counted: 0, syncErrors: 0, loadErrors: 0 };

  constructor(opts: DbSyncedQuotaOptions) {
    this.store = opts.store;
    this.syncIntervalMs = opts.syncIntervalMs;
    this.idleFlushes = opts.idleFlushes ?? 12;
    this.onError = opts.onError ?? (() => undefined);
  }

  consume(org: QuotaOrg, nowMs: number): QuotaDecision | Promise<QuotaDecision> {
    const period = billingPeriodShared(org.billingAnchorDay, nowMs);
    this.see(nowMs);
    const startMs = period.start.getTime();
    const known = this.entryOf(org.id, startMs);
    if (known?.checked) return this.decide(known, org.monthlyQuota, period);
    return this.load(rowKey(org.id, startMs), org.id, period).then((e) => this.decide(e, org.monthlyQuota, period));
  }

  /** The entry of (organization, period) in `entries`, if any; through the per-organization memo first. */
  private entryOf(organizationId: string, startMs: number): Entry | undefined {
    const last = this.lastByOrg.get(organizationId);
    if (last !== undefined && last.startMs === startMs && last.dropped !== true) return last;
    const e = this.entries.get(rowKey(organizationId, startMs));
    if (e) this.lastByOrg.set(organizationId, e);
    return e;
  }

  private decide(e: Entry, limit: number, period: BillingPeriod): QuotaDecision {
    e.idleFlushes = 0;
    e.enforced = true;
    const allowed = e.base + e.pending < limit;
    if (allowed) {
      e.pending++;
      this.counts.allowed++;
    } else {
      this.counts.denied++;
    }
    return { allowed, limit, used: e.base + e.pending, period };
  }

  count(org: QuotaOrg, nowMs: number): void {
    const period = billingPeriodShared(org.billingAnchorDay, nowMs);
    this.see(nowMs);
    const startMs = period.start.getTime();
    let e = this.entryOf(org.id, startMs);
    if (!e) {
      e = {
        organizationId: org.id,
        startMs,
        endMs: period.end.getTime(),
        base: 0,
        pending: 0,
        loaded: false,
        checked: false,
        enforced: false,
        idleFlushes: 0,
      };
      this.entries.set(rowKey(org.id, startMs), e);
      this.lastByOrg.set(org.id, e);
    }
    e.pending++;
    this.counts.counted++;
  }

  seed(org: QuotaOrg, nowMs: number, used: number): Promise<void> {
    const period = billingPeriod(org.billingAnchorDay, nowMs);
    this.see(nowMs);
    const startMs = period.start.getTime();
    return this.serial.run(async () => {
      try {
        // This replica's counts first: the max below must not count them twice.
        await this.sync();
        await this.store.raiseTo([{ organizationId: org.id, startMs, count: used }]);
        const stored = await this.store.count(org.id, startMs);
        const e = this.entries.get(rowKey(org.id, startMs));
        if (e) Object.assign(e, { base: stored, loaded: true, checked: true });
      } catch (e) {
        rethrowStoreError(e);
      }
    });
  }

  /** The entry of a period not known here: one database read shared by concurrent callers. */
  private load(k: string, organizationId: string, period: BillingPeriod): Promise<Entry> {
    let p = this.loading.get(k);
    if (!p) {
      const startMs = period.start.getTime();
      p = this.store
        .count(organizationId, startMs)
        .then(
          (count) => ({ base: count, loaded: true }),
          (e: unknown) => {
            this.counts.loadErrors++;
            this.onError(e);
            return { base: 0, loaded: false };
          },
        )
        .then(({ base, loaded }) => {
          this.loading.delete(k);
          // A flush may not drop a fresh entry before its first use: idleFlushes is 0.
          const cur = this.entries.get(k);
          if (cur) {
            // Only count()ed so far: base as read, unless a flush has set it since.
            if (!cur.checked) Object.assign(cur, { base, loaded, checked: true });
            cur.enforced = true;
            return cur;
          }
          const e: Entry = {
            organizationId,
            startMs,
            endMs: period.end.getTime(),
            base,
            pending: 0,
            loaded,
            checked: true,
            enforced: true,
            idleFlushes: 0,
          };
          this.entries.set(k, e);
          return e;
        });
      this.loading.set(k, p);
    }
    // The entry may have been dropped (idle) between the load and this caller: put it back.
    return p.then((e) => {
      const k2 = rowKey(e.organizationId, e.startMs);
      const cur = this.entries.get(k2);
      if (cur) return cur;
      e.dropped = false;
      this.entries.set(k2, e);
      return e;
    });
  }

  private see(nowMs: number): void {
    if (nowMs > this.latestNowMs) this.latestNowMs = nowMs;
  }

  /** The period's count: the database's total (read now) plus what is pending here. */
  used(org: QuotaOrg, nowMs: number): Promise<{ used: number; period: BillingPeriod }> {
    const period = billingPeriod(org.billingAnchorDay, nowMs);
    this.see(nowMs);
    const startMs = period.start.getTime();
    return this.serial.run(async () => {
      let stored: number;
      try {
        stored = await this.store.count(org.id, startMs);
      } catch (e) {
        rethrowStoreError(e);
      }
      const e = this.entries.get(rowKey(org.id, startMs));
      if (e) Object.assign(e, { base: stored, loaded: true, checked: true });
      return { used: stored + (e?.pending ?? 0), period };
    });
  }

  /**
   * Sends the pending counts and refreshes recently used periods (see the class
   * contract). Rejects when the database fails; nothing is lost then. Calls run one at
   * a time, each with the counts pending when it starts (at once when none is running).
   */
  flush(): Promise<void> {
    return this.serial.run(() => this.sync());
  }

  private async sync(): Promise<void> {
    const writes: { e: Entry; sent: number }[] = [];
    const reads: Entry[] = [];
    for (const [k, e] of this.entries) {
      if (e.pending === 0 && (!e.enforced || e.endMs <= this.latestNowMs || e.idleFlushes >= this.idleFlushes)) {
        // Everything counted here is in the database already.
        this.entries.delete(k);
        e.dropped = true;
        if (this.lastByOrg.get(e.organizationId) === e) this.lastByOrg.delete(e.organizationId);
        continue;
      }
      if (e.pending > 0) writes.push({ e, sent: e.pending });
      else reads.push(e);
      e.idleFlushes++;
    }
    if (writes.length === 0 && reads.length === 0) return;
    let totalsRows: QuotaRow[];
    try {
      totalsRows = await this.store.sync(
        writes.map(({ e, sent }) => ({ organizationId: e.organizationId, startMs: e.startMs, count: sent })),
        reads,
      );
    } catch (err) {
      this.counts.syncErrors++;
      throw err;
    }
    // Committed: apply it, synchronously.
    const totals = new Map<string, number>();
    for (const r of totalsRows) totals.set(rowKey(r.organizationId, r.startMs), r.count);
    for (const { e, sent } of writes) {
      e.pending -= sent;
      e.base = totals.get(rowKey(e.organizationId, e.startMs)) ?? e.base + sent;
      e.loaded = e.checked = true;
    }
    for (const e of reads) {
      e.base = totals.get(rowKey(e.organizationId, e.startMs)) ?? 0;
      e.loaded = e.checked = true;
    }
  }

  /** Flushes every intervalMs (default syncIntervalMs) on `scheduler` (default: unref()ed timers). */
  start(intervalMs: number = this.syncIntervalMs, scheduler: Scheduler = timerScheduler): void {
    this.stop();
    this.cancelTimer = scheduler.every('quota-sync', intervalMs, () => {
      // A flush still running (a slow database) is not queued behind again.
      if (!this.serial.busy) this.flush().catch(this.onError);
    });
  }

  stop(): void {
    this.cancelTimer?.();
    this.cancelTimer = undefined;
  }

  /** Stops the timer and writes what is pending (a failure goes to onError). */
  async close(): Promise<void> {
    this.stop();
    await this.flush().catch(this.onError);
  }

  stats(): DbSyncedQuotaStats {
    let pending = 0;
    for (const e of this.entries.values()) pending += e.pending;
    return { backend: 'memory', trackedPeriods: this.entries.size, pending, ...this.counts };
  }
}
