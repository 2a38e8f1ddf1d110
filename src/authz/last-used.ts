/**
 * Keeps api_keys.last_used_at current without a database write per request: Checks
 * record the time in memory, and flush() writes the latest time of each key in one
 * transaction, every `intervalMs` and at shutdown. A failed flush keeps its times for
 * the next one. last_used_at may therefore lag by up to one interval.
 */
import { timerScheduler, type Scheduler } from '../util/scheduler';

export interface LastUsedSink {
  touchLastUsed(batch: ReadonlyMap<string, number>): Promise<void>;
}

export class LastUsedRecorder {
  private pending = new Map<string, number>();
  private cancelTimer: (() => void) | undefined;
  private flushing: Promise<void> | undefined;
  /** Writes that failed (their times were kept for the next one). */
  flushErrors = 0;

  constructor(
    private readonly sink: LastUsedSink,
    private readonly onError: (e: unknown) => void = () => undefined,
  ) {}

  record(keyId: string, atMs: number): void {
    const prev = this.pending.get(keyId);
    if (prev === undefined || prev < atMs) this.pending.set(keyId, atMs);
  }

  get size(): number {
    return this.pending.size;
  }

  /** Writes what was recorded; concurrent calls share one write. */
  flush(): Promise<void> {
    if (this.flushing) return this.flushing;
    if (this.pending.size === 0) return Promise.resolve();
    const batch = this.pending;
    this.pending = new Map();
    this.flushing = this.sink
      .touchLastUsed(batch)
      .catch((e: unknown) => {
        this.flushErrors++;
        for (const [id, at] of batch) this.record(id, at);
        this.onError(e);
      })
      .finally(() => {
        this.flushing = undefined;
      });
    return this.flushing;
  }

  start(intervalMs: number, scheduler: Scheduler = timerScheduler): void {
    this.stop();
    this.cancelTimer = scheduler.every('last-used-flush', intervalMs, () => void this.flush());
  }

  stop(): void {
    this.cancelTimer?.();
    this.cancelTimer = undefined;
  }
}
