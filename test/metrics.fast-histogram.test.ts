/**
 * FastHistogram (the Check latency histogram) is exposed exactly as prom-client's own
 * Histogram would expose the same observations.
 */
import fc from 'fast-check';
import { Histogram, Registry } from 'prom-client';
import { FastHistogram } from '../src/observability/fast-histogram';

const BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

describe('FastHistogram', () => {
  it('writes the same exposition as prom-client for any observations', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.oneof(fc.double({ min: 0, max: 5, noNaN: true }), fc.constantFrom(...BUCKETS)), { maxLength: 200 }),
        async (values) => {
          const ours = new Registry();
          const theirs = new Registry();
          const fast = new FastHistogram('h_seconds', 'help text', BUCKETS, ours);
          const reference = new Histogram({ name: 'h_seconds', help: 'help text', buckets: BUCKETS, registers: [theirs] });
          for (const v of values) {
            fast.observe(v);
            reference.observe(v);
          }
          expect(await ours.metrics()).toBe(await theirs.metrics());
        },
      ),
    );
  });
});
