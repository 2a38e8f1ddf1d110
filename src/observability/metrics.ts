/**
 * Prometheus metrics (prom-client), every name prefixed `keyward_`.
 *
 * Contract:
 *  - One Registry per App (never prom-client's global one), so several apps in one
 *    process (tests) do not mix.
 *  - The hot path pays for two things only: checkDecided() (one counter slot per
 *    outcome code, one histogram observation). Everything else is read from the
 *    components' own counters at scrape time (collect callbacks), so metrics add no
 *    work to a Check, a flush or a notification.
 *  - Counters read from components are monotonic: a component's counter that goes
 *    down (it was replaced) is followed from its new value without going backwards.
 *  - Labels are closed sets: outcome codes (the domain's error codes plus `ok`), admin
 *    method names and their codes. Nothing from a request (paths, ids) becomes a label.
 */
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { FastHistogram } from './fast-histogram';
import type { UsageBatcherStats } from '../usage/batcher';

/** Check latency buckets, seconds: 50 µs to 2.5 s. */
const CHECK_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

/** What metrics read at scrape time; each is optional (absent components are not exported). */
export interface MetricSources {
  cache?: () => {
    hits: number;
    misses: number;
    negativeHits: number;
    evictions: number;
    storeErrors: number;
    staleServed: number;
    missesThrottled: number;
    previousLookups?: number;
    size: number;
  };
  limiter?: () => {
    backend: string;
    trackedKeys: number;
    allowed: number;
    limited: number;
    redisErrors: number;
    fallbackDecisions: number;
  };
  /** The batcher's numbers, and the usage store's events counted under `(other)`. */
  usage?: () => UsageBatcherStats & { endpointOverflow?: number };
  lastUsed?: () => { pending: number; flushErrors: number };
  /** Webhook delivery in this process (src/webhooks/worker.ts). */
  webhooks?: () => { attempts: number; delivered: number; failedAttempts: number; paused: number; passErrors: number };
  /** Rotation of the hash secret (all 0 without a previous secret). */
  hashRotation?: () => { keysOnPrevious: number; adminTokensOnPrevious: number; rehashed: number; flushErrors: number };
  accessLog?: () => {
    streams: number;
    entriesSeen: number;
    entriesRecorded: number;
    entriesIgnored: number;
    undecodable: number;
    pauses: number;
  };
  changes?: () => { connected: boolean; reconnects: number };
  /** Each TLS port's certificate state (ports without TLS are absent). */
  tls?: () => Partial<Record<string, { notAfterSeconds: number; reloads: number; rejected: number; filesValid: boolean }>>;
  store?: () => { errors: number };
  quota?: () => { errors: number };
}

export class Metrics {
  readonly registry = new Registry();
  private readonly decisions = new Map<string, number>();
  private readonly checkSeconds: FastHistogram;
  private readonly adminCalls: Counter<'method' | 'code'>;
  private readonly adminAuthFailures: Counter;

