/** Everything spawned is killed on exit; the database dropped unless BENCH_KEEP_DB=1. */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { type ServerProcess } from '../../test/support/server-process';
import { DB_NAME, KEEP_DB, PG_ADMIN_URL, ROOT } from './settings';

export const children = new Set<ChildProcess>();

/** Synchronous, for the exit handler: drops the benchmark database from a short node child. */
export function dropDatabaseSync(): void {
  if (!state.dbCreated || KEEP_DB) return;
  const script = `const {Client}=require('pg');const c=new Client(process.env.URL);c.connect().then(()=>c.query('drop database if exists ${DB_NAME} with (force)')).then(()=>c.end(),(e)=>{console.error(e.message);process.exit(1)})`;
  spawnSync(process.execPath, ['-e', script], { cwd: ROOT, env: { ...process.env, URL: PG_ADMIN_URL }, stdio: 'inherit', timeout: 30_000 });
  state.dbCreated = false;
}

export function cleanup(): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  if (state.keyward && state.keyward.proc.exitCode === null) state.keyward.proc.kill('SIGKILL');
  dropDatabaseSync();
}

export function track(c: ChildProcess): ChildProcess {
  children.add(c);
  c.on('exit', () => children.delete(c));
  return c;
}

/** The measured keyward and the database, for the cleanup. */
export const state = { keyward: undefined as ServerProcess | undefined, dbCreated: false };
