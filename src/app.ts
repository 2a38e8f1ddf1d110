/**
 * Assembles a running keyward: store, key cache, the Authorization (ext_authz)
 * server and the KeyAdmin server. main.ts calls it for `serve`; tests call it
 * with port-0 listeners, a temporary database and a manual clock.
 */
import { Server, ServerCredentials } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { ConfigError, type Config } from './config';
import { HashRotation } from './authz/hash-rotation';
import { generateAdminToken } from './keys/format';
import { AdminService } from './admin/service';
import { AuthThrottle } from './admin/auth-throttle';
import { keyAdminImplementation, SafeKeyAdminService } from './grpc/admin/server';
import { addHealth, addReflection } from './grpc/discovery';
import { openOrm, migrate, pendingMigrations, schemaPresent, type Orm } from './store/orm';
import { Metrics } from './observability/metrics';
import { Readiness } from './observability/readiness';
import { startOpsHttp, type OpsHttpServer } from './observability/http-server';
import { CHANGES_CHANNEL, createStore, type Store } from './store/store';
import { ChangeListener, hearsChanges } from './store/change-listener';
import { createDataPlaneStore } from './store/key-lookup';
import { systemClock, type Clock } from './util/clock';
import { timerScheduler, type Scheduler } from './util/scheduler';
import { KeyCache } from './authz/cache';
import { LastUsedRecorder } from './authz/last-used';
import { loadRouteRules, RouteTable } from './authz/routes';
import { Authorizer } from './authz/service';
import { LimitSpender } from './authz/spend';
import { authorizationImplementation, SafeAuthorizationService } from './grpc/authz-server';
import { describeError } from './util/logger';
import { createRateLimiter } from './limits/limiter';
import { createQuotaCounter } from './limits/quota';
import { createQuotaStore } from './store/quota-counters';
import type { QuotaCounter, RateLimiter } from './limits/types';
import { createUsageStore, retentionCutoff, type UsageStore } from './usage/store';
import { createUsageTables } from './store/usage-tables';
import { UsageBatcher } from './usage/batcher';
import { UsageJournal } from './usage/journal';
import { accessLogImplementation, newAccessLogStats, SafeAccessLogService, type AccessLogStats } from './grpc/accesslog-server';
import { TlsFileError, type TlsPort } from './tls/files';
import { ServerTls } from './tls/server';
import { routeGrpcLibraryLog } from './grpc/library-log';

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
  /** PostgreSQL only: the listener for other processes' KeyAdmin changes. */
  changes?: ChangeListener;
  metrics: Metrics;
  readiness: Readiness;
  /** The operations HTTP port (/metrics, /healthz, /readyz), unless KEYWARD_HTTP_LISTEN is off. */
  httpPort?: number;
  /** Stops accepting, lets in-flight calls finish (up to graceMs), closes the store. */
  close(graceMs?: number): Promise<void>;
}

/** Prints a generated admin token to the terminal (stderr), never to the structured log. */
export function printGeneratedAdminToken(token: string): void {
  process.stderr.write(
    [
      '',
      '================================================================================',
      ' keyward generated an administrator token. It is shown only this once:',
      '',
      `   ${token}`,
      '',
      ' Use it as KEYWARD_ADMIN_TOKEN for the CLI. Only its keyed hash is stored;',
      ' set KEYWARD_ADMIN_TOKEN when starting keyward to choose your own instead.',
      '================================================================================',
      '',
    ].join('\n') + '\n',
  );
}

async function bind(server: Server, address: string, tls?: ServerTls): Promise<number> {
  const creds = tls ? tls.grpcCredentials() : ServerCredentials.createInsecure();
  return new Promise((resolve, reject) => {
    server.bindAsync(address, creds, (err, port) => (err ? reject(err) : resolve(port)));
  });
}

