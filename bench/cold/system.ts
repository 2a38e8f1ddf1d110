/** Helpers: admin calls, CPU of processes (keyward, PostgreSQL backends), the build, formatting. */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Client as PgClient } from 'pg';
import { adminUnary, withDatabase } from '../support/keyward';
import { ADMIN_TOKEN, PG_ADMIN_URL, ROOT } from './settings';

export const dbUrl = (name: string): string => withDatabase(PG_ADMIN_URL, name);

export const unary = adminUnary(ADMIN_TOKEN);

export async function pool<T>(items: T[], width: number, fn: (t: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
export const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
export const mb = (kb: number) => kb / 1024;

export const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout?.trim()) || 100;
/** utime and stime of a process, ms (fields 14 and 15 of /proc/<pid>/stat). */
export function cpuOf(pid: number): { user: number; sys: number } {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return { user: (Number(f[11]) / CLK_TCK) * 1000, sys: (Number(f[12]) / CLK_TCK) * 1000 };
  } catch {
    return { user: 0, sys: 0 }; // exited meanwhile
  }
}
export function cpuMsOf(pid: number): number {
  const c = cpuOf(pid);
  return c.user + c.sys;
}
/** CPU ms of every process named postgres on this machine, by pid. */
export function postgresCpuMs(): Map<number, number> {
  const m = new Map<number, number>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (readFileSync(`/proc/${d}/comm`, 'utf8').trim() === 'postgres') m.set(Number(d), cpuMsOf(Number(d)));
    } catch {
      // gone
    }
  }
  return m;
}
/**
 * CPU ms used between two readings, by the processes in `only` (all if not given).
 * A backend that exited in between is lost: keyward's pooled connections stay open.
 */
export function postgresCpuDelta(before: Map<number, number>, after: Map<number, number>, only?: Set<number>): number {
  let sum = 0;
  for (const [pid, ms] of after) if (!only || only.has(pid)) sum += ms - (before.get(pid) ?? 0);
  return sum;
}

/** The backends connected to the benchmark database, but for the monitor's own. */
export async function keywardBackends(pg: PgClient): Promise<number[]> {
  const r = await pg.query<{ pid: number }>(
    'select pid from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()',
  );
  return r.rows.map((x) => x.pid);
}

export function distBuilt(): string {
  try {
    return statSync(join(ROOT, 'dist', 'cli', 'main.js')).mtime.toISOString();
  } catch {
    return '?';
  }
}

/** Which keyward is measured: dist/ is what runs, and it may be rebuilt by others while the bench runs. */
export function buildInfo(): string {
  const git = (args: string[]) => spawnSync('git', args, { cwd: ROOT, encoding: 'utf8' }).stdout?.trim() ?? '';
  const head = git(['rev-parse', '--short', 'HEAD']) || '?';
  const dirty = git(['status', '--porcelain', '--', 'src']) !== '';
  return `git ${head}${dirty ? ' (src/ has uncommitted changes)' : ''}, dist/ built ${distBuilt()}`;
}
