/**
 * Buffers usage events in memory and writes them in batches through a UsageSink (never a
 * database write per request). Failed writes are kept for the next flush, or spilled to
 * the journal when there is one; a full buffer drops detail-only events first. The
 * contract of each method is on the method; the design is described in docs/.
 */
import { randomBytes } from 'node:crypto';
import type { UsageEvent, UsageSink } from './types';
import type { UsageJournal, UsageJournalStats } from './journal';
import { timerScheduler, type Scheduler } from '../util/scheduler';
import { Fifo, merge, type Slot } from './slot-queue';

export interface UsageBatcherOptions {
  /** Most events held in the buffer (KEYWARD_USAGE_BUFFER_MAX). */
  maxBuffered: number;
  /** Start a flush once this many events are buffered (default: min(5000, maxBuffered)). */
  flushAt?: number;
  /** Most events in one sink.write() (default 10,000). */
  maxBatch?: number;
  /** Called with each failed write's error. */
  onError?: (e: unknown) => void;
  /**
   * Where batches go while the store cannot take them (KEYWARD_USAGE_JOURNAL_DIR): a failed
   * batch, and whatever reaches `flushAt` while the store is down, is appended under its
   * batch id; the interval's flush replays it first (the probe). Ids make replays count once.
   * If the journal fails too, the batch goes back to the buffer.
   */
  journal?: UsageJournal;
  /** Called with each failed journal append's or replay read's error. */
  onJournalError?: (e: unknown) => void;
}

export interface UsageBatcherStats {
  /** Events waiting in the buffer (not counting a write in flight). */
  buffered: number;
  /** Events in the write in flight, if any. */
  inFlight: number;
  /** Events written successfully. */
  flushed: number;
  /** Writes that failed (their events were kept). */
  flushErrors: number;
  /** Events dropped because the buffer was full. */
  dropped: number;
  /** Writes that succeeded. */
  flushes: number;
  /** The journal's numbers, when there is one. */
  journal?: UsageJournalStats & { errors: number };
}

/** A fresh batch id (16 characters, [A-Za-z0-9_-]). */
export function newBatchId(): string {
  return randomBytes(12).toString('base64url');
}

export class UsageBatcher {
  /** Events with requests 1. */
  private readonly counted = new Fifo();
  /** Detail-only events (requests 0). */
  private readonly details = new Fifo();
  private seq = 0;
  private readonly maxBuffered: number;
  private readonly flushAt: number;
  private readonly onError: (e: unknown) => void;
  private cancelTimer: (() => void) | undefined;
  private flushing: Promise<void> | undefined;
  private followUp: Promise<void> | undefined;
  private inFlight = 0;
  private lastWriteFailed = false;
  private readonly counters = { flushed: 0, flushErrors: 0, dropped: 0, flushes: 0 };
  private readonly maxBatch: number;
  private drainWaiters: (() => void)[] = [];
  private readonly journal: UsageJournal | undefined;
  private readonly onJournalError: (e: unknown) => void;
  /** A journal append failed: no spilling from the hot path until the next interval. */
  private journalFailed = false;
  private journalErrors = 0;
  /** The batch being written or spilled, with its id (for spillSync). */
  private inFlightBatch: { id: string; events: UsageEvent[] } | undefined;

  constructor(
    private readonly sink: UsageSink,
    options: UsageBatcherOptions,
  ) {
    if (!Number.isSafeInteger(options.maxBuffered) || options.maxBuffered < 1)
      throw new RangeError('maxBuffered must be a positive integer');
    this.maxBuffered = options.maxBuffered;
    const flushAt = options.flushAt ?? Math.min(5000, options.maxBuffered);
    if (!Number.isSafeInteger(flushAt) || flushAt < 1) throw new RangeError('flushAt must be a positive integer');
    this.flushAt = flushAt;
    this.maxBatch = options.maxBatch ?? 10_000;
    if (!Number.isSafeInteger(this.maxBatch) || this.maxBatch < 1) throw new RangeError('maxBatch must be a positive integer');
    this.onError = options.onError ?? (() => undefined);
    this.journal = options.journal;
    this.onJournalError = options.onJournalError ?? (() => undefined);
  }

  /** Starts writing (or, while the store is down, spilling) unless a flush runs. */
  private kick(): void {
    if (this.flushing) return;
    if (!this.lastWriteFailed) void this.flush();
    else if (this.journal && !this.journalFailed) void this.run(true);
  }

