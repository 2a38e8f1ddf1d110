/**
 * Assembles a running keyward: store, key cache, limits, usage, the KeyAdmin and the
 * data-plane gRPC servers, the operations HTTP port. main.ts calls it for `serve`;
 * tests call it with port-0 listeners, a temporary database, a manual clock and a
 * ManualScheduler.
 */
import type { Logger } from 'pino';
import { ConfigError, type Config } from '../config';
import { HashRotation } from '../authz/hash-rotation';
import { generateAdminToken } from '../keys/format';
import { AdminService } from '../admin/service';
import { AuthThrottle } from '../admin/auth-throttle';
import { createSecretBox } from '../keys/secret-box';
import { openOrm, migrate, pendingMigrations, schemaPresent, type Orm } from '../store/orm';
import { Metrics } from '../observability/metrics';
import { Readiness } from '../observability/readiness';
import { startTracing, type Tracing } from '../observability/tracing';
import { startOpsHttp, type OpsHttpServer } from '../observability/http-server';
import { startConsoleOf } from './console';
import { quiesceOrmContexts } from '../store/orm-async-context';
import { createStore, type Store } from '../store/store';
import { ChangeListener, hearsChanges } from '../store/change-listener';
import { createDataPlaneStore } from '../store/key-lookup';
import { systemClock, type Clock } from '../util/clock';
import { timerScheduler, type Scheduler } from '../util/scheduler';
import { KeyCache } from '../authz/cache';
import { LastUsedRecorder } from '../authz/last-used';
import { loadRouteRules, RouteTable } from '../authz/routes';
import { Authorizer } from '../authz/service';
import { LimitSpender } from '../authz/spend';
import { describeError } from '../util/logger';
import { createRateLimiter } from '../limits/limiter';
import { createQuotaCounter } from '../limits/quota';
import { createQuotaStore } from '../store/quota-counters';
import type { QuotaCounter, RateLimiter } from '../limits/types';
import { createUsageStore, type UsageStore } from '../usage/store';
import { SecurityEvents } from '../events/observe';
import { createExpiringKeys } from '../store/expiring-keys';
import { createUsageTables } from '../store/usage-tables';
import { UsageBatcher } from '../usage/batcher';
import { UsageJournal } from '../usage/journal';
import { newAccessLogStats, type AccessLogStats } from '../grpc/accesslog-server';
import { TlsFileError, type TlsPort } from '../tls/files';
import { ServerTls } from '../tls/server';
import { createWebhookQueue } from '../store/webhooks';
import { DEFAULT_WEBHOOK_CONFIG, WebhookWorker } from '../webhooks/worker';

import type { Server } from '@grpc/grpc-js';
import { printGeneratedAdminToken } from './admin-token';
import { startUpkeep } from './background';
import { listenForChanges } from './change-invalidation';
import { bind, buildGrpcServers, shutdown } from './servers';

export { printGeneratedAdminToken } from './admin-token';

export interface AppOptions {
  config: Config;
  logger: Logger;
  clock?: Clock;
  /**
   * Runs every periodic task (flushes, the readiness probe, the usage purge). Default:
   * timers. Tests pass a ManualScheduler to hold them still and run them on demand.
   */
  scheduler?: Scheduler;
  /** Apply pending migrations before serving (default: config.autoMigrate). */
  migrate?: boolean;
  /** Called with a generated admin token, once, when none existed. Default: print to stderr. */
  onGeneratedAdminToken?: (token: string) => void;
  /** The route rules; default: loaded from config.authz.routesFile, if set. */
  routes?: RouteTable;
}

export interface App {
  adminPort: number;
  authzPort: number;
  /** The ORM the store, the data plane and usage run on (for operations tooling and tests). */
  orm: Orm;
  store: Store;
  admin: AdminService;
  authorizer: Authorizer;
  cache: KeyCache;
  lastUsed: LastUsedRecorder;
  /** The hash secrets, and the rotation to the primary while a previous one is set. */
  hashRotation: HashRotation;
  limiter: RateLimiter;
  quota: QuotaCounter;
  usage: UsageBatcher;
  usageStore: UsageStore;
  accessLogStats: AccessLogStats;
  /** Turns new audit rows into webhook deliveries and sends them (task `webhooks`). */
  webhooks: WebhookWorker;
  /** PostgreSQL only: the listener for other processes' KeyAdmin changes. */
  changes?: ChangeListener;
  metrics: Metrics;
  readiness: Readiness;
  /** The operations HTTP port (/metrics, /healthz, /readyz), unless KEYWARD_HTTP_LISTEN is off. */
  httpPort?: number;
  /** The web console's port, unless KEYWARD_CONSOLE_LISTEN is off (src/console/). */
  consolePort?: number;
  /** OpenTelemetry spans, when config.tracing is set (flushed and stopped by close). */
  tracing?: Tracing;
  /** Stops accepting, lets in-flight calls finish (up to graceMs), closes the store. */
  close(graceMs?: number): Promise<void>;
}