function shutdown(server: Server, graceMs: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, graceMs);
    server.tryShutdown(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

export async function startApp(opts: AppOptions): Promise<App> {
  const { config, logger } = opts;
  const clock = opts.clock ?? systemClock;
  const scheduler = opts.scheduler ?? timerScheduler;
  let orm: Orm | undefined;
  const servers: Server[] = [];
  const closers: (() => Promise<void>)[] = [];
  try {
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
    const a = config.authz;
    const cache = new KeyCache(dataPlane, {
      ttlMs: a.cacheTtlSeconds * 1000,
      maxEntries: a.cacheMaxEntries,
      negativeTtlMs: a.negativeCacheTtlSeconds * 1000,
      negativeMaxEntries: a.negativeCacheMaxEntries,
      maxStaleMs: a.cacheMaxStaleSeconds * 1000,
      missQueriesPerSecond: a.cacheMissQueriesPerSecond,
      previous: hashRotation.cacheLookup(),
    });
    const lastUsed = new LastUsedRecorder(dataPlane, (e) => logger.warn({ err: describeError(e) }, 'last-used flush failed; will retry'));
    const limiter = createRateLimiter({
      redisUrl: a.redisUrl,
      onRedisFailure: a.redisFailureMode,
      maxKeys: a.rateLimitMaxKeys,
      clock,
      onError: (e) => logger.warn({ err: describeError(e), mode: a.redisFailureMode }, 'rate limiter: Redis failed'),
    });
    closers.push(() => limiter.close());
    const quota = createQuotaCounter({
      store: createQuotaStore(orm, config.database.kind),
      redisUrl: a.redisUrl,
      redisFailureMode: a.redisFailureMode,
      syncIntervalMs: a.quotaSyncSeconds * 1000,
      onError: (e) => logger.warn({ err: describeError(e) }, 'quota counter: sync failed; will retry'),
    });
    closers.push(() => quota.close());
    const usageStore = createUsageStore(createUsageTables(orm, config.database.kind));
    let journal: UsageJournal | undefined;
    if (a.usageJournalDir !== undefined) {
      try {
        // Its own subdirectory; what dead processes left there is taken over.
        journal = UsageJournal.openForProcess({ dir: a.usageJournalDir, maxBytes: a.usageJournalMaxMb * 1024 * 1024 });
      } catch (e) {
        throw new ConfigError('KEYWARD_USAGE_JOURNAL_DIR', `${a.usageJournalDir}: ${describeError(e).code ?? (e as Error).message}`);
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
      maxBuffered: a.usageBufferMax,
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
      // Until the listener hears, and whenever it cannot, cached keys live briefly.
      cache.setTtl(a.cacheTtlUnnotifiedSeconds * 1000);
      // Notifications name keys by id only; the cache is keyed by hash: one primary-key
      // query finds the hashes. Should it fail, or a key be gone, one pass over the cache.
      const invalidateKeysById = async (ids: string[]) => {
        let hashes = new Map<string, string>();
        try {
          hashes = await dataPlane.hashesOf(ids);
        } catch (e) {
          logger.warn({ err: describeError(e) }, 'change notification: key hashes could not be read; dropping the keys by id');
        }
        for (const [id, hash] of hashes) cache.invalidateKey(id, hash);
        const rest = ids.filter((id) => !hashes.has(id));
        if (rest.length > 0) cache.invalidateKeys(rest);
      };
      const listener = new ChangeListener({
        url: config.database.url,
        channel: CHANGES_CHANNEL,
        onChanges: (list) => {
          for (const c of list) if (c.type === 'org') cache.invalidateOrg(c.id);
          const ids = list.filter((c) => c.type === 'key').map((c) => c.id);
          if (ids.length > 0) void invalidateKeysById(ids);
        },
        onState: (connected) => {
          if (connected) {
            cache.clear(); // anything announced while deaf is unknown
            cache.setTtl();
          } else {
            cache.setTtl(a.cacheTtlUnnotifiedSeconds * 1000);
            logger.warn('change notifications lost; cached keys now live at most KEYWARD_CACHE_TTL_UNNOTIFIED_SECONDS until reconnected');
          }
        },
        onError: (e) => logger.warn({ err: describeError(e) }, 'change listener connection failed; reconnecting'),
      });
      closers.push(() => listener.stop());
      await listener.start();
      changes = listener;
    }
    const admin = new AdminService({
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
    });
    const metrics = new Metrics();
    const authorizer = new Authorizer({
      cache,
      hasher,
      clock,
      lastUsed,
      reader: { credentialHeaders: a.credentialHeaders, routes },
      response: { stripCredential: a.stripCredential, retryAfterSeconds: 1 },
      onStoreError: a.onStoreError,
      spender: new LimitSpender({ limiter, quota, onStoreError: a.onStoreError }),
      usage,
    });
    const { generated } = await admin.authenticator.bootstrapAdminToken(config.adminToken, generateAdminToken);
    if (generated) (opts.onGeneratedAdminToken ?? printGeneratedAdminToken)(generated);

    // Metadata is limited by each keyward RPC itself (src/grpc/metadata-limit.ts): grpc-js has no such option.
    const limits = { 'grpc.max_receive_message_length': 4 * 1024 * 1024, 'grpc.max_send_message_length': 16 * 1024 * 1024 };
    // grpc-js's own log lines can quote request metadata: they go through keyward's logger.
    routeGrpcLibraryLog(logger);
    const adminServer = new Server(limits);
    adminServer.addService(
      SafeKeyAdminService,
      keyAdminImplementation(admin, logger, (method, code) => metrics.adminCall(method, code)),
    );
    const adminHealth = addHealth(adminServer, ['keyward.admin.v1.KeyAdmin']);
    addReflection(adminServer, ['keyward/admin/v1/key_admin.proto']);
    servers.push(adminServer);

    const authzServer = new Server(limits);
    authzServer.addService(
      SafeAuthorizationService,
      authorizationImplementation(authorizer, {
        logger,
        observe: (code, seconds) => metrics.checkDecided(code, seconds),
        decisionLog: { mode: a.checkLog, sample: a.checkLogSample },
      }),
    );
    authzServer.addService(
      SafeAccessLogService,
      accessLogImplementation(usage, { tokensHeader: a.usageTokensHeader, costHeader: a.usageCostHeader }, logger, clock, accessLogStats),
    );
    const authzHealth = addHealth(authzServer, ['envoy.service.auth.v3.Authorization']);
    addReflection(authzServer, ['envoy/service/auth/v3/external_auth.proto', 'envoy/service/accesslog/v3/als.proto']);
    servers.push(authzServer);

    let tlsStats: () => Partial<Record<string, ReturnType<ServerTls['stats']>>> = () => ({});
    metrics.watch({
      tls: () => tlsStats(),
      cache: () => ({ ...cache.stats, size: cache.size }),
      limiter: () => limiter.stats(),
      usage: () => usage.stats(),
      lastUsed: () => ({ pending: lastUsed.size, flushErrors: lastUsed.flushErrors }),
      hashRotation: () => hashRotation.stats,
      accessLog: () => accessLogStats,
      ...(changes && { changes: () => ({ connected: changes.connected, reconnects: changes.reconnects }) }),
    });
    // gRPC health on both ports follows readiness (the store answers, migrations applied).
    const setServing = (ready: boolean) => {
      const status = ready ? 'SERVING' : 'NOT_SERVING';
      adminHealth.setStatus('', status);
      adminHealth.setStatus('keyward.admin.v1.KeyAdmin', status);
      authzHealth.setStatus('', status);
      authzHealth.setStatus('envoy.service.auth.v3.Authorization', status);
    };
    const readyOrm = orm;
    const readiness = new Readiness(
      {
        ping: () => store.ping(),
        pendingMigrations: () => pendingMigrations(readyOrm),
      },
      {
        onChange: (ready) => {
          setServing(ready);
          if (!ready) logger.warn('not ready: the store does not answer or migrations are pending (see /readyz)');
        },
      },
    );
    // Optional TLS per port, following its certificate files (src/tls/).
    const tls: Partial<Record<TlsPort, ServerTls>> = {};
    for (const port of ['authz', 'admin', 'http'] as const) {
      const files = config.tls?.[port];
      if (!files || (port === 'http' && config.httpListen === undefined)) continue;
      try {
        tls[port] = ServerTls.open(port, files, { logger, reloadIntervalMs: (config.tls?.reloadSeconds ?? 10) * 1000 });
      } catch (e) {
        throw e instanceof TlsFileError ? new ConfigError(e.variable, e.problem) : e;
      }
      const t = tls[port];
      closers.push(() => Promise.resolve(t.close()));
    }
    tlsStats = () => Object.fromEntries(Object.entries(tls).map(([port, t]) => [port, t.stats()]));
    const adminPort = await bind(adminServer, config.adminListen, tls.admin);
    const authzPort = await bind(authzServer, config.authzListen, tls.authz);
    await readiness.check();
    const stopReadinessProbe = scheduler.every('readiness', 5000, () => void readiness.check());
    let ops: OpsHttpServer | undefined;
    if (config.httpListen !== undefined) {
      ops = await startOpsHttp(config.httpListen, { metrics, readiness, tls: tls.http });
      closers.push(() => ops!.close());
    }
    lastUsed.start(a.lastUsedFlushSeconds * 1000, scheduler);
    hashRotation.start(a.lastUsedFlushSeconds * 1000, 60_000, scheduler);
    usage.start(a.usageFlushSeconds * 1000, scheduler);
    quota.start(undefined, scheduler);
    const purge = () =>
      usageStore.purgeEventsBefore(retentionCutoff(clock.now().getTime(), a.usageRetentionDays)).then(
        (n) => n > 0 && logger.info({ events: n, retentionDays: a.usageRetentionDays }, 'old usage events purged'),
        (e: unknown) => logger.warn({ err: describeError(e) }, 'usage retention purge failed'),
      );
    void purge();
    const stopPurge = scheduler.every('usage-purge', 3_600_000, () => void purge());
    // Dropped usage is never silent: a warning per 10 s while it happens.
    let droppedSeen = 0;
    const stopDropWarning = scheduler.every('usage-drop-warning', 10_000, () => {
      const dropped = usage.stats().dropped;
      if (dropped > droppedSeen)
        logger.warn(
          { dropped: dropped - droppedSeen, total: dropped },
          'usage events dropped: the buffer (KEYWARD_USAGE_BUFFER_MAX) was full',
        );
      droppedSeen = dropped;
    });
    logger.info(
      {
        admin: config.adminListen.replace(/:\d+$/, `:${adminPort}`),
        authz: config.authzListen.replace(/:\d+$/, `:${authzPort}`),
        http: ops && config.httpListen!.replace(/:\d+$/, `:${ops.port}`),
        database: config.database.kind,
        ...(Object.keys(tls).length > 0 && { tls: Object.keys(tls) }),
      },
      'keyward serving',
    );

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
      changes,
      metrics,
      readiness,
      httpPort: ops?.port,
      async close(graceMs = 5000) {
        stopReadinessProbe();
        setServing(false);
        // In-flight Checks finish first; then everything they buffered is written.
        await Promise.all(servers.map((s) => shutdown(s, graceMs)));
        stopPurge();
        stopDropWarning();
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
