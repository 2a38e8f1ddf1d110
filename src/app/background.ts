/**
 * The periodic upkeep a running keyward does beside its flushes: purging usage events
 * past retention, telling of keys about to expire, purging remembered retry-safe
 * KeyAdmin calls past their window, and warning while usage events are dropped. Each
 * runs on the Scheduler.
 */
import type { Logger } from 'pino';
import type { AdminRequests } from '../admin/requests';
import type { UsageBatcher } from '../usage/batcher';
import { retentionCutoff, type UsageStore } from '../usage/store';
import type { Clock } from '../util/clock';
import { describeError } from '../util/logger';
import type { Scheduler } from '../util/scheduler';
import type { ExpiringKeys } from '../store/expiring-keys';

/** How close an expiry is when `key.expiring` is told. */
export const EXPIRING_WITHIN_MS = 7 * 86_400_000;

export interface UpkeepDeps {
  usage: Pick<UsageBatcher, 'stats'>;
  usageStore: Pick<UsageStore, 'purgeEventsBefore'>;
  /** KEYWARD_USAGE_RETENTION_DAYS. */
  retentionDays: number;
  /** Writes `key.expiring` events (src/store/expiring-keys.ts). */
  expiringKeys?: ExpiringKeys;
  clock: Clock;
  logger: Logger;
  scheduler: Scheduler;
  /** Retry-safe KeyAdmin calls (request_id): purged once now and every ADMIN_REQUEST_PURGE_MS. */
  adminRequests?: Pick<AdminRequests, 'purge'>;
}

/** How often remembered KeyAdmin calls past their 24 h window are deleted (their sealed secrets with them). */
export const ADMIN_REQUEST_PURGE_MS = 60_000;

/** Purges once now and hourly after; warns every 10 s while usage is dropped. Returns how to stop both. */
export function startUpkeep(deps: UpkeepDeps): () => void {
  const { logger } = deps;
  const purge = () =>
    deps.usageStore.purgeEventsBefore(retentionCutoff(deps.clock.now().getTime(), deps.retentionDays)).then(
      (n) => n > 0 && logger.info({ events: n, retentionDays: deps.retentionDays }, 'old usage events purged'),
      (e: unknown) => logger.warn({ err: describeError(e) }, 'usage retention purge failed'),
    );
  void purge();
  const stopPurge = deps.scheduler.every('usage-purge', 3_600_000, () => void purge());
  const expiring = deps.expiringKeys;
  const scanExpiring = () =>
    expiring?.record(deps.clock.now().getTime(), EXPIRING_WITHIN_MS).then(
      (n) => n > 0 && logger.info({ keys: n }, 'keys expiring within 7 days: key.expiring events written'),
      (e: unknown) => logger.warn({ err: describeError(e) }, 'expiring-key scan failed; will retry'),
    );
  void scanExpiring();
  const stopExpiring = expiring ? deps.scheduler.every('key-expiry-scan', 3_600_000, () => void scanExpiring()) : () => undefined;
  // Dropped usage is never silent.
  let droppedSeen = 0;
  const stopDropWarning = deps.scheduler.every('usage-drop-warning', 10_000, () => {
    const dropped = deps.usage.stats().dropped;
    if (dropped > droppedSeen)
      logger.warn(
        { dropped: dropped - droppedSeen, total: dropped },
        'usage events dropped: the buffer (KEYWARD_USAGE_BUFFER_MAX) was full',
      );
    droppedSeen = dropped;
  });
  let stopRequestPurge = () => undefined as void;
  const requests = deps.adminRequests;
  if (requests) {
    const purgeRequests = () =>
      requests.purge().then(
        (n) => n > 0 && logger.debug({ requests: n }, 'expired admin request records purged'),
        (e: unknown) => logger.warn({ err: describeError(e) }, 'admin request purge failed'),
      );
    void purgeRequests();
    stopRequestPurge = deps.scheduler.every('admin-request-purge', ADMIN_REQUEST_PURGE_MS, () => void purgeRequests());
  }
  return () => {
    stopPurge();
    stopExpiring();
    stopDropWarning();
    stopRequestPurge();
  };
}
