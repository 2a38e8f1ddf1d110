/**
 * A histogram without labels whose observe() is a bucket search and three additions,
 * for the one metric every Check feeds (keyward_check_duration_seconds). prom-client's
 * Histogram hashes its (empty) label set on every observation; this one is registered
 * on the same Registry as a collector and exposed in the same text format:
 * cumulative `_bucket{le="…"}` lines up to `+Inf`, then `_sum` and `_count`.
 */
import type { MetricObjectWithValues, MetricValueWithName, Registry } from 'prom-client';

export class FastHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly counts: Float64Array;
  private sum = 0;
  private count = 0;

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly buckets: readonly number[],
    registry: Registry,
  ) {
    this.counts = new Float64Array(buckets.length + 1);
    registry.registerMetric(this as never);
  }

  observe(value: number): void {
    const b = this.buckets;
    let lo = 0;
    let hi = b.length;
    // The first bucket whose upper bound is ≥ value (b.length: +Inf).
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (b[mid]! < value) lo = mid + 1;
      else hi = mid;
    }
    this.counts[lo]! += 1;
    this.sum += value;
    this.count += 1;
  }

  /** What the Registry formats (prom-client's own shape for a histogram). */
  get(): Promise<Omit<MetricObjectWithValues<MetricValueWithName<string>>, 'collect'>> {
    const values: MetricValueWithName<string>[] = [];
    let cumulative = 0;
    for (let i = 0; i <= this.buckets.length; i++) {
      cumulative += this.counts[i]!;
      values.push({
        metricName: `${this.name}_bucket`,
        labels: { le: i < this.buckets.length ? this.buckets[i]! : '+Inf' },
        value: cumulative,
      });
    }
    values.push({ metricName: `${this.name}_sum`, labels: {}, value: this.sum });
    values.push({ metricName: `${this.name}_count`, labels: {}, value: this.count });
    return Promise.resolve({ name: this.name, help: this.help, type: 'histogram' as never, values, aggregator: 'sum' });
  }

  reset(): void {
    this.counts.fill(0);
    this.sum = 0;
    this.count = 0;
  }
}