  /**
   * Buffers one event. O(1); never waits and never throws. At `flushAt` buffered events it
   * starts a flush (after a failed write it does not: the interval retries, or it spills to
   * the journal). A full buffer drops its oldest detail-only event (requests 0), else its
   * oldest request event; an incoming detail-only event is dropped when only request
   * events are buffered. Drops count in stats().dropped.
   */
  record(event: UsageEvent): void {
    const slot: Slot = { seq: this.seq++, event };
    if (this.counted.size + this.details.size >= this.maxBuffered) {
      if (this.details.size > 0) this.details.shift();
      else if (event.requests !== 1) {
        // Only request events are buffered: the incoming detail is what goes.
        this.counters.dropped++;
        return;
      } else this.counted.shift();
      this.counters.dropped++;
    }
    (event.requests === 1 ? this.counted : this.details).push(slot);
    if (this.counted.size + this.details.size >= this.flushAt) this.kick();
  }

  /** Half of maxBuffered or more is buffered or being written: sources that can wait should. */
  congested(): boolean {
    return this.counted.size + this.details.size + this.inFlight >= this.maxBuffered / 2;
  }

  /** Resolves once buffered plus in flight is under a quarter of maxBuffered (at once if it is). */
  drained(): Promise<void> {
    if (this.counted.size + this.details.size + this.inFlight < this.maxBuffered / 4) return Promise.resolve();
    const p = new Promise<void>((resolve) => this.drainWaiters.push(resolve));
    // Start writing now rather than at the next interval (unless the store is failing:
    // then the interval retries, as for every failure; a journal takes the events).
    this.kick();
    return p;
  }

