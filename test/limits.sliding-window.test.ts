/**
 * The in-memory sliding-window limiter: exact window edges, idle eviction, the key
 * cap, and a property against a brute-force model that keeps every request's time.
 */
import fc from 'fast-check';
import { admits, MemoryRateLimiter, msUntilAdmitted, WINDOW_MS } from '../src/limits/sliding-window';
import type { RateDecision } from '../src/limits/types';
import { limiterEdgeCases, T0, W } from './support/redis';

describe('MemoryRateLimiter window edges', () => {
  limiterEdgeCases(
    () => ({ limiter: new MemoryRateLimiter(), setNow: () => undefined }),
    (c) => c.limiter.close(),
  );
});

describe('MemoryRateLimiter bookkeeping', () => {
  it('returns decisions synchronously and counts them in stats', async () => {
    const l = new MemoryRateLimiter();
    const d = l.consume('a', 1, T0);
    expect(d).not.toBeInstanceOf(Promise);
    l.consume('a', 1, T0);
    l.consume('b', 1, T0);
    await l.peek('a', 1, T0);
    expect(l.stats()).toEqual({ backend: 'memory', trackedKeys: 2, allowed: 2, limited: 1, redisErrors: 0, fallbackDecisions: 0 });
  });

  it('peek creates no entry; reset deletes it', async () => {
    const l = new MemoryRateLimiter();
    await l.peek('x', 3, T0);
    expect(l.stats().trackedKeys).toBe(0);
    l.consume('x', 3, T0);
    expect(l.stats().trackedKeys).toBe(1);
    await l.reset('x');
    expect(l.stats().trackedKeys).toBe(0);
  });

  it('rejects a limit that is not a positive integer', () => {
    const l = new MemoryRateLimiter();
    expect(() => l.consume('x', 0, T0)).toThrow(RangeError);
    expect(() => l.consume('x', 1.5, T0)).toThrow(RangeError);
  });

  it('drops keys idle for 2 windows, a few per call, and none earlier', () => {
    const l = new MemoryRateLimiter();
    for (let i = 0; i < 1000; i++) l.consume(`k${i}`, 5, T0 + (i % 1000));
    expect(l.stats().trackedKeys).toBe(1000);
    // Still within the next window: their counts still matter, nothing goes.
    for (let i = 0; i < 600; i++) l.consume('hot', 1_000_000, T0 + 2 * W - 1);
    expect(l.stats().trackedKeys).toBe(1001);
    // Two windows on, up to 2 idle keys go per consume (the hot key is always the newest).
    for (let i = 0; i < 100; i++) l.consume('hot', 1_000_000, T0 + 2 * W);
    expect(l.stats().trackedKeys).toBe(1001 - 200);
    for (let i = 0; i < 400; i++) l.consume('hot', 1_000_000, T0 + 3 * W);
    expect(l.stats().trackedKeys).toBe(1);
  });

  it('a key that was swept starts fresh, as its window counts were 0 anyway', () => {
    const l = new MemoryRateLimiter();
    l.consume('a', 1, T0);
    l.consume('b', 1, T0 + 2 * W); // sweeps a
    expect(l.stats().trackedKeys).toBe(1);
    expect(l.consume('a', 1, T0 + 2 * W)).toEqual({ allowed: true, limit: 1, remaining: 0, resetSeconds: 120 });
  });

  it('keeps at most maxKeys, evicting the key whose last active window is oldest', () => {
    const l = new MemoryRateLimiter({ maxKeys: 3 });
    for (const k of ['a', 'b', 'c']) expect(l.consume(k, 1, T0).allowed).toBe(true);
    // Within one window the order is first-tracked: a stays at the front.
    expect(l.consume('a', 1, T0 + 1).allowed).toBe(false);
    expect(l.consume('d', 1, T0 + 2).allowed).toBe(true); // evicts a
    expect(l.stats().trackedKeys).toBe(3);
    expect(l.consume('b', 1, T0 + 3).allowed).toBe(false);
    expect(l.consume('a', 1, T0 + 4).allowed).toBe(true); // forgotten; evicts b
    expect(l.stats().trackedKeys).toBe(3);
    // A key active in a newer window goes to the back: c (front) is active again, so d goes.
    expect(l.consume('c', 2, T0 + W).allowed).toBe(true);
    expect(l.consume('e', 1, T0 + W + 1).allowed).toBe(true); // evicts d
    expect(l.consume('c', 2, T0 + W + 2).allowed).toBe(false); // c kept its counts (1 + prev 1)
    expect(l.consume('d', 1, T0 + W + 3).allowed).toBe(true); // d forgotten; evicts a
    expect(l.stats().trackedKeys).toBe(3);
  });

  it('keeps sweeping and evicting correctly through many deletions at the front', () => {
    const l = new MemoryRateLimiter({ maxKeys: 50_000 });
    for (let i = 0; i < 50_000; i++) l.consume(`k${i}`, 1, T0);
    // Two windows on, every consume sweeps 2 idle keys from the front.
    for (let i = 0; i < 20_000; i++) l.consume(`n${i}`, 1, T0 + 2 * W);
    expect(l.stats().trackedKeys).toBe(50_000 - 40_000 + 20_000);
    // k40000..k49999 are left, idle: this consume sweeps 2 of them and moves k49999 to the back.
    expect(l.consume('k49999', 1, T0 + 2 * W).allowed).toBe(true);
    expect(l.stats().trackedKeys).toBe(29_998);
    // 5,000 consumes could sweep 10,000, but only 9,997 idle keys are left.
    for (let i = 0; i < 5_000; i++) l.consume(`m${i}`, 1, T0 + 2 * W);
    expect(l.stats().trackedKeys).toBe(29_998 - 9_997 + 5_000);
    expect(l.consume('k49999', 1, T0 + 2 * W).allowed).toBe(false);
    // Only keys of the current window are left, so nothing more is swept.
    expect(l.consume('n0', 1, T0 + 2 * W).allowed).toBe(false);
  });

  it('judges a key at elapsed 0 of its own window when the clock steps back', () => {
    const l = new MemoryRateLimiter();
    for (let i = 0; i < 4; i++) l.consume('a', 4, T0 + W + 30_000);
    expect(l.consume('a', 4, T0 + 10).allowed).toBe(false);
    l.consume('b', 4, T0 + W);
    l.consume('b', 4, T0 + W);
    // b's previous window count 0, curr 2: stepping back leaves it in its own window.
    expect(l.consume('b', 4, T0)).toMatchObject({ allowed: true, remaining: 1 });
  });
});

