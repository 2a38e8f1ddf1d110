/**
 * The strict limiter against an exact sliding log: never more than N in any 60 s span,
 * a steady client at <= 60/65 of N never refused, headers that never over-promise; and
 * the approximate limiter within its bound (<= 2N - 1 in any 60 s span).
 */
import fc from 'fast-check';
import { rateLimitHeaders } from '../src/limits/limiter';
import { MemoryRateLimiter } from '../src/limits/sliding-window';
import { STEADY_FRACTION, StrictRateLimiter, SUB_WINDOW_MS, SUB_WINDOWS, subWindowOf } from '../src/limits/strict-window';
import type { RateLimiter } from '../src/limits/types';

const SPAN_MS = 60_000;
const T0 = 1_800_000_000_000;

/** The most allowed times (sorted) inside any span (t - 60 s, t]. */
function maxInSpan(times: number[]): number {
  const sorted = [...times].sort((a, b) => a - b);
  let most = 0;
  let lo = 0;
  for (let hi = 0; hi < sorted.length; hi++) {
    while (sorted[hi]! - sorted[lo]! >= SPAN_MS) lo++;
    most = Math.max(most, hi - lo + 1);
  }
  return most;
}

/** Steps of the clock: same instant, small, up to a sub-window, near minute edges, big jumps. */
const step = fc.oneof(
  fc.constant(0),
  fc.integer({ min: 1, max: 50 }),
  fc.integer({ min: 1, max: SUB_WINDOW_MS }),
  fc.integer({ min: SPAN_MS - 20, max: SPAN_MS + 20 }),
  fc.integer({ min: 1, max: 3 * SPAN_MS }),
);
const event = fc.record({ key: fc.integer({ min: 0, max: 4 }), dt: step, burst: fc.integer({ min: 1, max: 8 }) });
const events = fc.array(event, { minLength: 1, maxLength: 120 });
const limitArb = fc.integer({ min: 1, max: 12 });

/** Runs the events (monotone clock) and returns each key's allowed times. */
function run(limiter: RateLimiter, limit: number, evs: { key: number; dt: number; burst: number }[], start: number): Map<number, number[]> {
  const allowed = new Map<number, number[]>();
  let now = start;
  for (const ev of evs) {
    now += ev.dt;
    for (let b = 0; b < ev.burst; b++) {
      const decision = limiter.consume(`k${ev.key}`, limit, now);
      if (decision instanceof Promise) throw new Error('memory limiters decide synchronously');
      if (decision.allowed) allowed.set(ev.key, [...(allowed.get(ev.key) ?? []), now]);
    }
  }
  return allowed;
}

