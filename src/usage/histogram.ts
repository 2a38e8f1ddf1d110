/**
 * The fixed latency histogram kept in usage_daily/usage_monthly.duration_buckets, so
 * that p95 can be computed from the aggregates alone and aggregates can be summed.
 *
 * Layout (fixed; changing it needs a data migration): bucket i counts durations d with
 * BUCKET_BOUNDS_MS[i-1] < d <= BUCKET_BOUNDS_MS[i]; the first bucket also holds
 * everything <= 1 ms (including 0), and the last one (index BUCKET_BOUNDS_MS.length)
 * is the overflow bucket, d > 60 000 ms (+Inf). A stored histogram is a JSON array of
 * BUCKET_COUNT non-negative integers.
 *
 * Percentiles are therefore known only at bucket resolution: p95() reports the UPPER
 * bound of the bucket that holds the 95th percentile, i.e. "95% of the requests took
 * at most this long" (never an under-estimate). When the 95th percentile falls in the
 * overflow bucket there is no finite upper bound (and the aggregates keep no maximum),
 * so p95() reports the largest finite bound, 60 000 ms, to be read as "more than 60 s".
 */

/** Upper bounds (inclusive) of the finite buckets, in ms. */
export const BUCKET_BOUNDS_MS: readonly number[] = Object.freeze([
  1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 30000, 60000,
]);

/** Finite buckets plus the overflow (+Inf) bucket. */
export const BUCKET_COUNT = BUCKET_BOUNDS_MS.length + 1;

const LARGEST_FINITE = BUCKET_BOUNDS_MS[BUCKET_BOUNDS_MS.length - 1]!;

/** A histogram with every bucket 0. */
export function emptyBuckets(): number[] {
  return new Array<number>(BUCKET_COUNT).fill(0);
}

/** The index of the bucket a duration belongs to (negative or NaN durations count as 0 ms). */
export function bucketOf(ms: number): number {
  if (!(ms > BUCKET_BOUNDS_MS[0]!)) return 0; // also NaN and negatives
  // Binary search for the first bound >= ms.
  let lo = 1;
  let hi = BUCKET_BOUNDS_MS.length; // the overflow bucket
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (BUCKET_BOUNDS_MS[mid]! >= ms) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/** Adds `other` into `buckets` index by index (in place) and returns `buckets`. */
export function addInto(buckets: number[], other: readonly number[]): number[] {
  for (let i = 0; i < other.length; i++) buckets[i] = (buckets[i] ?? 0) + (Number(other[i]) || 0);
  return buckets;
}

/** Reads a stored histogram (a JSON array, or its text on SQLite) into BUCKET_COUNT numbers. */
export function parseBuckets(value: unknown): number[] {
  let arr: unknown = value;
  if (typeof value === 'string') {
    try {
      arr = JSON.parse(value);
    } catch {
      return emptyBuckets();
    }
  }
  const out = emptyBuckets();
  if (!Array.isArray(arr)) return out;
  for (let i = 0; i < arr.length; i++) {
    const n = Number(arr[i]);
    // Anything beyond the layout (never written today) is counted as overflow.
    if (Number.isFinite(n) && n > 0) out[Math.min(i, BUCKET_COUNT - 1)]! += n;
  }
  return out;
}

/**
 * The upper bound (ms) of the bucket holding the q-quantile (0 < q <= 1), or undefined
 * for an empty histogram. The overflow bucket reports the largest finite bound.
 */
export function quantileUpperBound(buckets: readonly number[], q: number): number | undefined {
  let total = 0;
  for (const c of buckets) total += c > 0 ? c : 0;
  if (total <= 0) return undefined;
  const rank = Math.max(1, Math.ceil(q * total));
  let seen = 0;
  for (let i = 0; i < buckets.length; i++) {
    const c = buckets[i]!;
    seen += c > 0 ? c : 0;
    if (seen >= rank) return i < BUCKET_BOUNDS_MS.length ? BUCKET_BOUNDS_MS[i]! : LARGEST_FINITE;
  }
  return LARGEST_FINITE;
}

/** p95 at bucket resolution (an upper bound; see the file comment), or undefined when empty. */
export function p95(buckets: readonly number[]): number | undefined {
  return quantileUpperBound(buckets, 0.95);
}
