/**
 * A pending map written in batches: values are set in memory on the hot path and
 * written by flush(), every interval and at shutdown, off the request's path.
 */

import { timerScheduler, type Scheduler, type TaskName } from './scheduler';

export interface PendingFlusherOptions<K, V> {
  /** Writes one batch; rejects when nothing of it was written. */
  write(batch: ReadonlyMap<K, V>): Promise<void>;
  /**
   * The value kept when a key is set again before its flush, or when a failed batch
   * goes back while a newer value was set meanwhile: `older` is the earlier one.
   * Default: the newer value.
   */
  combine?: (older: V, newer: V) => V;
  /** After a batch was written. */
  onWritten?: (batch: ReadonlyMap<K, V>) => void;
  /** After a batch failed (its values are pending again). Must not throw. */
  onError?: (e: unknown, batch: ReadonlyMap<K, V>) => void;
}

/**
 * Contract:
 *  - set() only touches memory; flush() takes everything pending as one batch.
 *  - Concurrent flush() calls share the write in flight; flush() never rejects.
 *  - A failed batch is pending again, combined with (never overwriting) values set
 *    since; flushErrors counts the failures.
 */
export class PendingFlusher<K, V> {
  private pending = new Map<K, V>();
  private flushing: Promise<void> | undefined;
  private stopTimer: (() => void) | undefined;
  private readonly combine: (older: V, newer: V) => V;
  /** Batches whose write failed (their values were kept for the next one). */
  flushErrors = 0;

  constructor(private readonly opts: PendingFlusherOptions<K, V>) {
    this.combine = opts.combine ?? ((_older, newer) => newer);
  }

  set(key: K, value: V): void {
    const older = this.pending.get(key);
    this.pending.set(key, older === undefined ? value : this.combine(older, value));
  }

  /** Values waiting to be written. */
  get size(): number {
    return this.pending.size;
  }

  /** Writes what is pending; concurrent calls share one write. */
  flush(): Promise<void> {
    if (this.flushing) return this.flushing;
    if (this.pending.size === 0) return Promise.resolve();
    const batch = this.pending;
    this.pending = new Map();
    this.flushing = this.opts
      .write(batch)
      .then(
        () => this.opts.onWritten?.(batch),
        (e: unknown) => {
          this.flushErrors++;
          for (const [key, value] of batch) {
            const newer = this.pending.get(key);
            this.pending.set(key, newer === undefined ? value : this.combine(value, newer));
          }
          this.opts.onError?.(e, batch);
        },
      )
      .finally(() => {
        this.flushing = undefined;
      });
    return this.flushing;
  }

  /** Flushes every intervalMs as the scheduler's task `name` (restarting any timer already running). */
  start(name: TaskName, intervalMs: number, scheduler: Scheduler = timerScheduler): void {
    this.stop();
    this.stopTimer = scheduler.every(name, intervalMs, () => void this.flush());
  }

  stop(): void {
    this.stopTimer?.();
    this.stopTimer = undefined;
  }
}
