/**
 * MikroORM's AsyncLocalStorage instances, switched off while the ORM is idle.
 *
 * Why: MikroORM keeps its transaction and flush contexts in AsyncLocalStorage
 * (TransactionContext, RequestContext, the UnitOfWork's flush guard, RawQueryFragment).
 * On Node 20, the first `run()` of any of them turns on an async hook for the whole
 * process, for good: from then on every promise and tick object of every Check pays
 * for it, though no Check ever touches the ORM. docs/benchmarks.md measures it.
 *
 * Contract:
 *  - Importing this module loads `@mikro-orm/core` while `AsyncLocalStorage` is replaced
 *    by a subclass that records each instance; the original is put back at once, so no
 *    other library's instances (OpenTelemetry's, say) are recorded. Every module that
 *    imports MikroORM imports this one first (test/store.orm-async-context.test.ts
 *    checks it), so the ORM's instances are always the recorded ones.
 *  - `withOrmContext(fn)` runs an ORM call that may use those contexts (a transaction,
 *    a flush). When the last such call in flight ends, every recorded instance is
 *    disabled, and Node switches its hook off with the last one. The next `run()`
 *    switches them on again.
 *  - Nothing else changes: inside a call the contexts work as MikroORM expects. Calls
 *    that use no context (reads with an explicit fork, raw SQL) need no wrapping.
 */
import type { AsyncLocalStorage } from 'node:async_hooks';

// The module object itself (an `import` would copy its properties).
// eslint-disable-next-line @typescript-eslint/no-require-imports
const hooks = require('node:async_hooks') as { AsyncLocalStorage: typeof AsyncLocalStorage };

const recorded: AsyncLocalStorage<unknown>[] = [];
const Original = hooks.AsyncLocalStorage;

class RecordedAsyncLocalStorage<T> extends Original<T> {
  constructor() {
    super();
    recorded.push(this);
  }
}

hooks.AsyncLocalStorage = RecordedAsyncLocalStorage;
try {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  require('@mikro-orm/core');
} finally {
  hooks.AsyncLocalStorage = Original;
}

let inFlight = 0;

/** Disables every recorded instance (none may be in use). */
function quiesce(): void {
  for (const storage of recorded) storage.disable();
}

/** Runs an ORM call that may enter MikroORM's contexts; they are switched off when no such call is left. */
export async function withOrmContext<T>(fn: () => Promise<T>): Promise<T> {
  inFlight++;
  try {
    return await fn();
  } finally {
    if (--inFlight === 0) quiesce();
  }
}

/** After start-up work outside withOrmContext (migrations): switches the contexts off if nothing is in flight. */
export function quiesceOrmContexts(): void {
  if (inFlight === 0) quiesce();
}

/**
 * How many of MikroORM's instances were recorded, how many are on now (Node 20's
 * `enabled` field) and how many wrapped calls are in flight; for tests.
 */
export function ormContextState(): { recorded: number; enabled: number; inFlight: number } {
  const enabled = recorded.filter((s) => (s as unknown as { enabled?: boolean }).enabled === true).length;
  return { recorded: recorded.length, enabled, inFlight };
}
