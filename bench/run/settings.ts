/** The bench's knobs (BENCH_KEYS, BENCH_DURATION, BENCH_WARMUP) and the load levels. */

export const KEYS = Number(process.env.BENCH_KEYS ?? 1000);
export const DURATION = Number(process.env.BENCH_DURATION ?? 8);
export const WARMUP = Number(process.env.BENCH_WARMUP ?? 2);
export const ADMIN_TOKEN = 'bench-admin-token-0123456789abcdef';
export const LEVELS: [number, number][] = [
  [16, 16],
  [4, 8],
  [1, 1],
];
