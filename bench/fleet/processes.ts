/** Everything spawned is killed on exit, and the database dropped, also on a signal. */
import { rmSync } from 'node:fs';
import { Client as PgClient } from 'pg';
import { type ServerProcess } from '../../test/support/server-process';
import { DB_NAME, PG_URL } from './settings';

/** What main and the cleanup share. */
export const state = { tmp: undefined as string | undefined, dbCreated: false, interrupted: false };
export const servers: ServerProcess[] = [];
export function killChildren(): void {
  for (const s of servers) if (s.proc.exitCode === null && s.proc.signalCode === null) s.proc.kill('SIGKILL');
  if (state.tmp) rmSync(state.tmp, { recursive: true, force: true });
  state.tmp = undefined;
}
/** Drops the bench database (FORCE ends leftover sessions); never throws, gives up after 10 s. */
export async function dropDatabase(): Promise<void> {
  if (!state.dbCreated) return;
  const c = new PgClient({ connectionString: PG_URL, connectionTimeoutMillis: 5000 });
  const work = (async () => {
    await c.connect();
    await c.query(`drop database if exists ${DB_NAME} with (force)`);
    state.dbCreated = false;
  })();
  await Promise.race([work, new Promise((r) => setTimeout(r, 10_000))]).catch((e: unknown) =>
    console.error(`could not drop ${DB_NAME}: ${String(e)}`),
  );
  await c.end().catch(() => undefined);
}
process.on('exit', killChildren);
for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(s, () => {
    if (state.interrupted) return;
    state.interrupted = true;
    console.error(`\n${s}: stopping the keyward processes and dropping ${DB_NAME}`);
    killChildren();
    void dropDatabase().finally(() => process.exit(130));
  });
}
