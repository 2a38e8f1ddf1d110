/**
 * Sums usage events in memory, per (organization, key, endpoint, method, hour), and
 * writes the sums in batches through a UsageSink: never a database write per request,
 * and no row per request. Raw detail records are kept only when asked
 * (KEYWARD_USAGE_RAW_EVENTS). With a journal, what was summed is appended to the
 * batch's epoch file every `syncMs` (a SIGKILL loses at most that much), and a batch
 * the store cannot take is spilled to the journal. The contract of each method is on
 * the method; the design is described in docs/limits-quotas-usage.md.
 */
import { randomBytes } from 'node:crypto';
import type { UsageEvent, UsageSink } from './types';
import type { UsageJournal, UsageJournalStats } from './journal';
import { timerScheduler, type Scheduler } from '../util/scheduler';
import { addEvent, CellMap, cellsOf, eventsIn, hourOf, type UsageCell } from './cells';
import { OTHER_ENDPOINT } from './endpoint';
import { SecurityCellMap, type SecurityCell } from '../events/security';

export interface UsageBatcherOptions {
  /** Most cells plus raw events held in memory (KEYWARD_USAGE_BUFFER_MAX). */
  maxBuffered: number;
  /** Start a flush once this many are held (default: min(5000, maxBuffered)). */
  flushAt?: number;
  /** Keep raw detail records (requests 0) to store as rows (KEYWARD_USAGE_RAW_EVENTS). Default false. */
  rawEvents?: boolean;
  /** Called with each failed write's error. */
  onError?: (e: unknown) => void;
  /**
   * The journal (KEYWARD_USAGE_JOURNAL_DIR): epoch files of what is summed in memory,
   * and the batches the store could not take. A batch whose write fails, and every batch
   * while the store is down, is appended under its id; the interval's flush replays the
   * journal first (the probe). Ids make replays count once. If the journal fails too, the
   * batch is summed back into memory.
   */
  journal?: UsageJournal;
  /** Called with each failed journal append's or replay read's error. */
  onJournalError?: (e: unknown) => void;
}

export interface UsageBatcherStats {
  /** Cells and raw events held in memory (not counting a write in flight). */
  buffered: number;
  /** Cells and raw events in the write in flight, if any. */
  inFlight: number;
  /** Usage events written successfully (summed in written cells). */
  flushed: number;
  /** Writes that failed (their usage was kept). */
  flushErrors: number;
  /** Usage events dropped because the buffer was full. */
  dropped: number;
  /** Raw detail records not kept because the buffer was full (their sums were kept). */
  rawDropped: number;
  /** Security events not kept because the buffer was full. */
  securityDropped: number;
  /** Writes that succeeded. */
  flushes: number;
  /** The journal's numbers, when there is one. */
  journal?: UsageJournalStats & { errors: number };
}

/** A fresh batch id (16 characters, [A-Za-z0-9_-]). */
export function newBatchId(): string {
  return randomBytes(12).toString('base64url');
}

/** The usage summed for one batch id: what a flush writes. */
interface Epoch {
  id: string;
  cells: CellMap;
  events: UsageEvent[];
  security: SecurityCellMap;
  /** Ids of failed batches summed back into this one. */
  covers: string[];
}

const newEpoch = (): Epoch => ({ id: newBatchId(), cells: new CellMap(), events: [], security: new SecurityCellMap(), covers: [] });

interface Batch {
  id: string;
  cells: UsageCell[];
  events: UsageEvent[];
  security: SecurityCell[];
  covers: string[];
}

