/** The bench's knobs (BENCH_KEYS, BENCH_DURATION, BENCH_WARMUP, BENCH_ROUNDS) and the load levels. */

export const KEYS = Number(process.env.BENCH_KEYS ?? 1000);
export const DURATION = Number(process.env.BENCH_DURATION ?? 8);
export const WARMUP = Number(process.env.BENCH_WARMUP ?? 2);
/**
 * Rounds per allow level (1). With more, keyward, the floor and the no-op run in rotating
 * order each round, and the ratios are the median of the per-round ratios: a machine whose
 * speed drifts between runs moves all three servers of a round alike.
 */
export const ROUNDS = Math.max(1, Number(process.env.BENCH_ROUNDS ?? 1));
export const ADMIN_TOKEN = 'bench-admin-token-0123456789abcdef';
/** h2load's -c and -m per allow level; BENCH_LEVELS="16x16 1x1" picks some. */
export const LEVELS: [number, number][] = (process.env.BENCH_LEVELS ?? '16x16 4x8 1x1')
  .split(/\s+/)
  .filter(Boolean)
  .map((l) => {
    const m = /^(\d+)x(\d+)$/.exec(l);
    if (!m) throw new Error(`BENCH_LEVELS: "${l}" is not <connections>x<streams>`);
    return [Number(m[1]), Number(m[2])];
  });