  constructor(opts: { defaultMetrics?: boolean } = {}) {
    if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry, prefix: 'keyward_' });
    const decisions = this.decisions;
    new Counter({
      name: 'keyward_check_decisions_total',
      help: 'Check decisions by outcome code (ok, or the machine-readable error code of the denial).',
      labelNames: ['code'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [code, n] of decisions) this.inc({ code }, n);
      },
    });
    this.checkSeconds = new FastHistogram(
      'keyward_check_duration_seconds',
      'Time from a decoded Check request to its response (store lookups included, gRPC transport excluded).',
      CHECK_BUCKETS,
      this.registry,
    );
    this.adminCalls = new Counter({
      name: 'keyward_admin_calls_total',
      help: 'KeyAdmin calls by method and outcome code (ok, or the machine-readable error code).',
      labelNames: ['method', 'code'],
      registers: [this.registry],
    });
    this.adminAuthFailures = new Counter({
      name: 'keyward_admin_auth_failures_total',
      help: 'KeyAdmin calls refused for a missing or invalid credential.',
      registers: [this.registry],
    });
  }

  /** One Check answered: its outcome code and its duration in seconds. */
  checkDecided(code: string, seconds: number): void {
    this.decisions.set(code, (this.decisions.get(code) ?? 0) + 1);
    this.checkSeconds.observe(seconds);
  }

  adminCall(method: string, code: string): void {
    this.adminCalls.inc({ method, code });
    if (code === 'invalid_credentials' || code === 'missing_credentials') this.adminAuthFailures.inc();
  }

  /** Registers the scrape-time metrics of the components that exist. */
  watch(s: MetricSources): void {
    const r = this.registry;
    const counter = (name: string, help: string, read: () => number) => followed(r, name, help, read);
    const gauge = (name: string, help: string, read: () => number) =>
      new Gauge({
        name,
        help,
        registers: [r],
        collect() {
          this.set(read());
        },
      });
    if (s.tls) {
      const t = s.tls;
      const perPort = (
        name: string,
        help: string,
        type: 'gauge' | 'counter',
        read: (v: { notAfterSeconds: number; reloads: number; rejected: number; filesValid: boolean }) => number,
      ) =>
        new (type === 'gauge' ? Gauge : Counter)({
          name,
          help,
          labelNames: ['port'],
          registers: [r],
          collect(this: Gauge<'port'> | Counter<'port'>) {
            this.reset();
            for (const [port, v] of Object.entries(t())) if (v) (this as Gauge<'port'>).inc({ port }, read(v));
          },
        });
      perPort(
        'keyward_tls_certificate_not_after_seconds',
        'Expiry (Unix time) of the certificate each TLS port serves.',
        'gauge',
        (v) => v.notAfterSeconds,
      );
      perPort(
        'keyward_tls_files_valid',
        '1 while the certificate files on disk are a valid set, 0 while a rewrite is rejected (the last good set keeps serving).',
        'gauge',
        (v) => (v.filesValid ? 1 : 0),
      );
      perPort('keyward_tls_reloads_total', 'Certificate sets reloaded from changed files.', 'counter', (v) => v.reloads);
      perPort('keyward_tls_reloads_rejected_total', 'Changed certificate files rejected as not a valid set.', 'counter', (v) => v.rejected);
    }
    if (s.cache) {
      const c = s.cache;
      counter('keyward_cache_hits_total', 'Checks answered from the key cache.', () => c().hits);
      counter('keyward_cache_misses_total', 'Key cache misses (a store lookup, or a throttled miss).', () => c().misses);
      counter('keyward_cache_negative_hits_total', 'Checks of unknown keys answered from the negative cache.', () => c().negativeHits);
      counter('keyward_cache_evictions_total', 'Cached keys evicted because the cache was full.', () => c().evictions);
      counter(
        'keyward_cache_stale_served_total',
        'Checks answered from an expired entry while the store failed or the lookup budget was spent.',
        () => c().staleServed,
      );
      counter(
        'keyward_cache_misses_throttled_total',
        'Misses answered without a lookup because KEYWARD_CACHE_MISS_QUERIES_PER_SECOND was spent.',
        () => c().missesThrottled,
      );
      gauge('keyward_cache_entries', 'Keys in the cache.', () => c().size);
      counter(
        'keyward_cache_previous_secret_lookups_total',
        'Key lookups under the previous hash secret (a miss under the primary while it is rotated).',
        () => c().previousLookups ?? 0,
      );
    }
    const storeErrors = () => (s.cache?.().storeErrors ?? 0) + (s.store?.().errors ?? 0);
    counter('keyward_store_errors_total', 'Failed store operations on the data plane (key lookups and other reads).', storeErrors);
    if (s.limiter) {
      const l = s.limiter;
      counter('keyward_ratelimit_allowed_total', 'Requests the rate limiter allowed.', () => l().allowed);
      counter('keyward_ratelimit_limited_total', 'Requests the rate limiter refused.', () => l().limited);
      counter('keyward_redis_errors_total', 'Redis commands of the limiter that failed.', () => l().redisErrors);
      counter(
        'keyward_ratelimit_fallback_decisions_total',
        'Decisions the limiter made with its fallback while Redis failed.',
        () => l().fallbackDecisions,
      );
      gauge('keyward_ratelimit_tracked_keys', 'Keys the in-memory limiter tracks.', () => l().trackedKeys);
    }
    if (s.usage) {
      const u = s.usage;
      gauge(
        'keyward_usage_buffer_depth',
        'Usage cells and raw events waiting to be written (including a write in flight).',
        () => u().buffered + u().inFlight,
      );
      counter('keyward_usage_flushes_total', 'Usage batch writes that succeeded.', () => u().flushes);
      counter('keyward_usage_flush_errors_total', 'Usage batch writes that failed (their events were kept).', () => u().flushErrors);
      counter('keyward_usage_events_written_total', 'Usage events written to the store.', () => u().flushed);
      counter('keyward_usage_events_dropped_total', 'Usage events dropped because the buffer was full.', () => u().dropped);
      counter(
        'keyward_usage_endpoint_overflow_total',
        'Usage events counted under the endpoint (other): their organization had reached KEYWARD_USAGE_MAX_ENDPOINTS for the month.',
        () => u().endpointOverflow ?? 0,
      );
      gauge(
        'keyward_usage_journal_pending_events',
        'Usage events in the journal waiting to be replayed into the store.',
        () => u().journal?.pendingEvents ?? 0,
      );
      gauge('keyward_usage_journal_bytes', 'Bytes the usage journal holds on disk.', () => u().journal?.bytes ?? 0);
      counter(
        'keyward_usage_journal_spilled_events_total',
        'Usage events appended to the journal because the store could not take them.',
        () => u().journal?.spilled ?? 0,
      );
      counter(
        'keyward_usage_journal_replayed_events_total',
        'Usage events replayed from the journal into the store.',
        () => u().journal?.replayed ?? 0,
      );
      counter(
        'keyward_usage_journal_duplicate_batches_total',
        'Replayed batches the store already had (written before a crash); skipped.',
        () => u().journal?.duplicates ?? 0,
      );
      counter(
        'keyward_usage_journal_errors_total',
        'Usage journal appends that failed (the events stayed in memory).',
        () => u().journal?.errors ?? 0,
      );
    }
    if (s.lastUsed) {
      const lu = s.lastUsed;
      gauge('keyward_last_used_pending', 'Keys whose last-use time waits to be written.', () => lu().pending);
      counter('keyward_last_used_flush_errors_total', 'last_used_at batch writes that failed.', () => lu().flushErrors);
    }
    if (s.webhooks) {
      const w = s.webhooks;
      counter('keyward_webhook_attempts_total', 'Webhook delivery attempts made by this process.', () => w().attempts);
      counter('keyward_webhook_delivered_total', 'Webhook deliveries that got a 2xx answer.', () => w().delivered);
      counter(
        'keyward_webhook_failed_attempts_total',
        'Webhook attempts that failed (non-2xx, timeout, refused target).',
        () => w().failedAttempts,
      );
      counter('keyward_webhooks_paused_total', 'Webhook endpoints this process paused after repeated failures.', () => w().paused);
      counter(
        'keyward_webhook_pass_errors_total',
        'Passes of the webhooks task that failed (the store; retried next second).',
        () => w().passErrors,
      );
    }
    if (s.hashRotation) {
      const h = s.hashRotation;
      gauge(
        'keyward_keys_on_previous_hash_secret',
        'Usable keys still stored under KEYWARD_HASH_SECRET_PREVIOUS (counted every minute; 0 without one).',
        () => h().keysOnPrevious,
      );
      gauge(
        'keyward_admin_tokens_on_previous_hash_secret',
        'Admin tokens still stored under KEYWARD_HASH_SECRET_PREVIOUS (counted every minute; 0 without one).',
        () => h().adminTokensOnPrevious,
      );
      counter('keyward_keys_rehashed_total', 'Key hashes rewritten from the previous hash secret to the primary.', () => h().rehashed);
      counter(
        'keyward_rehash_flush_errors_total',
        'Batch writes of rewritten key hashes that failed (their keys were kept).',
        () => h().flushErrors,
      );
    }
    if (s.accessLog) {
      const a = s.accessLog;
      counter('keyward_accesslog_entries_total', 'Access-log entries received.', () => a().entriesSeen);
      counter('keyward_accesslog_entries_recorded_total', 'Access-log entries recorded as usage.', () => a().entriesRecorded);
      counter(
        'keyward_accesslog_entries_ignored_total',
        'Access-log entries without a keyward identity (not recorded).',
        () => a().entriesIgnored,
      );
      counter('keyward_accesslog_undecodable_total', 'Access-log messages that could not be decoded.', () => a().undecodable);
      counter(
        'keyward_accesslog_pauses_total',
        'Times an access-log stream was paused because the usage buffer was congested.',
        () => a().pauses,
      );
    }
    if (s.changes) {
      const ch = s.changes;
      counter(
        'keyward_notification_reconnects_total',
        'Times the change-notification connection was re-established.',
        () => ch().reconnects,
      );
      gauge('keyward_notification_connected', '1 while change notifications are received, else 0.', () => (ch().connected ? 1 : 0));
    }
    if (s.quota) {
      const q = s.quota;
      counter('keyward_quota_errors_total', 'Quota counter operations that failed.', () => q().errors);
    }
  }

  /** The exposition text and its content type. */
  async expose(): Promise<{ body: string; contentType: string }> {
    return { body: await this.registry.metrics(), contentType: this.registry.contentType };
  }
}

/** A counter that follows a component's own monotonic count (never going backwards). */
function followed(registry: Registry, name: string, help: string, read: () => number): void {
  let last = 0;
  new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      const v = read();
      if (v > last) this.inc(v - last);
      last = v;
    },
  });
}
