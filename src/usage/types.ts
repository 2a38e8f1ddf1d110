/**
 * Usage metering contracts. Usage is buffered in memory and written in batches, never
 * with a database write per request, and flushed at shutdown.
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

/** Where usage goes; the batcher calls write() with whole batches. */
export interface UsageSink {
  /**
   * Inserts the raw events and upserts the daily and monthly aggregates, in one
   * transaction. With a `batchId` (1–32 characters [A-Za-z0-9_-]) the write is
   * idempotent: the id is recorded in the same transaction, and a batch whose id was
   * already recorded writes nothing and resolves `false`. Resolves `true` otherwise.
   */
  write(events: readonly UsageEvent[], batchId?: string): Promise<boolean>;
}
