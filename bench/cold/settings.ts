/** The bench's knobs (BENCH_COLD_* environment) and fixed values. */
import { join, resolve } from 'node:path';

export const KEYS = Number(process.env.BENCH_COLD_KEYS ?? 1_000_000);
export const SECONDS = Number(process.env.BENCH_COLD_SECONDS ?? 60);
export const INFLIGHT = Number(process.env.BENCH_COLD_INFLIGHT ?? 64);
export const GENERATORS = Number(process.env.BENCH_COLD_GENERATORS ?? 1);
/** Generators of the second, cached pass (0 skips it); it must cover every key within 2 minutes. */
export const PASS2_GENERATORS = Number(process.env.BENCH_COLD_PASS2_GENERATORS ?? 2);
export const KEEP_DB = process.env.BENCH_KEEP_DB === '1';
/** The in-process memory run (bench/memory-driver.cjs); BENCH_COLD_INPROC=0 skips it. */
export const INPROC = process.env.BENCH_COLD_INPROC !== '0';
export const INPROC_INFLIGHT = 64;
export const INPROC_CHUNK = 20_000;
/** How long the in-process run's RSS is followed at rest after the load. */
export const INPROC_REST_MS = 30_000;
export const CPU_PROF = process.env.BENCH_CPU_PROF_DIR ? resolve(process.env.BENCH_CPU_PROF_DIR) : undefined;
export const NODE_ARGS = (process.env.BENCH_COLD_NODE_ARGS ?? '').split(' ').filter((a) => a !== '');
export const PG_ADMIN_URL = process.env.BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
export const DB_NAME = 'keyward_bench_cold';
export const ADMIN_TOKEN = 'bench-admin-token-0123456789abcdef';
export const RATE_LIMIT = 1000;
export const INSERT_BATCH = 10_000;
export const SAMPLE = 20;
export const RECHECK = 1000;
export const ROOT = join(__dirname, '..', '..');