  private wakeDrainWaiters(): void {
    if (this.drainWaiters.length === 0 || this.counted.size + this.details.size + this.inFlight >= this.maxBuffered / 4) return;
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of waiters) w();
  }

  /**
   * Replays the journal, then writes the buffer in batches of at most `maxBatch`, oldest
   * first, until what was recorded before the call is written or a write fails. A call while
   * a flush runs shares it plus at most one shared follow-up for what was recorded meanwhile
   * (so `await flush()` at shutdown covers everything before it); after a failed write the
   * waiting callers share its failure, with no immediate retry. A failed batch goes back to
   * the front of the buffer in order (or to the journal). Never rejects: failures go to
   * `onError` and stats().flushErrors.
   */
  flush(): Promise<void> {
    if (this.flushing) {
      if (!this.followUp) {
        const followUp = this.flushing.then(() => {
          this.followUp = undefined;
          // After a failed write, the waiting callers share its failure: no immediate retry.
          if (this.counted.size + this.details.size === 0) return undefined;
          if (!this.lastWriteFailed) return this.flush();
          // The store is down: what was recorded meanwhile goes to the journal, if any.
          return this.journal && !this.journalFailed ? this.run(true) : undefined;
        });
        this.followUp = followUp;
      }
      return this.followUp;
    }
    if (this.counted.size + this.details.size === 0 && !(this.journal && this.journal.pendingBatches > 0)) return Promise.resolve();
    return this.run(false);
  }

  /** One flush: replay the journal (unless spilling), then the buffer. */
  private run(spillOnly: boolean): Promise<void> {
    // Everything recorded before this call, then more only while a full flushAt is waiting.
    const upTo = this.seq;
    const more = () => {
      const a = this.counted.firstSeq() ?? Infinity;
      const b = this.details.firstSeq() ?? Infinity;
      return Math.min(a, b) < upTo || this.counted.size + this.details.size >= this.flushAt;
    };
    const failed = (e: unknown, journal: boolean) => {
      if (journal) {
        this.journalErrors++;
        this.journalFailed = true;
      } else {
        this.counters.flushErrors++;
        this.lastWriteFailed = true;
      }
      try {
        (journal ? this.onJournalError : this.onError)(e);
      } catch {
        // a failing error handler must not break flushing
      }
    };
    const go = async () => {
      const journal = this.journal;
      if (!spillOnly) this.journalFailed = false;
      if (journal && !spillOnly && journal.pendingBatches > 0) {
        try {
          await journal.replay((b) => this.sink.write(b.events, b.id));
          this.lastWriteFailed = false;
        } catch (e) {
          failed(e, false);
          spillOnly = true;
        }
      }
      while (more()) {
        const { counted, details } = this.takeBatch();
        const batch = merge(counted, details);
        const id = newBatchId();
        this.inFlight = batch.length;
        this.inFlightBatch = { id, events: batch };
        try {
          let stored = false;
          if (!spillOnly) {
            try {
              await this.sink.write(batch, id);
              stored = true;
              this.counters.flushed += batch.length;
              this.counters.flushes++;
              this.lastWriteFailed = false;
            } catch (e) {
              failed(e, false);
              if (!journal) {
                this.putBack(counted, details);
                return;
              }
              spillOnly = true;
            }
          }
          if (!stored) {
            try {
              await journal!.append(id, batch);
            } catch (e) {
              failed(e, true);
              this.putBack(counted, details);
              return;
            }
          }
        } finally {
          this.inFlight = 0;
          this.inFlightBatch = undefined;
          this.wakeDrainWaiters();
        }
      }
    };
    this.flushing = go().finally(() => {
      this.flushing = undefined;
      this.wakeDrainWaiters();
    });
    return this.flushing;
  }

  private putBack(counted: Slot[], details: Slot[]): void {
    this.counted.prepend(counted);
    this.details.prepend(details);
    this.trim();
  }

  /**
   * Writes the buffer and the batch in flight to the journal synchronously (for a
   * process about to exit). Returns the events written; 0 without a journal.
   */
  spillSync(): number {
    const journal = this.journal;
    if (!journal) return 0;
    let n = 0;
    try {
      // The batch in flight keeps its id: if its write lands after all, the replay skips it.
      if (this.inFlightBatch) {
        journal.appendSync(this.inFlightBatch.id, this.inFlightBatch.events);
        n += this.inFlightBatch.events.length;
      }
      while (this.counted.size + this.details.size > 0) {
        const { counted, details } = this.takeBatch();
        const batch = merge(counted, details);
        try {
          journal.appendSync(newBatchId(), batch);
        } catch (e) {
          this.putBack(counted, details);
          throw e;
        }
        n += batch.length;
      }
    } catch (e) {
      this.journalErrors++;
      this.onJournalError(e);
    }
    return n;
  }

  /**
   * Writes one batch at once under the caller's id, outside the buffer (RecordUsage with
   * an idempotency key). Resolves true when written, false when the id was written before
   * (nothing is applied again). When the store fails and there is a journal, the batch is
   * appended to it under the same id (the next flush replays it) and resolves true;
   * otherwise the error is thrown, and nothing was applied.
   */
  async writeBatch(id: string, events: UsageEvent[]): Promise<boolean> {
    try {
      const written = await this.sink.write(events, id);
      if (written) {
        this.counters.flushed += events.length;
        this.counters.flushes++;
      }
      return written;
    } catch (e) {
      this.counters.flushErrors++;
      try {
        this.onError(e);
      } catch {
        // a failing error handler must not hide the write's error
      }
      if (!this.journal) throw e;
      try {
        await this.journal.append(id, events);
      } catch (journalError) {
        this.journalErrors++;
        try {
          this.onJournalError(journalError);
        } catch {
          // as above
        }
        throw e;
      }
      return true;
    }
  }

  /** Up to maxBatch of the oldest slots of both queues, in recording order. */
  private takeBatch(): { counted: Slot[]; details: Slot[] } {
    const counted: Slot[] = [];
    const details: Slot[] = [];
    for (let n = 0; n < this.maxBatch; n++) {
      const a = this.counted.firstSeq();
      const b = this.details.firstSeq();
      if (a === undefined && b === undefined) break;
      if (b === undefined || (a !== undefined && a < b)) counted.push(this.counted.shift()!);
      else details.push(this.details.shift()!);
    }
    return { counted, details };
  }

  /** Flushes every `intervalMs` on `scheduler` (default: unref()ed timers). */
  start(intervalMs: number, scheduler: Scheduler = timerScheduler): void {
    this.stop();
    this.cancelTimer = scheduler.every('usage-flush', intervalMs, () => {
      if (!this.flushing) void this.flush();
    });
    // Batches a previous process left in the journal go in at once.
    if (this.journal && this.journal.pendingBatches > 0) void this.flush();
  }

  stop(): void {
    this.cancelTimer?.();
    this.cancelTimer = undefined;
  }

  stats(): UsageBatcherStats {
    const stats: UsageBatcherStats = { buffered: this.counted.size + this.details.size, inFlight: this.inFlight, ...this.counters };
    if (this.journal) stats.journal = { ...this.journal.stats(), errors: this.journalErrors };
    return stats;
  }

  /** Applies the drop policy until the buffer fits (after a failed write put its batch back). */
  private trim(): void {
    let excess = this.counted.size + this.details.size - this.maxBuffered;
    while (excess > 0 && this.details.size > 0) {
      this.details.shift();
      this.counters.dropped++;
      excess--;
    }
    while (excess > 0 && this.counted.size > 0) {
      this.counted.shift();
      this.counters.dropped++;
      excess--;
    }
  }
}
