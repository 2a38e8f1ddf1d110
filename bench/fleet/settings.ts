/** The bench's knobs (BENCH_* environment) and secrets, checked at start. */
import { randomBytes } from 'node:crypto';

export const REVOKES = Number(process.env.BENCH_REVOKES ?? 100);
export const REVOKE_DEADLINE_MS = Number(process.env.BENCH_REVOKE_DEADLINE_MS ?? 5000);
export const ALS_ENTRIES = Number(process.env.BENCH_ALS_ENTRIES ?? 500_000);
export const ALS_BATCH = Number(process.env.BENCH_ALS_BATCH ?? 100);
export const ALS_STREAMS = (process.env.BENCH_ALS_STREAMS ?? '1,2,4').split(',').map((s) => Number(s.trim()));
export const ALS_SETTLE_MS = Number(process.env.BENCH_ALS_SETTLE_MS ?? 20_000);
export const USAGE_BUFFER_MAX = process.env.BENCH_USAGE_BUFFER_MAX;
export const PG_URL = process.env.BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
export const DB_NAME = process.env.BENCH_DB ?? 'keyward_bench_fleet';
export const FLUSH_SECONDS = 1;
/** Distinct pre-encoded messages per run, cycled (Envoy's batches differ; ours repeat). */
export const POOL = 8;
/** The usage month: every entry starts at the bench's start time. */
export const ENTRY_START = new Date();
export const ADMIN_TOKEN = `bench-admin-${randomBytes(16).toString('hex')}`;
export const HASH_SECRET = randomBytes(32).toString('hex');

if (!/^[a-z_][a-z0-9_]*$/.test(DB_NAME)) throw new Error(`BENCH_DB must be a plain lower-case identifier, got ${JSON.stringify(DB_NAME)}`);
for (const [name, v] of [
  ['BENCH_REVOKES', REVOKES],
  ['BENCH_ALS_ENTRIES', ALS_ENTRIES],
  ['BENCH_ALS_BATCH', ALS_BATCH],
] as const) {
  if (!Number.isSafeInteger(v) || v < 1) throw new Error(`${name} must be a positive integer`);
}
if (ALS_STREAMS.some((s) => !Number.isSafeInteger(s) || s < 1 || s > 64)) throw new Error('BENCH_ALS_STREAMS must list integers 1..64');