export class UsageBatcher {
  /** Summed since the last sync (the hot path adds here). */
  private delta = new CellMap();
  private deltaEvents: UsageEvent[] = [];
  private deltaSecurity = new SecurityCellMap();
  /** Summed for the next write (what the epoch file holds, plus delta). */
  private epoch = newEpoch();
  private inFlightBatch: Batch | undefined;
  private readonly maxBuffered: number;
  private readonly flushAt: number;
  private readonly rawEvents: boolean;
  private readonly onError: (e: unknown) => void;
  private readonly journal: UsageJournal | undefined;
  private readonly onJournalError: (e: unknown) => void;
  private cancelTimers: (() => void)[] = [];
  private flushing: Promise<void> | undefined;
  private followUp: Promise<void> | undefined;
  private lastWriteFailed = false;
  private readonly counters = { flushed: 0, flushErrors: 0, dropped: 0, rawDropped: 0, securityDropped: 0, flushes: 0 };
  private drainWaiters: (() => void)[] = [];
  private journalErrors = 0;

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
    this.rawEvents = options.rawEvents ?? false;
    this.onError = options.onError ?? (() => undefined);
    this.journal = options.journal;
    this.onJournalError = options.onJournalError ?? (() => undefined);
  }

  /** Cells and raw events held (an upper bound: delta and epoch may share cells). */
  private held(): number {
    const e = this.epoch;
    return this.delta.size + this.deltaEvents.length + this.deltaSecurity.size + e.cells.size + e.events.length + e.security.size;
  }

  private inFlightSize(): number {
    const b = this.inFlightBatch;
    return b ? b.cells.length + b.events.length + b.security.length : 0;
  }

  /**
   * Sums one event into its cell. O(1); never waits and never throws. With the buffer
   * full, an event whose cell is new is summed under the endpoint `(other)` of its key,
   * method and hour when that cell exists, else dropped (stats().dropped); a raw detail
   * record is then not kept (stats().rawDropped). At `flushAt` held it starts a flush
   * (after a failed write it does not: the interval retries).
   */
  record(event: UsageEvent): void {
    const hour = hourOf(event.at);
    const { organizationId, keyId, endpoint, method } = event;
    const full = this.held() >= this.maxBuffered;
    const cell =
      this.delta.cellFor(organizationId, keyId, endpoint, method, hour, !full) ??
      this.delta.cellFor(organizationId, keyId, OTHER_ENDPOINT, method, hour, false);
    if (!cell) {
      this.counters.dropped++;
      return;
    }
    addEvent(cell, event);
    if (this.rawEvents && event.requests !== 1) {
      if (full) this.counters.rawDropped++;
      else this.deltaEvents.push(event);
    }
    if (!full && this.held() >= this.flushAt && !this.flushing && !this.lastWriteFailed) void this.flush();
  }

  /**
   * Sums one security event into its cell (src/events/security.ts), written with the next
   * batch. O(1); never throws. With the buffer full, an event whose cell is new is dropped
   * (stats().securityDropped).
   */
  recordSecurity(cell: SecurityCell): void {
    if (!this.deltaSecurity.add(cell, this.held() < this.maxBuffered)) this.counters.securityDropped++;
  }

  /** Half of maxBuffered or more is held or being written: sources that can wait should. */
  congested(): boolean {
    return this.held() + this.inFlightSize() >= this.maxBuffered / 2;
  }

  /** Resolves once held plus in flight is under a quarter of maxBuffered (at once if it is). */
  drained(): Promise<void> {
    if (this.held() + this.inFlightSize() < this.maxBuffered / 4) return Promise.resolve();
    const p = new Promise<void>((resolve) => this.drainWaiters.push(resolve));
    if (!this.flushing && !this.lastWriteFailed) void this.flush();
    return p;
  }

  private wakeDrainWaiters(): void {
    if (this.drainWaiters.length === 0 || this.held() + this.inFlightSize() >= this.maxBuffered / 4) return;
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of waiters) w();
  }

  /**
   * Moves the delta into the epoch; with `append` and a journal, appends it to the
   * epoch's file as well (KEYWARD_USAGE_JOURNAL_SYNC_MS). Never rejects.
   */
  sync(append = true): Promise<void> {
    if (this.delta.size === 0 && this.deltaEvents.length === 0 && this.deltaSecurity.size === 0) return Promise.resolve();
    const cells = this.delta.values();
    const events = this.deltaEvents;
    const security = this.deltaSecurity.values();
    this.delta = new CellMap();
    this.deltaEvents = [];
    this.deltaSecurity = new SecurityCellMap();
    const epoch = this.epoch;
    for (const c of cells) epoch.cells.add(c);
    for (const e of events) epoch.events.push(e);
    for (const c of security) epoch.security.add(c);
    if (!append || !this.journal) return Promise.resolve();
    return this.journal.appendEpoch(epoch.id, { cells, events, security }).catch((e: unknown) => this.journalFailed(e));
  }

  private journalFailed(e: unknown): void {
    this.journalErrors++;
    try {
      this.onJournalError(e);
    } catch {
      // a failing error handler must not break flushing
    }
  }

  private writeFailed(e: unknown): void {
    this.counters.flushErrors++;
    this.lastWriteFailed = true;
    try {
      this.onError(e);
    } catch {
      // as above
    }
  }

  /**
   * Replays the journal, then writes what was summed before the call as one batch. A
   * call while a flush runs shares it plus at most one shared follow-up for what was
   * summed meanwhile (so `await flush()` at shutdown covers everything before it); after
   * a failed write the waiting callers share its failure, with no immediate retry. A
   * failed batch goes to the journal under its id, or is summed back into memory. Never
   * rejects: failures go to `onError` and stats().flushErrors.
   */
  flush(): Promise<void> {
    if (this.flushing) {
      this.followUp ??= this.flushing.then(() => {
        this.followUp = undefined;
        return this.held() === 0 ? undefined : this.run(this.lastWriteFailed);
      });
      return this.followUp;
    }
    if (this.held() === 0 && this.epoch.covers.length === 0 && !(this.journal && this.journal.pendingBatches > 0)) return Promise.resolve();
    return this.run(false);
  }

  /** One flush: replay the journal (unless the store is known down), then write the epoch. */
  private run(storeDown: boolean): Promise<void> {
    const go = async () => {
      const journal = this.journal;
      if (journal && !storeDown && journal.pendingBatches > 0) {
        try {
          await journal.replay((b) =>
            this.sink.write({ cells: b.cells, events: this.rawEvents ? b.events : [], security: b.security }, b.id),
          );
          this.lastWriteFailed = false;
        } catch (e) {
          this.writeFailed(e);
          storeDown = true;
        }
      }
      if (storeDown && !journal) return;
      void this.sync(false);
      const epoch = this.epoch;
      this.epoch = newEpoch();
      const batch: Batch = {
        id: epoch.id,
        cells: epoch.cells.values(),
        events: epoch.events,
        security: epoch.security.values(),
        covers: epoch.covers,
      };
      if (batch.cells.length + batch.events.length + batch.security.length + batch.covers.length === 0) return;
      this.inFlightBatch = batch;
      try {
        if (!storeDown) {
          try {
            await this.sink.write({ cells: batch.cells, events: batch.events, security: batch.security, alsoIds: batch.covers }, batch.id);
            this.counters.flushed += eventsIn(batch.cells);
            this.counters.flushes++;
            this.lastWriteFailed = false;
            await journal?.dropEpochs([batch.id, ...batch.covers]).catch((e: unknown) => this.journalFailed(e));
            return;
          } catch (e) {
            this.writeFailed(e);
          }
        }
        if (journal) {
          try {
            await journal.append(batch.id, batch);
            await journal.dropEpochs([batch.id, ...batch.covers]).catch((e: unknown) => this.journalFailed(e));
            return;
          } catch (e) {
            this.journalFailed(e);
          }
        }
        this.sumBack(batch);
      } finally {
        this.inFlightBatch = undefined;
        this.wakeDrainWaiters();
      }
    };
    this.flushing = go().finally(() => {
      this.flushing = undefined;
      this.wakeDrainWaiters();
    });
    return this.flushing;
  }

  /** A batch that could not be written or spilled: summed into the current epoch, under which it is retried. */
  private sumBack(batch: Batch): void {
    for (const c of batch.cells) this.epoch.cells.add(c);
    for (const c of batch.security) this.epoch.security.add(c);
    const room = Math.max(0, this.maxBuffered - this.held());
    const kept = batch.events.length <= room ? batch.events : batch.events.slice(batch.events.length - room);
    this.counters.rawDropped += batch.events.length - kept.length;
    this.epoch.events = kept.concat(this.epoch.events);
    this.epoch.covers.push(batch.id, ...batch.covers);
  }

  /**
   * Writes the batch in flight and everything summed to the journal synchronously (for
   * a process about to exit), and removes their epoch files. Returns the usage events
   * written; 0 without a journal.
   */
  spillSync(): number {
    const journal = this.journal;
    if (!journal) return 0;
    let n = 0;
    try {
      // The batch in flight keeps its id: if its write lands after all, the replay skips it.
      const inFlight = this.inFlightBatch;
      if (inFlight) {
        journal.appendSync(inFlight.id, inFlight);
        journal.dropEpochsSync([inFlight.id, ...inFlight.covers]);
        n += eventsIn(inFlight.cells);
        this.inFlightBatch = undefined;
      }
      void this.sync(false);
      const epoch = this.epoch;
      const cells = epoch.cells.values();
      const security = epoch.security.values();
      if (cells.length > 0 || epoch.events.length > 0 || security.length > 0) {
        journal.appendSync(epoch.id, { cells, events: epoch.events, security });
        n += eventsIn(cells);
      }
      journal.dropEpochsSync([epoch.id, ...epoch.covers]);
      this.epoch = newEpoch();
    } catch (e) {
      this.journalFailed(e);
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
    const batch = { cells: cellsOf(events), events: this.rawEvents ? events : [] };
    try {
      const written = await this.sink.write(batch, id);
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
        await this.journal.append(id, batch);
      } catch (journalError) {
        this.journalFailed(journalError);
        throw e;
      }
      return true;
    }
  }

  /**
   * Flushes every `intervalMs` on `scheduler` (default: unref()ed timers) and, with a
   * journal, appends what was summed to it every `syncMs` (default 200).
   */
  start(intervalMs: number, scheduler: Scheduler = timerScheduler, syncMs = 200): void {
    this.stop();
    this.cancelTimers.push(
      scheduler.every('usage-flush', intervalMs, () => {
        if (!this.flushing) void this.flush();
      }),
    );
    if (this.journal) this.cancelTimers.push(scheduler.every('usage-journal-sync', syncMs, () => void this.sync()));
    // Batches a previous process left in the journal go in at once.
    if (this.journal && this.journal.pendingBatches > 0) void this.flush();
  }

  stop(): void {
    for (const cancel of this.cancelTimers) cancel();
    this.cancelTimers = [];
  }

  stats(): UsageBatcherStats {
    const stats: UsageBatcherStats = { buffered: this.held(), inFlight: this.inFlightSize(), ...this.counters };
    if (this.journal) stats.journal = { ...this.journal.stats(), errors: this.journalErrors };
    return stats;
  }
}
