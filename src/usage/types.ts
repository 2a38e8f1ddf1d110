import type { UsageCell } from './cells';
import type { SecurityCell } from '../events/security';

/**
 * Usage metering contracts. Usage is summed in memory (./cells) and written in batches,
 * never with a database write per request, and flushed at shutdown.
 *
 * Counting: `requests` is 1 only for an allowed Check (the authoritative count, which
 * quotas use); access-log entries and RecordUsage records carry `requests: 0` and add
 * response code, duration, tokens and cost, so nothing is counted twice. An entry is
 * matched to its Check by `requestId` (x-request-id) where present.
 */
export interface UsageEvent {
  /** Epoch ms. */
  at: number;
  organizationId: string;
  keyId: string;
  requestId?: string;
  /** The path without its query. */
  endpoint: string;
  method: string;
  requests: 0 | 1;
  statusCode?: number;
  durationMs?: number;
  tokens?: number;
  costUsd?: number;
  source: 'check' | 'accesslog' | 'api';
}

/**
 * One write of usage: the cells the batcher summed (./cells), and the raw detail
 * records it was asked to keep (KEYWARD_USAGE_RAW_EVENTS), each stored as a row.
 */
export interface UsageBatch {
  cells: readonly UsageCell[];
  events: readonly UsageEvent[];
  /** Security events summed over the same interval, added to their audit rows (src/events/security.ts). */
  security?: readonly SecurityCell[];
  /**
   * Ids of earlier batches this one took over (a batch whose write failed, merged into
   * this one): recorded with the batch's own id, so that a journal copy of theirs is
   * not applied again.
   */
  alsoIds?: readonly string[];
}

/** Where usage goes; the batcher calls write() with whole batches. */
export interface UsageSink {
  /**
   * Stores the raw events and adds the cells to the daily and monthly aggregates, in one
   * transaction. With a `batchId` (1–32 characters [A-Za-z0-9_-]) the write is
   * idempotent: the id (and alsoIds) is recorded in the same transaction, and a batch
   * whose id was already recorded writes nothing and resolves `false`. Resolves `true`
   * otherwise.
   */
  write(batch: UsageBatch, batchId?: string): Promise<boolean>;
}

/** One usage record reported through RecordUsage, as read from the request; zero or '' means not reported. */
export interface UsageRecordInput {
  keyId: string;
  requestId: string;
  endpoint: string;
  method: string;
  statusCode: number;
  durationMs: number;
  tokens: number;
  costUsd: number;
  time: Date | undefined;
}

/** Sums over a set of usage events (GetUsageStats). */
export interface UsageTotals {
  /** Allowed Checks. */
  requests: number;
  /** Responses with a 4xx / 5xx code (from access logs and RecordUsage). */
  errors4xx: number;
  errors5xx: number;
  tokens: number;
  costUsd: number;
  /** Over the events that reported a duration; undefined when none did. */
  avgDurationMs?: number;
  /** The upper bound of the histogram bucket holding the 95th percentile. */
  p95DurationMs?: number;
}

/** An organization's usage in one calendar month or billing period (optionally of one key). */
export interface UsageReport {
  organizationId: string;
  /** YYYY-MM: the calendar month, or the month the billing period starts in. */
  month: string;
  /** Whether this reports a billing period rather than a calendar month. */
  billingPeriod: boolean;
  /** The reported interval [periodStart, periodEnd), UTC. */
  periodStart: Date;
  periodEnd: Date;
  /** '' for every key. */
  keyId: string;
  totals: UsageTotals;
  /** Sorted by requests, most first. */
  byEndpoint: { endpoint: string; method: string; totals: UsageTotals }[];
  byKey: { keyId: string; totals: UsageTotals }[];
  /** Every day of the interval that had usage, in order (YYYY-MM-DD). */
  byDay: { day: string; totals: UsageTotals }[];
}