describe('msUntilAdmitted', () => {
  it('is 0 when a request fits now, and exact at the edges', () => {
    expect(msUntilAdmitted(10, 0, 9, 0)).toBe(0);
    expect(msUntilAdmitted(10, 10, 0, 0)).toBe(6000);
    expect(msUntilAdmitted(10, 10, 0, 5999)).toBe(1);
    expect(msUntilAdmitted(10, 0, 10, 0)).toBe(WINDOW_MS + 6000);
    expect(msUntilAdmitted(1, 0, 1, 59_999)).toBe(1 + WINDOW_MS);
    expect(msUntilAdmitted(1, 1, 0, 30_000)).toBe(30_000);
    // curr = limit - 1 and a heavy prev: free exactly at the boundary, where prev' = curr.
    expect(msUntilAdmitted(2, 5, 1, 0)).toBe(WINDOW_MS);
    // curr = limit: into the next window until prev' = 2 has decayed to 1.
    expect(msUntilAdmitted(2, 5, 2, 0)).toBe(WINDOW_MS + WINDOW_MS / 2);
  });

  it('is the first whole ms at which a request fits, for any state (property)', () => {
    // The counts t ms later with no further requests.
    const later = (prev: number, curr: number, elapsed: number, t: number): [number, number, number] => {
      const e = elapsed + t;
      if (e < W) return [prev, curr, e];
      if (e < 2 * W) return [curr, 0, e - W];
      return [0, 0, e % W];
    };
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 50 }),
        fc.integer({ min: 0, max: 80 }),
        fc.integer({ min: 0, max: 80 }),
        fc.integer({ min: 0, max: W - 1 }),
        (limit, prev, curr, elapsed) => {
          const t = msUntilAdmitted(limit, prev, curr, elapsed);
          expect(t).toBeGreaterThanOrEqual(0);
          expect(t).toBeLessThanOrEqual(2 * W - elapsed);
          expect(admits(limit, ...later(prev, curr, elapsed, t))).toBe(true);
          if (t > 0) expect(admits(limit, ...later(prev, curr, elapsed, t - 1))).toBe(false);
        },
      ),
      { numRuns: 5000 },
    );
  });
});