export async function startApp(opts: AppOptions): Promise<App> {
  const { config, logger } = opts;
  const clock = opts.clock ?? systemClock;
  const scheduler = opts.scheduler ?? timerScheduler;
  let orm: Orm | undefined;
  const servers: Server[] = [];
  const closers: (() => Promise<void>)[] = [];
  let tracing: Tracing | undefined;
  try {
    if (config.tracing) {
      const t = await startTracing(config.tracing, logger);
      tracing = t;
      closers.push(() => t.shutdown()); // closers run in reverse: this one last
    }
    orm = await openOrm(config.database);
    if (opts.migrate ?? config.autoMigrate) {
      const applied = await migrate(orm);
      if (applied.length) logger.info({ migrations: applied }, 'migrations applied');
    } else if (!(await schemaPresent(orm, config.database.kind))) {
      throw new ConfigError(
        'KEYWARD_AUTO_MIGRATE',
        'migrations are off (serve --no-migrate or KEYWARD_AUTO_MIGRATE=false) and the database has no keyward schema; run `keyward migrate` first',
      );
    }
    const routes = opts.routes ?? (config.authz.routesFile ? loadRouteRules(config.authz.routesFile) : RouteTable.empty());
    const store = createStore(orm, config.database.kind);
    const dataPlane = createDataPlaneStore(orm, config.database.kind);
    const hashRotation = new HashRotation({ primary: config.hashSecret, previous: config.hashSecretPrevious }, dataPlane, {
      clock,
      logger,
    });
    const hasher = hashRotation.primary;
    const authz = config.authz;
    const cache = new KeyCache(dataPlane, {
      ttlMs: authz.cacheTtlSeconds * 1000,
      maxEntries: authz.cacheMaxEntries,
      negativeTtlMs: authz.negativeCacheTtlSeconds * 1000,
      negativeMaxEntries: authz.negativeCacheMaxEntries,
      maxStaleMs: authz.cacheMaxStaleSeconds * 1000,
      missQueriesPerSecond: authz.cacheMissQueriesPerSecond,
      previous: hashRotation.cacheLookup(),
    });
    const lastUsed = new LastUsedRecorder(dataPlane, (e) => logger.warn({ err: describeError(e) }, 'last-used flush failed; will retry'));
    const limiter = createRateLimiter({
      redisUrl: authz.redisUrl,
      onRedisFailure: authz.redisFailureMode,
      mode: authz.rateLimitMode,
      maxKeys: authz.rateLimitMaxKeys,
      clock,
      onError: (e) => logger.warn({ err: describeError(e), mode: authz.redisFailureMode }, 'rate limiter: Redis failed'),
    });
    closers.push(() => limiter.close());
    const quota = createQuotaCounter({
      store: createQuotaStore(orm, config.database.kind),
      redisUrl: authz.redisUrl,
      redisFailureMode: authz.redisFailureMode,
      syncIntervalMs: authz.quotaSyncSeconds * 1000,
      onError: (e) => logger.warn({ err: describeError(e) }, 'quota counter: sync failed; will retry'),
    });
    closers.push(() => quota.close());
    const usageStore = createUsageStore(createUsageTables(orm, config.database.kind), { maxEndpoints: authz.usageMaxEndpoints });
    let journal: UsageJournal | undefined;
    if (authz.usageJournalDir !== undefined) {
      try {
        // Its own subdirectory; what dead processes left there is taken over.
        journal = UsageJournal.openForProcess({ dir: authz.usageJournalDir, maxBytes: authz.usageJournalMaxMb * 1024 * 1024 });
      } catch (e) {
        throw new ConfigError('KEYWARD_USAGE_JOURNAL_DIR', `${authz.usageJournalDir}: ${describeError(e).code ?? (e as Error).message}`);
      }
      const j = journal;
      closers.push(() => Promise.resolve(j.close()));
      const pending = j.stats();
      if (pending.pendingBatches > 0)
        logger.info(
          { batches: pending.pendingBatches, events: pending.pendingEvents, takenOver: j.adopted.directories },
          'usage journal holds batches from before; replaying',
        );
    }
    const usage = new UsageBatcher(usageStore, {
      maxBuffered: authz.usageBufferMax,
      rawEvents: authz.usageRawEvents,
      journal,
      onError: (e) =>
        logger.warn(
          { err: describeError(e) },
          journal ? 'usage flush failed; the batch goes to the usage journal' : 'usage flush failed; kept in the buffer',
        ),
      onJournalError: (e) => logger.error({ err: describeError(e) }, 'usage journal append failed; usage kept in memory'),
    });
    const accessLogStats = newAccessLogStats();
    let changes: ChangeListener | undefined;
    if (hearsChanges(config.database)) {
      changes = await listenForChanges({
        url: config.database.url,
        cache,
        dataPlane,
        unnotifiedTtlMs: authz.cacheTtlUnnotifiedSeconds * 1000,
        logger,
      });
      const listener = changes;
      closers.push(() => listener.stop());
    }
    const webhookConfig = config.webhooks ?? DEFAULT_WEBHOOK_CONFIG;
    const secrets = createSecretBox('webhooks', config.hashSecret, config.hashSecretPrevious);
    const webhooks = new WebhookWorker({
      queue: createWebhookQueue(orm, config.database.kind),
      secrets,
      config: webhookConfig,
      clock,
      logger,
    });
    const admin = new AdminService({
      webhooks: { secrets, allowInsecure: webhookConfig.allowInsecure },
      store,
      hasher,
      ...(hashRotation.previous && {
        previousHasher: hashRotation.previous,
        onKeyFoundByPrevious: (id: string, to: string, from: string) => hashRotation.keyFoundByPrevious(id, to, from),
      }),
      clock,
      logger,
      rotationGraceSeconds: config.rotationGraceSeconds,
      ...((config.adminAuthMaxFailures ?? 0) > 0 && {
        authThrottle: new AuthThrottle({
          maxFailures: config.adminAuthMaxFailures!,
          windowMs: 60_000,
          blockMs: (config.adminAuthBlockSeconds ?? 60) * 1000,
        }),
      }),
      onChange: (c) => (c.type === 'key' ? cache.invalidateKey(c.id, c.keyHash) : cache.invalidateOrg(c.id)),
      limiter,
      quota,
      usage,
      usageStore,
      secretBox: createSecretBox('admin-requests', config.hashSecret, config.hashSecretPrevious),
    });
    const metrics = new Metrics();
    const authorizer = new Authorizer({
      cache,
      hasher,
      clock,
      lastUsed,
      reader: { credentialHeaders: authz.credentialHeaders, routes },
      response: { stripCredential: authz.stripCredential, retryAfterSeconds: 1 },
      onStoreError: authz.onStoreError,
      spender: new LimitSpender({ limiter, quota, onStoreError: authz.onStoreError }),
      usage,
      security: new SecurityEvents({ windowMs: authz.securityEventWindowSeconds * 1000, sink: usage }),
    });
    const { generated } = await admin.authenticator.bootstrapAdminToken(config.adminToken, generateAdminToken);
    if (generated) (opts.onGeneratedAdminToken ?? printGeneratedAdminToken)(generated);

    const grpc = buildGrpcServers({
      admin,
      authorizer,
      usage,
      metrics,
      logger,
      clock,
      accessLogStats,
      decisionLog: { mode: authz.checkLog, sample: authz.checkLogSample },
      accessLogHeaders: { tokensHeader: authz.usageTokensHeader, costHeader: authz.usageCostHeader, routes },
      ...(tracing && { tracing }),
    });
    servers.push(grpc.admin, grpc.authz);

    let tlsStats: () => Partial<Record<string, ReturnType<ServerTls['stats']>>> = () => ({});
    metrics.watch({
      tls: () => tlsStats(),
      cache: () => ({ ...cache.stats, size: cache.size }),
      limiter: () => limiter.stats(),
      quota: () => {
        const q = quota.stats();
        return { errors: q.backend === 'redis' ? q.redisErrors + q.persistErrors : q.syncErrors + q.loadErrors };
      },
      usage: () => ({ ...usage.stats(), endpointOverflow: usageStore.endpointOverflow }),
      lastUsed: () => ({ pending: lastUsed.size, flushErrors: lastUsed.flushErrors }),
      webhooks: () => webhooks.stats,
      hashRotation: () => hashRotation.stats,
      accessLog: () => accessLogStats,
      ...(changes && { changes: () => ({ connected: changes.connected, reconnects: changes.reconnects }) }),
    });
    const readyOrm = orm;
    const readiness = new Readiness(
      {
        ping: () => store.ping(),
        pendingMigrations: () => pendingMigrations(readyOrm),
      },
      {
        onChange: (ready) => {
          grpc.setServing(ready); // gRPC health on both ports follows readiness
          if (!ready) logger.warn('not ready: the store does not answer or migrations are pending (see /readyz)');
        },
      },
    );
    // Optional TLS per port, following its certificate files (src/tls/).
    const tls: Partial<Record<TlsPort, ServerTls>> = {};
    for (const port of ['authz', 'admin', 'http', 'console'] as const) {
      const files = config.tls?.[port];
      const off = (port === 'http' && config.httpListen === undefined) || (port === 'console' && config.consoleListen === undefined);
      if (!files || off) continue;
      try {
        tls[port] = ServerTls.open(port, files, { logger, reloadIntervalMs: (config.tls?.reloadSeconds ?? 10) * 1000 });
      } catch (e) {
        throw e instanceof TlsFileError ? new ConfigError(e.variable, e.problem) : e;
      }
      const t = tls[port];
      closers.push(() => Promise.resolve(t.close()));
    }
    tlsStats = () => Object.fromEntries(Object.entries(tls).map(([port, t]) => [port, t.stats()]));
    const adminPort = await bind(grpc.admin, config.adminListen, tls.admin);
    const authzPort = await bind(grpc.authz, config.authzListen, tls.authz);
    await readiness.check();
    const stopReadinessProbe = scheduler.every('readiness', 5000, () => void readiness.check());
    let ops: OpsHttpServer | undefined;
    if (config.httpListen !== undefined) {
      ops = await startOpsHttp(config.httpListen, { metrics, readiness, tls: tls.http });
      closers.push(() => ops!.close());
    }
    const consoleServer = await startConsoleOf(config, { admin, clock, logger, metrics, tls: tls.console, tracing });
    if (consoleServer) closers.push(() => consoleServer.close());
    lastUsed.start(authz.lastUsedFlushSeconds * 1000, scheduler);
    hashRotation.start(authz.lastUsedFlushSeconds * 1000, 60_000, scheduler);
    usage.start(authz.usageFlushSeconds * 1000, scheduler, authz.usageJournalSyncMs);
    quota.start(undefined, scheduler);
    webhooks.start(scheduler);
    const stopUpkeep = startUpkeep({
      usage,
      usageStore,
      retentionDays: authz.usageRetentionDays,
      expiringKeys: createExpiringKeys(orm, config.database.kind),
      clock,
      logger,
      scheduler,
      adminRequests: admin.requests,
    });
    logger.info(
      {
        admin: config.adminListen.replace(/:\d+$/, `:${adminPort}`),
        authz: config.authzListen.replace(/:\d+$/, `:${authzPort}`),
        http: ops && config.httpListen!.replace(/:\d+$/, `:${ops.port}`),
        console: consoleServer && config.consoleListen!.replace(/:\d+$/, `:${consoleServer.port}`),
        database: config.database.kind,
        ...(Object.keys(tls).length > 0 && { tls: Object.keys(tls) }),
      },
      'keyward serving',
    );

    // Start-up ran migrations and bootstrap transactions: MikroORM's contexts go off now.
    quiesceOrmContexts();
    const openOrmRef = orm;
    return {
      adminPort,
      authzPort,
      orm: openOrmRef,
      store,
      admin,
      authorizer,
      cache,
      lastUsed,
      hashRotation,
      limiter,
      quota,
      usage,
      usageStore,
      accessLogStats,
      webhooks,
      changes,
      metrics,
      readiness,
      httpPort: ops?.port,
      consolePort: consoleServer?.port,
      tracing,
      async close(graceMs = 5000) {
        stopReadinessProbe();
        grpc.setServing(false);
        // In-flight Checks finish first; then everything they buffered is written.
        await Promise.all(servers.map((s) => shutdown(s, graceMs)));
        stopUpkeep();
        await webhooks.stop();
        lastUsed.stop();
        hashRotation.stop();
        usage.stop();
        quota.stop();
        await Promise.allSettled([lastUsed.flush(), hashRotation.flush(), usage.flush(), quota.flush()]);
        for (const close of closers.reverse()) await close().catch(() => undefined);
        await openOrmRef.close(true);
      },
    };
  } catch (e) {
    for (const s of servers) s.forceShutdown();
    for (const close of closers) await close().catch(() => undefined);
    await orm?.close(true).catch(() => undefined);
    throw e;
  }
}