describe('StrictRateLimiter against a sliding log', () => {
  it('never allows more than N in any 60 s span, and decides exactly as the 13 sub-window model', () => {
    fc.assert(
      fc.property(limitArb, events, fc.integer({ min: 0, max: SPAN_MS - 1 }), (limit, evs, offset) => {
        const limiter = new StrictRateLimiter();
        const log = new Map<number, number[]>();
        let now = T0 + offset;
        for (const ev of evs) {
          now += ev.dt;
          for (let b = 0; b < ev.burst; b++) {
            const times = log.get(ev.key) ?? [];
            const oldest = subWindowOf(now) - (SUB_WINDOWS - 1);
            const counted = times.filter((t) => subWindowOf(t) >= oldest).length;
            const decision = limiter.consume(`k${ev.key}`, limit, now);
            expect(decision.allowed).toBe(counted < limit);
            if (decision.allowed) times.push(now);
            log.set(ev.key, times);
            expect(decision.remaining).toBe(Math.max(0, limit - counted - (decision.allowed ? 1 : 0)));
          }
        }
        for (const times of log.values()) expect(maxInSpan(times)).toBeLessThanOrEqual(limit);
      }),
      { numRuns: 300 },
    );
  });

  it('never over-admits on a clock that steps back (charged to the latest sub-window)', () => {
    const backStep = fc.oneof(step, fc.integer({ min: -SPAN_MS, max: -1 }));
    fc.assert(
      fc.property(
        limitArb,
        fc.array(fc.record({ dt: backStep, burst: fc.integer({ min: 1, max: 8 }) }), { maxLength: 100 }),
        (limit, evs) => {
          const limiter = new StrictRateLimiter();
          // Per key time never goes back: the effective time is the latest seen.
          const effective: number[] = [];
          let now = T0;
          let latest = -Infinity;
          for (const ev of evs) {
            now += ev.dt;
            latest = Math.max(latest, now);
            for (let b = 0; b < ev.burst; b++) if (limiter.consume('k', limit, now).allowed) effective.push(latest);
          }
          expect(maxInSpan(effective)).toBeLessThanOrEqual(limit);
        },
      ),
      { numRuns: 300 },
    );
  });

  it(`never refuses a client steady at ${(STEADY_FRACTION * 100).toFixed(1)} % of N or less (>= 90 %)`, () => {
    expect(STEADY_FRACTION).toBeGreaterThanOrEqual(0.9);
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 600 }),
        fc.integer({ min: 0, max: 10 * SPAN_MS }),
        fc.array(fc.integer({ min: 0, max: 2000 }), { minLength: 1, maxLength: 400 }),
        (limit, offset, extra) => {
          // At most STEADY_FRACTION * limit per 60 s: one request every 65 s / limit or more.
          const interval = Math.ceil((SPAN_MS + SUB_WINDOW_MS) / limit);
          const limiter = new StrictRateLimiter();
          let now = T0 + offset;
          for (const more of extra) {
            expect(limiter.consume('steady', limit, now).allowed).toBe(true);
            now += interval + more;
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  it('keys do not share counts, and idle keys are dropped', () => {
    const limiter = new StrictRateLimiter();
    expect(limiter.consume('a', 1, T0).allowed).toBe(true);
    expect(limiter.consume('a', 1, T0).allowed).toBe(false);
    expect(limiter.consume('b', 1, T0).allowed).toBe(true);
    expect(limiter.stats().trackedKeys).toBe(2);
    limiter.consume('c', 1, T0 + SUB_WINDOWS * SUB_WINDOW_MS + SPAN_MS);
    expect(limiter.stats().trackedKeys).toBe(1);
  });

  it('keeps at most maxKeys, evicting the oldest', () => {
    const limiter = new StrictRateLimiter({ maxKeys: 2 });
    limiter.consume('a', 5, T0);
    limiter.consume('b', 5, T0 + SUB_WINDOW_MS);
    limiter.consume('c', 5, T0 + 2 * SUB_WINDOW_MS);
    expect(limiter.stats().trackedKeys).toBe(2);
  });

  it('refund gives back the latest sub-window; reset forgets the key; peek spends nothing', async () => {
    const limiter = new StrictRateLimiter();
    expect(limiter.consume('a', 2, T0).allowed).toBe(true);
    expect(limiter.consume('a', 2, T0 + 1).allowed).toBe(true);
    expect(limiter.consume('a', 2, T0 + 2).allowed).toBe(false);
    limiter.refund('a');
    expect((await limiter.peek('a', 2, T0 + 3)).remaining).toBe(1);
    expect((await limiter.peek('a', 2, T0 + 3)).remaining).toBe(1);
    expect(limiter.consume('a', 2, T0 + 3).allowed).toBe(true);
    await limiter.reset('a');
    expect(limiter.stats().trackedKeys).toBe(0);
    expect((await limiter.peek('a', 2, T0 + 4)).remaining).toBe(2);
    await expect(limiter.peek('a', 0, T0)).rejects.toThrow(RangeError);
  });
});

describe('strict rate-limit headers never over-promise', () => {
  it('remaining requests are allowed at any later time; the reset frees one exactly', () => {
    fc.assert(
      fc.property(limitArb, events, fc.integer({ min: 0, max: 3 * SUB_WINDOW_MS }), (limit, evs, wait) => {
        const calls: number[] = [];
        let now = T0;
        for (const ev of evs) {
          now += ev.dt;
          for (let b = 0; b < ev.burst; b++) calls.push(now);
        }
        const limiter = new StrictRateLimiter();
        calls.forEach((at, index) => {
          const decision = limiter.consume('k', limit, at);
          const headers = new Map(rateLimitHeaders(decision));
          expect(headers.get('x-ratelimit-remaining')).toBe(String(decision.remaining));
          expect(headers.get('ratelimit')).toBe(`"default";r=${decision.remaining};t=${decision.resetSeconds}`);
          // On a copy of the history: `remaining` more at any later time are all allowed; one more now is refused.
          const probe = new StrictRateLimiter();
          for (const earlier of calls.slice(0, index + 1)) probe.consume('k', limit, earlier);
          const later = new StrictRateLimiter();
          for (const earlier of calls.slice(0, index + 1)) later.consume('k', limit, earlier);
          for (let r = 0; r < decision.remaining; r++) expect(later.consume('k', limit, at + wait).allowed).toBe(true);
          if (decision.remaining === 0) {
            expect(decision.resetSeconds).toBeGreaterThanOrEqual(1);
            expect(probe.consume('k', limit, at).allowed).toBe(false);
            expect(probe.consume('k', limit, at + (decision.resetSeconds - 1) * 1000).allowed).toBe(false);
            expect(probe.consume('k', limit, at + decision.resetSeconds * 1000).allowed).toBe(true);
          } else {
            expect(decision.resetSeconds).toBe(0);
          }
        });
      }),
      { numRuns: 40 },
    );
  });
});

describe('approximate limiter (sliding-window counter)', () => {
  it('stays within 2N - 1 in any 60 s span', () => {
    fc.assert(
      fc.property(limitArb, events, fc.integer({ min: 0, max: SPAN_MS - 1 }), (limit, evs, offset) => {
        const allowed = run(new MemoryRateLimiter(), limit, evs, T0 + offset);
        for (const times of allowed.values()) expect(maxInSpan(times)).toBeLessThanOrEqual(2 * limit - 1);
      }),
      { numRuns: 300 },
    );
  });

  it('reaches more than N in a span (why strict is the default): a burst at a minute end, then the next minute', () => {
    const limiter = new MemoryRateLimiter();
    const limit = 60;
    const end = Math.ceil(T0 / SPAN_MS) * SPAN_MS;
    const times: number[] = [];
    for (let i = 0; i < limit; i++) if (limiter.consume('k', limit, end - 100).allowed) times.push(end - 100);
    for (let t = end; t < end + SPAN_MS - 100; t += 10) if (limiter.consume('k', limit, t).allowed) times.push(t);
    expect(maxInSpan(times)).toBeGreaterThan(limit);
    const strict = new StrictRateLimiter();
    const strictTimes: number[] = [];
    for (let i = 0; i < limit; i++) if (strict.consume('k', limit, end - 100).allowed) strictTimes.push(end - 100);
    for (let t = end; t < end + SPAN_MS - 100; t += 10) if (strict.consume('k', limit, t).allowed) strictTimes.push(t);
    expect(maxInSpan(strictTimes)).toBeLessThanOrEqual(limit);
  });
});
