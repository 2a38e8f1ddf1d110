/**
 * Many callers' commands in one Redis command: items asked for during one turn of the
 * event loop are sent together, as one script call per batch, at the end of that turn.
 *
 * Contract:
 *  - run(item) resolves with the item's own result, or rejects with the batch's error
 *    (every item of a failed batch fails alike, as commands of one lost connection do).
 *  - A batch is sent in the event loop's check phase (setImmediate) after the first
 *    item was queued, at most `maxBatch` items per command; batches do not wait for
 *    each other (several can be in flight on the connection).
 *  - Each batch goes through RedisConnection.call: the startup wait and the command
 *    deadline apply, the deadline armed when the batch is written, so an event-loop
 *    stall between run() and the send is not counted against Redis.
 *  - `send` must answer one result per item, in order; a reply of another length
 *    fails the batch.
 */
import type Redis from 'ioredis';
import type { RedisConnection } from './client';

interface Waiting<I, R> {
  item: I;
  resolve: (r: R) => void;
  reject: (e: unknown) => void;
}

export class RedisBatcher<I, R> {
  private queue: Waiting<I, R>[] = [];
  private scheduled = false;
  /** Commands sent and items carried; for diagnostics and tests. */
  readonly sent = { batches: 0, items: 0 };

  constructor(
    private readonly connection: RedisConnection,
    private readonly send: (client: Redis, items: I[]) => Promise<R[]>,
    private readonly maxBatch = 256,
  ) {}

  run(item: I): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    const queue = this.queue;
    this.queue = [];
    for (let i = 0; i < queue.length; i += this.maxBatch) this.sendBatch(queue.slice(i, i + this.maxBatch));
  }

  private sendBatch(batch: Waiting<I, R>[]): void {
    this.sent.batches++;
    this.sent.items += batch.length;
    const items = batch.map((w) => w.item);
    this.connection
      .call((client) => this.send(client, items))
      .then(
        (results) => {
          if (results.length !== batch.length) {
            const e = new Error(`Redis answered ${results.length} results for a batch of ${batch.length}`);
            for (const w of batch) w.reject(e);
            return;
          }
          for (let i = 0; i < batch.length; i++) batch[i]!.resolve(results[i]!);
        },
        (e: unknown) => {
          for (const w of batch) w.reject(e);
        },
      );
  }
}
