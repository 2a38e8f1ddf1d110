/** Starting and cleaning up: the database, Redis counters, stopping keyward, the build. */
import { spawnSync } from 'node:child_process';
import { rmSync, statSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import Redis from 'ioredis';
import { Client as PgClient } from 'pg';
import { BIN, type ServerProcess } from '../../test/support/server-process';
import { DB_NAME, PG_URL, ROOT } from './options';
import { run, sleep, wakeMain } from './state';
import { extraOrgs, orgs } from './admin';

export async function pgAdminQuery(sql: string, timeoutMs = 5000): Promise<void> {
  const c = new PgClient({ connectionString: PG_URL, connectionTimeoutMillis: timeoutMs });
  try {
    await c.connect();
    await c.query(sql);
  } finally {
    await c.end().catch(() => undefined);
  }
}

export const pgReachable = (): Promise<boolean> =>
  pgAdminQuery('select 1', 2000).then(
    () => true,
    () => false,
  );

/** Drops the run's database (FORCE ends leftover sessions); never throws. */
export async function dropDatabase(): Promise<string> {
  if (!run.dbCreated) return '';
  try {
    await pgAdminQuery(`drop database if exists ${DB_NAME} with (force)`);
    run.dbCreated = false;
    return `database ${DB_NAME} dropped`;
  } catch (e) {
    return `COULD NOT DROP database ${DB_NAME}: ${(e as Error).message}`;
  }
}

/** The run's quota counters in Redis (rate-limit windows expire within 2 minutes by themselves). */
export async function cleanRedis(url: string): Promise<string> {
  const r = new Redis(url, { lazyConnect: true, connectTimeout: 2000, maxRetriesPerRequest: 1, retryStrategy: () => null });
  r.on('error', () => undefined);
  try {
    await r.connect();
    let removed = 0;
    for (const org of [orgs.pool, orgs.quota, orgs.limited, orgs.churn, ...extraOrgs].filter(Boolean)) {
      const keys = await r.keys(`kw:quota:{${org}}:*`);
      if (keys.length) removed += await r.del(...keys);
    }
    return `${removed} quota counter(s) removed from Redis`;
  } catch (e) {
    return `could not remove the quota counters from Redis: ${(e as Error).message}`;
  } finally {
    r.disconnect();
  }
}

/** For the exit handler: kills keyward if it still runs, removes the directory, drops the database. */
export function cleanupSync(): void {
  if (run.server && run.server.proc.exitCode === null && run.server.proc.signalCode === null) run.server.proc.kill('SIGKILL');
  if (run.tmp) rmSync(run.tmp, { recursive: true, force: true });
  run.tmp = undefined;
  if (run.dbCreated) {
    const script = `const {Client}=require('pg');const c=new Client(process.env.URL);c.connect().then(()=>c.query('drop database if exists ${DB_NAME} with (force)')).then(()=>c.end(),(e)=>{console.error(e.message);process.exit(1)})`;
    spawnSync(process.execPath, ['-e', script], { cwd: ROOT, env: { ...process.env, URL: PG_URL }, stdio: 'inherit', timeout: 30_000 });
    run.dbCreated = false;
  }
}

/**
 * SIGTERM, unless keyward is already shutting down (a Ctrl-C in the terminal reaches it
 * too, and it treats SIGINT as SIGTERM; a second signal would make it exit at once).
 */
export async function stopServer(s: ServerProcess): Promise<{ code: number | null | 'timeout'; signalled: boolean; seconds: number }> {
  const t = performance.now();
  const already = s.proc.exitCode !== null || s.proc.signalCode !== null || s.stdout().includes('"msg":"shutting down"');
  if (!already) s.proc.kill('SIGTERM');
  const code = await Promise.race([s.exited, sleep(30_000).then(() => 'timeout' as const)]);
  if (code === 'timeout') s.proc.kill('SIGKILL');
  return { code, signalled: !already, seconds: (performance.now() - t) / 1000 };
}

export function buildInfo(): string {
  const git = (args: string[]) => spawnSync('git', args, { cwd: ROOT, encoding: 'utf8' }).stdout?.trim() ?? '';
  let built = '?';
  try {
    built = statSync(BIN).mtime.toISOString();
  } catch {
    // startServerProcess reports a missing dist/
  }
  const dirty = git(['status', '--porcelain', '--', 'src']) !== '';
  return `git ${git(['rev-parse', '--short', 'HEAD']) || '?'}${dirty ? ' (src/ has uncommitted changes)' : ''}, dist/ built ${built}`;
}

/** Cleans up on exit; a first signal stops the run (keyward is stopped), a second kills keyward at once. */
export function onSignals(): void {
  process.on('exit', cleanupSync);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      if (run.interrupted) {
        console.error(`\n${sig} again: killing keyward and removing what the run made`);
        cleanupSync();
        process.exit(130);
      }
      run.interrupted = true;
      console.error(`\n${sig}: the run stops; keyward is stopped and the run's data removed (${sig} again to kill it now)`);
      wakeMain();
    });
  }
}
