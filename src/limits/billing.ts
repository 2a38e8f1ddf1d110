/**
 * Billing periods, pure. An organization's quota month starts at 00:00 UTC on its
 * anchor day (1..28, so the day exists in every month) and ends at the same instant
 * one month later: [start, end).
 */
import type { BillingPeriod } from './types';

/** 00:00:00.000 UTC of (year, month, day); month may overflow (12 → January of year + 1). */
function utcMidnight(year: number, month: number, day: number): Date {
  // Not Date.UTC: it maps years 0..99 to 1900..1999.
  const d = new Date(0);
  d.setUTCFullYear(year, month, day);
  d.setUTCHours(0, 0, 0, 0);
  return d;
}

/**
 * The period containing `nowMs`: it starts on `anchorDay` of this month (UTC) when
 * today's date is >= anchorDay, otherwise on `anchorDay` of the previous month, and
 * ends on the same day one month later. Throws RangeError for an anchor day outside
 * 1..28 or a time that is not a finite number.
 */
export function billingPeriod(anchorDay: number, nowMs: number): BillingPeriod {
  if (!Number.isInteger(anchorDay) || anchorDay < 1 || anchorDay > 28) {
    throw new RangeError(`billing anchor day must be an integer in 1..28, got ${anchorDay}`);
  }
  if (!Number.isFinite(nowMs)) throw new RangeError(`invalid time: ${nowMs}`);
  const now = new Date(nowMs);
  const year = now.getUTCFullYear();
  // One month back when the anchor day of this month is still ahead (month -1 wraps to December of year - 1).
  const month = now.getUTCDate() >= anchorDay ? now.getUTCMonth() : now.getUTCMonth() - 1;
  return { start: utcMidnight(year, month, anchorDay), end: utcMidnight(year, month + 1, anchorDay) };
}

/** The last period billingPeriodShared computed, per anchor day. */
const lastPeriods: (BillingPeriod | undefined)[] = [];

/**
 * billingPeriod, with the last answer per anchor day reused while nowMs is inside it (no
 * allocation on a hot path). The period returned is shared: never mutate its Dates.
 */
export function billingPeriodShared(anchorDay: number, nowMs: number): BillingPeriod {
  const last = lastPeriods[anchorDay];
  if (last && nowMs >= last.start.getTime() && nowMs < last.end.getTime()) return last;
  const period = billingPeriod(anchorDay, nowMs);
  lastPeriods[anchorDay] = period;
  return period;
}

/** Whole seconds from nowMs until `end`, rounded up and at least 1 (a Retry-After value). */
export function secondsUntil(end: Date | number, nowMs: number): number {
  const endMs = typeof end === 'number' ? end : end.getTime();
  return Math.max(1, Math.ceil((endMs - nowMs) / 1000));
}
