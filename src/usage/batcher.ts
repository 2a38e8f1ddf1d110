/**
 * Buffers usage events in memory and writes them in batches through a UsageSink:
 * never a database write per request.
 *
 *  - record(event) is O(1) and never waits: it appends to the buffer, and when the
 *    buffer reaches `flushAt` events it starts a flush without awaiting it.
 *  - flush() writes the buffer in sink.write() batches of at most `maxBatch` events
 *    (oldest first; bounded statements and bounded memory per write), one after the
 *    other until everything recorded before the call is written (then on only while
 *    `flushAt` events are waiting) or a write fails. A flush called while one is
 *    running shares it: it waits for the running writes and, if they succeeded, for at
 *    most one shared follow-up of what was recorded meanwhile (so `await flush()` at
 *    shutdown covers everything recorded before the call). If a write failed, the
 *    waiting callers share its failure (no immediate retry). flush() never rejects;
 *    failures go to `onError` and stats().flushErrors.
 *  - A failed write puts its events back at the front of the buffer, in their
 *    original order, for the next flush (the interval's, or an explicit one). After a
 *    failure, reaching `flushAt` no longer starts flushes until a write succeeds, so
 *    an outage is retried at the interval and not hammered from the hot path.
 *  - The buffer holds at most `maxBuffered` events (not counting the batch of a write
 *    in flight). When it is full, the OLDEST detail-only events (requests 0: access
 *    log entries and RecordUsage records) go first; an event that counts a request
 *    (requests 1) is dropped only when no detail-only event is left to drop, and then
 *    the oldest one goes. An incoming detail-only event is itself dropped when the
 *    buffer holds only request events. Every dropped event is counted in
 *    stats().dropped.
 *  - With a journal (KEYWARD_USAGE_JOURNAL_DIR, ./journal.ts): a failed write does
 *    not put its batch back; the batch goes to the journal on local disk under the id
 *    it was written with, and so does everything that reaches `flushAt` while the
 *    store is down (spilling; no store attempt from the hot path). The interval's
 *    flush first replays the journal, oldest first: that is the probe; once it
 *    succeeds, buffered events are written again. Every write carries a batch id and
 *    the store skips ids it has seen, so a replay never counts a batch twice. If the
 *    journal fails too (full, disk error), the batch goes back to the buffer as
 *    without a journal, and spilling waits for the next interval.
 *  - spillSync() writes the buffer and the batch in flight to the journal
 *    synchronously: the last act of a process told to exit at once.
 *  - Back-pressure for sources that can wait (the access-log stream): congested() is
 *    true while the buffer plus the write in flight hold half of `maxBuffered` or
 *    more; drained() starts a write if none is running (and the last did not fail)
 *    and resolves once writes have brought them under a quarter. A source that
 *    pauses while congested never pushes the buffer into dropping.
 */
import { randomBytes } from 'node:crypto';
import type { UsageEvent, UsageSink } from './types';
import type { UsageJournal, UsageJournalStats } from './journal';
import { timerScheduler, type Scheduler } from '../util/scheduler';

export interface UsageBatcherOptions {
  /** Most events held in the buffer (KEYWARD_USAGE_BUFFER_MAX). */
  maxBuffered: number;
  /** Start a flush once this many events are buffered (default: min(5000, maxBuffered)). */
  flushAt?: number;
  /** Most events in one sink.write() (default 10,000). */
  maxBatch?: number;
  /** Called with each failed write's error. */
  onError?: (e: unknown) => void;
  /** Where batches go while the store cannot take them (see the file comment). */
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

interface Slot {
  /** Recording order across both queues. */
  seq: number;
  event: UsageEvent;
}

/** A FIFO with O(1) amortized push and shift. */
class Fifo {
  private items: (Slot | undefined)[] = [];
  private head = 0;

  get size(): number {
    return this.items.length - this.head;
  }
  push(s: Slot): void {
    this.items.push(s);
  }
  shift(): Slot | undefined {
    if (this.head >= this.items.length) return undefined;
    const s = this.items[this.head];
    this.items[this.head++] = undefined;
    if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return s;
  }
  /** The oldest slot's recording order, if any. */
  firstSeq(): number | undefined {
    return this.items[this.head]?.seq;
  }
  /** Puts `older` (oldest first) in front of what is queued. */
  prepend(older: Slot[]): void {
    if (older.length === 0) return;
    this.items = older.concat(this.items.slice(this.head) as Slot[]);
    this.head = 0;
  }
}

/** Merges two seq-ordered slot lists into events in recording order. */
function merge(a: Slot[], b: Slot[]): UsageEvent[] {
  const out = new Array<UsageEvent>(a.length + b.length);
  let i = 0;
  let j = 0;
  let k = 0;
  while (i < a.length && j < b.length) out[k++] = a[i]!.seq < b[j]!.seq ? a[i++]!.event : b[j++]!.event;
  while (i < a.length) out[k++] = a[i++]!.event;
  while (j < b.length) out[k++] = b[j++]!.event;
  return out;
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

  /** Buffers one event. O(1); never waits and never throws. */
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

  /** Writes what is buffered; see the file comment for sharing and failures. Never rejects. */
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
