/**
 * Periodic background work (flushes, probes, purges) runs through a Scheduler, so that
 * tests can hold it still and run a task when they choose, as the Clock does for time.
 */

/** The periodic tasks of a running keyward (src/app/), by name. */
export type TaskName =
  | 'readiness' // the readiness probe; gRPC health follows it
  | 'last-used-flush' // last_used_at times buffered by Checks
  | 'hash-rotation-flush' // keys found under the previous hash secret, rehashed
  | 'hash-rotation-count' // the count of keys still under the previous secret
  | 'usage-flush' // the usage batcher
  | 'usage-journal-sync' // usage summed in memory, appended to the journal
  | 'quota-sync' // quota counters to the database
  | 'usage-purge' // usage events past retention
  | 'key-expiry-scan' // key.expiring events for keys about to expire
  | 'admin-request-purge' // retry-safe KeyAdmin calls past their 24 h window, sealed secrets included
  | 'usage-drop-warning' // the warning about dropped usage events
  | 'webhooks'; // new audit rows turned into webhook deliveries, and due deliveries sent

export interface Scheduler {
  /**
   * Runs `task` every `intervalMs` until the returned function is called. Never keeps
   * the process alive. A task must not throw (it catches and reports its own failures).
   */
  every(name: TaskName, intervalMs: number, task: () => void): () => void;
}

/** The production scheduler: unref'd setInterval timers. */
export const timerScheduler: Scheduler = {
  every(_name, intervalMs, task) {
    const timer = setInterval(task, intervalMs);
    timer.unref();
    return () => clearInterval(timer);
  },
};

/** Runs nothing by itself: a task runs only when run() names it (for tests). */
export class ManualScheduler implements Scheduler {
  private readonly tasks = new Set<{ name: TaskName; intervalMs: number; task: () => void }>();

  every(name: TaskName, intervalMs: number, task: () => void): () => void {
    const entry = { name, intervalMs, task };
    this.tasks.add(entry);
    return () => void this.tasks.delete(entry);
  }

  /** The names of the tasks scheduled now, in the order they were scheduled. */
  names(): TaskName[] {
    return [...this.tasks].map((t) => t.name);
  }

  /**
   * Runs every scheduled task called `name` once, as its timer would; returns how many
   * ran. Throws if none is scheduled under that name (a task that was never started).
   */
  run(name: TaskName): number {
    const due = [...this.tasks].filter((t) => t.name === name);
    if (due.length === 0) throw new Error(`no task named ${name} is scheduled (scheduled: ${this.names().join(', ') || 'none'})`);
    for (const t of due) t.task();
    return due.length;
  }
}
