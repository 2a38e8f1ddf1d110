import fc from 'fast-check';
import { billingPeriod, billingPeriodShared, secondsUntil } from '../src/limits/billing';

const iso = (ms: number) => new Date(ms).toISOString();
const at = (s: string) => Date.parse(s);

describe('billingPeriod', () => {
  const cases: Array<[string, number, string, string, string]> = [
    // [what, anchor, now, start, end]
    [
      'anchor 1, exactly Jan 1 00:00:00.000: the period starts at that instant',
      1,
      '2026-01-01T00:00:00.000Z',
      '2026-01-01T00:00:00.000Z',
      '2026-02-01T00:00:00.000Z',
    ],
    [
      'anchor 1, 1 ms before Jan 1: December of the previous year',
      1,
      '2025-12-31T23:59:59.999Z',
      '2025-12-01T00:00:00.000Z',
      '2026-01-01T00:00:00.000Z',
    ],
    ['anchor 1, mid-month', 1, '2026-07-17T12:34:56.789Z', '2026-07-01T00:00:00.000Z', '2026-08-01T00:00:00.000Z'],
    [
      'anchor 15 on the 14th (last ms): previous month',
      15,
      '2026-03-14T23:59:59.999Z',
      '2026-02-15T00:00:00.000Z',
      '2026-03-15T00:00:00.000Z',
    ],
    [
      'anchor 15 on the 14th (first ms): previous month',
      15,
      '2026-03-14T00:00:00.000Z',
      '2026-02-15T00:00:00.000Z',
      '2026-03-15T00:00:00.000Z',
    ],
    ['anchor 15 on the 15th 00:00: this month', 15, '2026-03-15T00:00:00.000Z', '2026-03-15T00:00:00.000Z', '2026-04-15T00:00:00.000Z'],
    ['anchor 15 on the 15th, late', 15, '2026-03-15T23:59:59.999Z', '2026-03-15T00:00:00.000Z', '2026-04-15T00:00:00.000Z'],
    ['anchor 28 in February, non-leap (Feb 28)', 28, '2026-02-28T10:00:00.000Z', '2026-02-28T00:00:00.000Z', '2026-03-28T00:00:00.000Z'],
    ['anchor 28 in February, non-leap (Feb 27)', 28, '2026-02-27T10:00:00.000Z', '2026-01-28T00:00:00.000Z', '2026-02-28T00:00:00.000Z'],
    ['anchor 28 in February, leap year (Feb 29)', 28, '2028-02-29T10:00:00.000Z', '2028-02-28T00:00:00.000Z', '2028-03-28T00:00:00.000Z'],
    ['anchor 28 in February, leap year (Feb 27)', 28, '2028-02-27T23:59:59.999Z', '2028-01-28T00:00:00.000Z', '2028-02-28T00:00:00.000Z'],
    ['anchor 28 on Mar 1 of a leap year', 28, '2028-03-01T00:00:00.000Z', '2028-02-28T00:00:00.000Z', '2028-03-28T00:00:00.000Z'],
    [
      'anchor 28 on Dec 31: Dec 28 .. Jan 28 of the next year',
      28,
      '2026-12-31T23:59:59.999Z',
      '2026-12-28T00:00:00.000Z',
      '2027-01-28T00:00:00.000Z',
    ],
    [
      'anchor 15 on Jan 10: Dec 15 of the previous year .. Jan 15',
      15,
      '2026-01-10T08:00:00.000Z',
      '2025-12-15T00:00:00.000Z',
      '2026-01-15T00:00:00.000Z',
    ],
    ['anchor 28 on Jan 1: Dec 28 .. Jan 28', 28, '2026-01-01T00:00:00.000Z', '2025-12-28T00:00:00.000Z', '2026-01-28T00:00:00.000Z'],
    [
      'anchor 1 in a year below 100 (no 1900 offset)',
      1,
      '0050-06-10T00:00:00.000Z',
      '0050-06-01T00:00:00.000Z',
      '0050-07-01T00:00:00.000Z',
    ],
  ];

  it.each(cases)('%s', (_what, anchor, now, start, end) => {
    const p = billingPeriod(anchor, at(now));
    expect({ start: p.start.toISOString(), end: p.end.toISOString() }).toEqual({ start, end });
  });

  it('rejects anchor days outside 1..28 and non-finite times', () => {
    for (const bad of [0, 29, 31, -1, 1.5, Number.NaN]) expect(() => billingPeriod(bad, at('2026-01-01T00:00:00Z'))).toThrow(RangeError);
    expect(() => billingPeriod(1, Number.NaN)).toThrow(RangeError);
    expect(() => billingPeriod(1, Number.POSITIVE_INFINITY)).toThrow(RangeError);
  });

  it('property: start <= now < end, both on the anchor day at 00:00 UTC, end exactly one month after start', () => {
    const MIN = at('1970-01-01T00:00:00Z');
    const MAX = at('2400-12-31T23:59:59.999Z');
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 28 }), fc.integer({ min: MIN, max: MAX }), (anchor, now) => {
        const { start, end } = billingPeriod(anchor, now);
        const s = start.getTime();
        const e = end.getTime();
        if (!(s <= now && now < e)) throw new Error(`${iso(now)} not in [${iso(s)}, ${iso(e)})`);
        for (const d of [start, end]) {
          expect(d.getUTCDate()).toBe(anchor);
          expect([d.getUTCHours(), d.getUTCMinutes(), d.getUTCSeconds(), d.getUTCMilliseconds()]).toEqual([0, 0, 0, 0]);
        }
        const months = (end.getUTCFullYear() - start.getUTCFullYear()) * 12 + end.getUTCMonth() - start.getUTCMonth();
        expect(months).toBe(1);
        // The period is the one containing now: the next one starts at `end`, the previous ends at `start`.
        expect(billingPeriod(anchor, e).start.getTime()).toBe(e);
        expect(billingPeriod(anchor, s - 1).end.getTime()).toBe(s);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('secondsUntil', () => {
  it('rounds up and is at least 1', () => {
    const end = new Date('2026-02-01T00:00:00Z');
    expect(secondsUntil(end, end.getTime() - 1)).toBe(1);
    expect(secondsUntil(end, end.getTime() - 1000)).toBe(1);
    expect(secondsUntil(end, end.getTime() - 1001)).toBe(2);
    expect(secondsUntil(end, end.getTime())).toBe(1);
    expect(secondsUntil(end, end.getTime() + 5000)).toBe(1);
    expect(secondsUntil(end.getTime(), end.getTime() - 86_400_000)).toBe(86_400);
  });
});

describe('billingPeriodShared', () => {
  it('answers as billingPeriod for any sequence of times, the last period per anchor day reused', () => {
    const day = 86_400_000;
    const time = fc.oneof(
      fc.integer({ min: Date.UTC(2025, 0, 1), max: Date.UTC(2027, 0, 1) }),
      // Period boundaries and 1 ms either side.
      fc.tuple(fc.integer({ min: 0, max: 700 }), fc.constantFrom(-1, 0, 1)).map(([d, e]) => Date.UTC(2025, 0, 1) + d * day + e),
    );
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 1, max: 28 }), time), { maxLength: 50 }), (calls) => {
        for (const [anchor, now] of calls) expect(billingPeriodShared(anchor, now)).toEqual(billingPeriod(anchor, now));
      }),
    );
    const t = Date.UTC(2026, 2, 10);
    expect(billingPeriodShared(5, t)).toBe(billingPeriodShared(5, t + 1000));
    expect(() => billingPeriodShared(29, t)).toThrow(RangeError);
  });
});
