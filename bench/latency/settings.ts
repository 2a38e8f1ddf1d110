/** The knobs of bench/latency.ts (BENCH_LATENCY_*) and the latency targets. */

const num = (name: string, dflt: number): number => {
  const v = Number(process.env[name] ?? dflt);
  if (!Number.isFinite(v) || v < 0) throw new Error(`${name} must be a non-negative number`);
  return v;
};

/** Measured seconds per run, after WARMUP seconds whose latencies are not recorded. */
export const SECONDS = num('BENCH_LATENCY_SECONDS', 10);
export const WARMUP = num('BENCH_LATENCY_WARMUP', 2);
/** Load levels, in percent of the no-op's closed-loop capacity. */
export const LEVELS = (process.env.BENCH_LATENCY_LEVELS ?? '25 50 75').split(/[ ,]+/).filter(Boolean).map(Number);
/** HTTP/2 connections the generator spreads its streams over. */
export const CONNECTIONS = num('BENCH_LATENCY_CONNECTIONS', 4);
/** Keys created in keyward (and known to the floor); request i carries key i mod KEYS. */
export const KEYS = num('BENCH_LATENCY_KEYS', 100);
/** The no-op's capacity: h2load -c16 -m16 for this long after a 2 s warm-up. */
export const CAPACITY_SECONDS = num('BENCH_LATENCY_CAPACITY_SECONDS', 5);
/** Skips measuring the capacity and uses this figure (req/s) instead. */
export const CAPACITY = process.env.BENCH_LATENCY_CAPACITY ? num('BENCH_LATENCY_CAPACITY', 0) : undefined;
/** How long the generator waits for answers after its last send. */
export const DRAIN_SECONDS = num('BENCH_LATENCY_DRAIN_SECONDS', 10);
/** The generator is said not to have kept the rate when its schedule lag or achieved rate is off by more than this. */
export const LAG_WARN_MS = num('BENCH_LATENCY_LAG_WARN_MS', 5);

/** Targets at the levels they apply to: keyward's p99 and p99.9 over the no-op's. */
export const TARGET_LEVELS = [25, 50];
export const TARGET_P99 = 2;
export const TARGET_P999 = 3;
/** The level whose GC pauses are the headline figure. */
export const GC_LEVEL = 50;
