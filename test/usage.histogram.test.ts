/** The fixed latency histogram: bucket boundaries, merging and p95 at bucket resolution. */
import fc from 'fast-check';
import {
  addInto,
  BUCKET_BOUNDS_MS,
  BUCKET_COUNT,
  bucketOf,
  emptyBuckets,
  p95,
  parseBuckets,
  quantileUpperBound,
} from '../src/usage/histogram';

describe('latency histogram', () => {
  it('has 15 finite buckets and an overflow bucket', () => {
    expect(BUCKET_BOUNDS_MS).toEqual([1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 30000, 60000]);
    expect(BUCKET_COUNT).toBe(16);
    expect(emptyBuckets()).toEqual(new Array(16).fill(0));
  });

  it('bucketOf: upper bounds are inclusive; 0, negatives and NaN go to the first bucket; beyond 60 s to overflow', () => {
    expect([0, 0.5, 1, 1.0001, 2, 2.5, 5, 10, 10.5, 20, 60000, 60000.1, 1e9].map(bucketOf)).toEqual([
      0, 0, 0, 1, 1, 2, 2, 3, 4, 4, 14, 15, 15,
    ]);
    expect(bucketOf(-3)).toBe(0);
    expect(bucketOf(Number.NaN)).toBe(0);
    expect(bucketOf(Number.POSITIVE_INFINITY)).toBe(15);
  });

  it('bucketOf agrees with a linear scan', () => {
    fc.assert(
      fc.property(fc.double({ min: 0, max: 1e6, noNaN: true }), (ms) => {
        let expected = BUCKET_BOUNDS_MS.findIndex((b) => ms <= b);
        if (expected < 0) expected = BUCKET_BOUNDS_MS.length;
        expect(bucketOf(ms)).toBe(expected);
      }),
    );
  });

  it('addInto sums index by index, in place', () => {
    const a = emptyBuckets();
    a[3] = 2;
    const b = emptyBuckets();
    b[3] = 1;
    b[15] = 4;
    expect(addInto(a, b)).toBe(a);
    expect(a[3]).toBe(3);
    expect(a[15]).toBe(4);
    expect(a.reduce((s, c) => s + c, 0)).toBe(7);
  });

  it('parseBuckets reads JSON text or arrays and pads to the layout', () => {
    expect(parseBuckets('[1,2]')).toEqual([1, 2, ...new Array<number>(14).fill(0)]);
    expect(parseBuckets([0, 0, 3])).toEqual([0, 0, 3, ...new Array<number>(13).fill(0)]);
    expect(parseBuckets('not json')).toEqual(emptyBuckets());
    expect(parseBuckets(null)).toEqual(emptyBuckets());
  });

  it('p95 is the upper bound of the bucket holding the 95th percentile; undefined when empty', () => {
    expect(p95(emptyBuckets())).toBeUndefined();
    const h = emptyBuckets();
    // 95 requests of <= 10 ms and 5 of (1000, 2000]: the 95th is still in the 10 ms bucket.
    h[bucketOf(7)] = 95;
    h[bucketOf(1500)] = 5;
    expect(p95(h)).toBe(10);
    // One more slow request moves the 95th percentile into the slow bucket.
    h[bucketOf(1500)] = 6;
    expect(p95(h)).toBe(2000);
    expect(quantileUpperBound(h, 0.5)).toBe(10);
  });

  it('p95 in the overflow bucket reports the largest finite bound (60 000 ms)', () => {
    const h = emptyBuckets();
    h[15] = 10;
    expect(p95(h)).toBe(60000);
  });

  it('p95 is never below the true 95th percentile and at most one bucket above it', () => {
    fc.assert(
      fc.property(fc.array(fc.double({ min: 0, max: 59_999, noNaN: true }), { minLength: 1, maxLength: 300 }), (samples) => {
        const h = emptyBuckets();
        for (const s of samples) h[bucketOf(s)]!++;
        const sorted = [...samples].sort((x, y) => x - y);
        const truth = sorted[Math.ceil(0.95 * sorted.length) - 1]!;
        const reported = p95(h)!;
        expect(reported).toBeGreaterThanOrEqual(truth);
        expect(bucketOf(reported)).toBe(bucketOf(truth));
      }),
    );
  });
});
