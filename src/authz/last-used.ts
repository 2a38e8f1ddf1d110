/**
 * Keeps api_keys.last_used_at current without a database write per request: Checks
 * record the time in memory, and flush() writes the latest time of each key in one
 * transaction, every `intervalMs` and at shutdown. A failed flush keeps its times for
 * the next one. last_used_at may therefore lag by up to one interval.
 */
import { PendingFlusher } from '../util/flusher';
import type { Scheduler } from '../util/scheduler';

export interface LastUsedSink {
  touchLastUsed(batch: ReadonlyMap<string, number>): Promise<void>;
}

export class LastUsedRecorder {
  private readonly pending: PendingFlusher<string, number>;

  constructor(sink: LastUsedSink, onError: (e: unknown) => void = () => undefined) {
    this.pending = new PendingFlusher({
      write: (batch) => sink.touchLastUsed(batch),
      combine: (older, newer) => Math.max(older, newer),
      onError: (e) => onError(e),
    });
  }

  record(keyId: string, atMs: number): void {
    this.pending.set(keyId, atMs);
  }

  get size(): number {
    return this.pending.size;
  }

  /** Writes that failed (their times were kept for the next one). */
  get flushErrors(): number {
    return this.pending.flushErrors;
  }

  /** Writes what was recorded; concurrent calls share one write. Never rejects. */
  flush(): Promise<void> {
    return this.pending.flush();
  }

  start(intervalMs: number, scheduler?: Scheduler): void {
    this.pending.start('last-used-flush', intervalMs, scheduler);
  }

  stop(): void {
    this.pending.stop();
  }
}
