/**
 * Readiness: the store answers a trivial query and no migration is pending. Shared by
 * /readyz and by gRPC health (grpc.health.v1) on both ports.
 *
 * Contract:
 *  - check() runs the checks at most once per `cacheMs` (concurrent callers share one
 *    run), each bounded by `timeoutMs`; a check that throws or times out is failed.
 *  - Once no migration is pending, that is remembered (migrations are never undone
 *    while the process runs), so steady-state readiness costs one `select 1`.
 *  - onChange(ready) is called when the outcome flips (and once with the first one).
 *  - Failures are reported by name only (`unreachable`, `timeout`, `pending`), never
 *    with a connection string or an error text.
 */
export interface ReadinessReport {
  ready: boolean;
  checks: { store: 'ok' | 'unreachable' | 'timeout'; migrations: 'ok' | 'pending' | 'unknown' };
}

export interface ReadinessProbes {
  /** Resolves if the store answers. */
  ping(): Promise<void>;
  /** Names of the migrations not applied. */
  pendingMigrations(): Promise<string[]>;
}

export class Readiness {
  private last: { at: number; report: ReadinessReport } | undefined;
  private running: Promise<ReadinessReport> | undefined;
  private migrationsDone = false;
  private lastReady: boolean | undefined;

  constructor(
    private readonly probes: ReadinessProbes,
    private readonly opts: { cacheMs?: number; timeoutMs?: number; now?: () => number; onChange?: (ready: boolean) => void } = {},
  ) {}

  check(): Promise<ReadinessReport> {
    const now = (this.opts.now ?? Date.now)();
    if (this.last && now - this.last.at < (this.opts.cacheMs ?? 1000)) return Promise.resolve(this.last.report);
    if (!this.running) {
      this.running = this.run().finally(() => {
        this.running = undefined;
      });
    }
    return this.running;
  }

  private async run(): Promise<ReadinessReport> {
    const timeoutMs = this.opts.timeoutMs ?? 2000;
    const store = await bounded(this.probes.ping(), timeoutMs).then(
      (r) => (r === 'timeout' ? 'timeout' : 'ok') as ReadinessReport['checks']['store'],
      () => 'unreachable' as const,
    );
    let migrations: ReadinessReport['checks']['migrations'] = 'ok';
    if (!this.migrationsDone) {
      migrations =
        store !== 'ok'
          ? 'unknown'
          : await bounded(this.probes.pendingMigrations(), timeoutMs).then(
              (p) => (p === 'timeout' ? 'unknown' : p.length === 0 ? 'ok' : 'pending'),
              () => 'unknown' as const,
            );
      if (migrations === 'ok') this.migrationsDone = true;
    }
    const report: ReadinessReport = { ready: store === 'ok' && migrations === 'ok', checks: { store, migrations } };
    this.last = { at: (this.opts.now ?? Date.now)(), report };
    if (report.ready !== this.lastReady) {
      this.lastReady = report.ready;
      this.opts.onChange?.(report.ready);
    }
    return report;
  }
}

function bounded<T>(p: Promise<T>, ms: number): Promise<T | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), ms);
      timer.unref();
    }),
  ]).finally(() => clearTimeout(timer));
}
