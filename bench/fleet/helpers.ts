/** Shared helpers: statistics, formatting, CPU and load of the machine, the build. */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { Client as PgClient } from 'pg';
import { BIN } from '../../test/support/server-process';
import { adminUnary, redact as redactSecrets } from '../support/keyward';
import { ADMIN_TOKEN, HASH_SECRET } from './settings';
import { servers } from './processes';

/** Hides anything secret-shaped (keys, admin tokens, the bench's secret values) in text we print. */
export const redact = (s: string): string => redactSecrets(s, [ADMIN_TOKEN, HASH_SECRET]);

export const unary = adminUnary(ADMIN_TOKEN);

/** Nearest-rank percentile of sorted values. */
export function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}
export interface Summary {
  n: number;
  min: number;
  median: number;
  p90: number;
  max: number;
  mean: number;
}
export function summarize(values: number[]): Summary {
  const s = [...values].sort((a, b) => a - b);
  return {
    n: s.length,
    min: s[0] ?? NaN,
    median: pct(s, 50),
    p90: pct(s, 90),
    max: s[s.length - 1] ?? NaN,
    mean: s.reduce((a, b) => a + b, 0) / (s.length || 1),
  };
}
export const round = (n: number, d = 3): number => (Number.isFinite(n) ? Number(n.toFixed(d)) : n);
export const fmtMs = (n: number): string => `${n.toFixed(2)} ms`;
export const fmtInt = (n: number): string => Math.round(n).toLocaleString('en-US');

/** CPU seconds (user + system) a process has used, from /proc. */
export function cpuSeconds(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ 100)
  } catch {
    return NaN;
  }
}

/** What the keyward processes run: dist/ is built from the working tree, which may differ from HEAD. */
export function buildInfo(): { head: string; dirtySrc: string[]; distBuiltAt: string } {
  const root = join(__dirname, '..', '..');
  const git = (args: string[]) => spawnSync('git', args, { cwd: root, encoding: 'utf8' }).stdout ?? '';
  let distBuiltAt = '?';
  try {
    distBuiltAt = statSync(BIN).mtime.toISOString();
  } catch {
    // no dist/: startServerProcess reports it
  }
  return {
    head: git(['rev-parse', '--short', 'HEAD']).trim() || '?',
    dirtySrc: git(['status', '--porcelain', '--', 'src'])
      .split('\n')
      .filter(Boolean)
      .map((l) => l.slice(3)),
    distBuiltAt,
  };
}

/** CPU seconds of the PostgreSQL backends serving `pg`'s database (other than `pg`'s own). */
export async function pgBackendCpu(pg: PgClient): Promise<number> {
  const pids = (await pg.query(`select pid from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()`)).rows.map(
    (r: { pid: number }) => r.pid,
  );
  return pids.reduce((a: number, pid: number) => a + (cpuSeconds(pid) || 0), 0);
}

/** Other `keyward serve` processes and benchmarks on this machine (they share the CPUs with this one). */
export function otherBusyProcesses(): string[] {
  const ours = new Set([process.pid, process.ppid, ...servers.map((s) => s.proc.pid)]);
  const out: string[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d) || ours.has(Number(d))) continue;
    let cmd: string;
    try {
      cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0').join(' ').trim();
    } catch {
      continue;
    }
    if (/cli\/main\.js serve|bench\/\w+\.ts|h2load|jest/.test(cmd) && !cmd.includes('bench/fleet.ts'))
      out.push(`${d}: ${cmd.slice(0, 100)}`);
  }
  return out;
}

export function loadLine(when: string): string {
  const others = otherBusyProcesses();
  return `${when}: load average ${loadavg()
    .map((l) => l.toFixed(2))
    .join(
      ' ',
    )}; ${others.length ? `OTHER BENCH/KEYWARD PROCESSES RUNNING (they share the CPUs): ${others.join(' | ')}` : 'no other keyward or bench processes'}`;
}
