/**
 * The strict limiter's edge cases, run against the memory limiter and the Redis one.
 */
import type { RateDecision } from '../../src/limits/types';
import { type EdgeContext, T0, uniqueKeyId, W } from './redis';

/** Registers the strict edge tests for one backend; `make` per test, `dispose` after it. */
export function strictLimiterEdgeCases(make: () => Promise<EdgeContext> | EdgeContext, dispose: (c: EdgeContext) => Promise<void>): void {
  let ctx: EdgeContext;
  let key: string;
  beforeEach(async () => {
    ctx = await make();
    key = uniqueKeyId();
  });
  afterEach(async () => {
    await dispose(ctx);
  });
  const consume = (k: string, limit: number, t: number): Promise<RateDecision> => Promise.resolve(ctx.limiter.consume(k, limit, t));

  it('allows 10, counts remaining down, denies the 11th; the reset is when the sub-window leaves (65 s)', async () => {
    for (let i = 0; i < 10; i++) {
      expect(await consume(key, 10, T0 + i)).toEqual({ allowed: true, limit: 10, remaining: 9 - i, resetSeconds: i < 9 ? 0 : 65 });
    }
    expect(await consume(key, 10, T0 + 10)).toEqual({ allowed: false, limit: 10, remaining: 0, resetSeconds: 65 });
    expect((await consume(key, 10, T0 + 64_999)).allowed).toBe(false);
    expect(await consume(key, 10, T0 + 65_000)).toEqual({ allowed: true, limit: 10, remaining: 9, resetSeconds: 0 });
  });

  it('a burst at the end of a minute leaves nothing for the next 60 s (no 2N across the edge)', async () => {
    for (let i = 0; i < 10; i++) expect((await consume(key, 10, T0 + W - 100)).allowed).toBe(true);
    for (let t = T0 + W; t < T0 + 2 * W - 100; t += 4_999) expect((await consume(key, 10, t)).allowed).toBe(false);
    expect((await consume(key, 10, T0 + 2 * W)).allowed).toBe(true);
  });

  it('counts each sub-window until it has fully left: a 5 s step frees the oldest one', async () => {
    for (let i = 0; i < 5; i++) expect((await consume(key, 5, T0 + i * 5_000)).allowed).toBe(true);
    expect(await consume(key, 5, T0 + 64_999)).toEqual({ allowed: false, limit: 5, remaining: 0, resetSeconds: 1 });
    expect((await consume(key, 5, T0 + 65_000)).allowed).toBe(true);
    expect((await consume(key, 5, T0 + 65_001)).allowed).toBe(false);
  });

  it('refund gives back one of the latest sub-window; peek does not spend', async () => {
    for (let i = 0; i < 3; i++) await consume(key, 3, T0);
    expect((await ctx.limiter.peek(key, 3, T0 + 1)).remaining).toBe(0);
    await ctx.limiter.refund(key, T0 + 1);
    expect(await ctx.limiter.peek(key, 3, T0 + 1)).toEqual({ allowed: true, limit: 3, remaining: 1, resetSeconds: 0 });
    expect((await consume(key, 3, T0 + 2)).allowed).toBe(true);
    expect((await consume(key, 3, T0 + 2)).allowed).toBe(false);
  });

  it('reset forgets the key; two keys are independent', async () => {
    const other = uniqueKeyId();
    for (let i = 0; i < 2; i++) await consume(key, 2, T0);
    expect((await consume(other, 2, T0)).allowed).toBe(true);
    ctx.setNow(T0 + 1);
    await ctx.limiter.reset(key);
    expect((await ctx.limiter.peek(key, 2, T0 + 1)).remaining).toBe(2);
    expect((await ctx.limiter.peek(other, 2, T0 + 1)).remaining).toBe(1);
  });

  it('a clock stepped back is charged to the latest sub-window', async () => {
    expect((await consume(key, 2, T0 + W)).allowed).toBe(true);
    expect((await consume(key, 2, T0)).allowed).toBe(true);
    expect((await consume(key, 2, T0 + W + 64_999)).allowed).toBe(false);
    expect((await consume(key, 2, T0 + W + 65_000)).allowed).toBe(true);
  });
}
