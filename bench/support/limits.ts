/**
 * The limits of the benchmarks' organizations: the highest rate limit KeyAdmin accepts
 * and a monthly quota no run comes near, so that every allowed Check consults (and
 * charges) the rate limiter and the quota, as a production key does, and neither ever
 * refuses.
 */
import { LIMITS } from '../../src/admin/validate';

export const UNREACHED_RATE_LIMIT = LIMITS.rateLimitMax;
export const UNREACHED_QUOTA = 1_000_000_000_000;