/**
 * The model: every allowed request's time. The estimate at `now` counts them in the
 * window containing now and the one before, exactly as specified, so agreement checks
 * the limiter's bookkeeping (rollover, two-window reset, refund, reset, eviction).
 */
class Model {
  private readonly times = new Map<string, number[]>();

  private counts(key: string, now: number): { prev: number; curr: number; elapsed: number } {
    const ws = Math.floor(now / W) * W;
    const ts = this.times.get(key) ?? [];
    return {
      prev: ts.filter((t) => t >= ws - W && t < ws).length,
      curr: ts.filter((t) => t >= ws && t < ws + W).length,
      elapsed: now - ws,
    };
  }

  private admits(key: string, limit: number, now: number): boolean {
    const { prev, curr, elapsed } = this.counts(key, now);
    return prev * (W - elapsed) + (curr + 1) * W <= limit * W;
  }

  private state(key: string, limit: number, now: number, allowed: boolean): RateDecision {
    const { prev, curr, elapsed } = this.counts(key, now);
    const remaining = Math.max(0, Math.floor((limit * W - prev * (W - elapsed) - curr * W) / W));
    // Probe whole seconds forward: the first at which one more request is admitted.
    let s = 0;
    while (!this.admits(key, limit, now + s * 1000)) s++;
    return { allowed, limit, remaining, resetSeconds: s };
  }

  consume(key: string, limit: number, now: number): RateDecision {
    const ok = this.admits(key, limit, now);
    if (ok) this.times.set(key, [...(this.times.get(key) ?? []), now]);
    return this.state(key, limit, now, ok);
  }

  peek(key: string, limit: number, now: number): RateDecision {
    return this.state(key, limit, now, this.admits(key, limit, now));
  }

  refund(key: string, now: number): void {
    const ws = Math.floor(now / W) * W;
    const ts = this.times.get(key) ?? [];
    const i = ts.findIndex((t) => t >= ws && t < ws + W);
    if (i >= 0) ts.splice(i, 1);
  }

  reset(key: string): void {
    this.times.delete(key);
  }
}

type Op = { dt: number; kind: 'consume' | 'peek' | 'refund' | 'reset'; key: number };

const opArb: fc.Arbitrary<Op> = fc.record({
  dt: fc.oneof(
    fc.constant(0),
    fc.integer({ min: 1, max: 2000 }),
    fc.integer({ min: 0, max: 3 * W }),
    fc.constantFrom(1, 999, 1000, 6000, W - 1, W, W + 1, 2 * W),
  ),
  kind: fc.constantFrom<Op['kind'][]>('consume', 'consume', 'consume', 'consume', 'peek', 'refund', 'reset'),
  key: fc.integer({ min: 0, max: 2 }),
});

describe('MemoryRateLimiter against the brute-force model', () => {
  it('agrees on every decision over random sequences', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 0, max: 2 * W }),
        fc.array(opArb, { maxLength: 120 }),
        async (limit, start, ops) => {
          const l = new MemoryRateLimiter();
          const m = new Model();
          let now = T0 + start;
          for (const op of ops) {
            now += op.dt;
            const key = `k${op.key}`;
            switch (op.kind) {
              case 'consume':
                expect(l.consume(key, limit, now)).toEqual(m.consume(key, limit, now));
                break;
              case 'peek':
                expect(await l.peek(key, limit, now)).toEqual(m.peek(key, limit, now));
                break;
              case 'refund':
                l.refund(key, now);
                m.refund(key, now);
                break;
              case 'reset':
                await l.reset(key);
                m.reset(key);
                break;
            }
          }
        },
      ),
      { numRuns: 400 },
    );
  });
});
