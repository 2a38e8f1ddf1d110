/**
 * PendingFlusher, the "pending map, shared flush, requeue on failure" behind last use
 * and hash rotation. A controllable write and an injected scheduler: no timers.
 */
import { PendingFlusher } from '../src/util/flusher';
import type { Scheduler } from '../src/util/scheduler';

/** A write that waits until the test settles it. */
function gate() {
  const calls: { batch: Map<string, number>; resolve(): void; reject(e: Error): void }[] = [];
  const write = (batch: ReadonlyMap<string, number>) =>
    new Promise<void>((resolve, reject) => calls.push({ batch: new Map(batch), resolve, reject }));
  return { calls, write };
}

describe('PendingFlusher', () => {
  it('combines values set before a flush; an empty flush writes nothing', async () => {
    const { calls, write } = gate();
    const f = new PendingFlusher<string, number>({ write, combine: (a, b) => Math.max(a, b) });
    await f.flush();
    expect(calls).toHaveLength(0);
    f.set('k1', 5);
    f.set('k1', 3);
    f.set('k2', 1);
    expect(f.size).toBe(2);
    const done = f.flush();
    expect(f.size).toBe(0);
    calls[0]!.resolve();
    await done;
    expect(calls[0]!.batch).toEqual(
      new Map([
        ['k1', 5],
        ['k2', 1],
      ]),
    );
  });

  it('concurrent flushes share the write in flight; values set meanwhile wait for the next', async () => {
    const { calls, write } = gate();
    const written: number[] = [];
    const f = new PendingFlusher<string, number>({ write, onWritten: (b) => written.push(b.size) });
    f.set('a', 1);
    const first = f.flush();
    f.set('b', 2);
    expect(f.flush()).toBe(first);
    expect(calls).toHaveLength(1);
    calls[0]!.resolve();
    await first;
    expect(written).toEqual([1]);
    const second = f.flush();
    calls[1]!.resolve();
    await second;
    expect(calls[1]!.batch).toEqual(new Map([['b', 2]]));
    expect(written).toEqual([1, 1]);
  });

  it('a failed write requeues its values without overwriting newer ones, and never rejects', async () => {
    const { calls, write } = gate();
    const errors: unknown[] = [];
    const f = new PendingFlusher<string, number>({ write, onError: (e, batch) => errors.push([e, batch.size]) });
    f.set('old', 1);
    f.set('both', 1);
    const failing = f.flush();
    f.set('both', 2); // newer than the batch in flight
    const boom = new Error('down');
    calls[0]!.reject(boom);
    await expect(failing).resolves.toBeUndefined();
    expect(f.flushErrors).toBe(1);
    expect(errors).toEqual([[boom, 2]]);
    expect(f.size).toBe(2);
    const retry = f.flush();
    calls[1]!.resolve();
    await retry;
    expect(calls[1]!.batch).toEqual(
      new Map([
        ['old', 1],
        ['both', 2],
      ]),
    );
  });

  it('requeued values are combined with newer ones when a combine is given', async () => {
    const { calls, write } = gate();
    const f = new PendingFlusher<string, number>({ write, combine: (a, b) => Math.max(a, b) });
    f.set('k', 9);
    const failing = f.flush();
    f.set('k', 4); // set meanwhile, but older than the requeued 9 by value
    calls[0]!.reject(new Error('down'));
    await failing;
    const retry = f.flush();
    calls[1]!.resolve();
    await retry;
    expect(calls[1]!.batch).toEqual(new Map([['k', 9]]));
  });

  it('start() flushes on the injected schedule; stop() and a restart stop the previous one', async () => {
    const { calls, write } = gate();
    const jobs: { name: string; job: () => void; intervalMs: number; stopped: boolean }[] = [];
    const scheduler: Scheduler = {
      every(name, intervalMs, job) {
        const entry = { name, job, intervalMs, stopped: false };
        jobs.push(entry);
        return () => {
          entry.stopped = true;
        };
      },
    };
    const f = new PendingFlusher<string, number>({ write });
    f.start('last-used-flush', 1000, scheduler);
    f.start('last-used-flush', 2000, scheduler);
    expect(jobs.map((j) => [j.name, j.intervalMs, j.stopped])).toEqual([
      ['last-used-flush', 1000, true],
      ['last-used-flush', 2000, false],
    ]);
    f.set('k', 1);
    jobs[1]!.job();
    expect(calls).toHaveLength(1);
    calls[0]!.resolve();
    await f.flush();
    f.stop();
    expect(jobs[1]!.stopped).toBe(true);
  });
});
