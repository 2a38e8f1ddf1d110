/**
 * Assembles a running keyward: store, key cache, the Authorization (ext_authz)
 * server and the KeyAdmin server. main.ts calls it for `serve`; tests call it
 * with port-0 listeners, a temporary database and a manual clock.
 */
import { Server, ServerCredentials } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { Config } from './config';
import { createHasher } from './keys/hash';
import { generateAdminToken } from './keys/format';
import { AdminService } from './admin/service';
import { keyAdminImplementation, SafeKeyAdminService } from './grpc/admin-server';
import { addHealth, addReflection } from './grpc/discovery';
import { openOrm, migrate, type Orm } from './store/orm';
import { createStore, type Store } from './store/store';
import { createDataPlaneStore } from './store/key-lookup';
import { systemClock, type Clock } from './util/clock';
import { KeyCache } from './authz/cache';
import { LastUsedRecorder } from './authz/last-used';
import { loadRouteRules, RouteTable } from './authz/routes';
import { Authorizer } from './authz/service';
import { authorizationImplementation, SafeAuthorizationService } from './grpc/authz-server';
import { describe } from './grpc/admin-server';

export interface AppOptions {
  config: Config;
  logger: Logger;
  clock?: Clock;
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
  store: Store;
  admin: AdminService;
  authorizer: Authorizer;
  cache: KeyCache;
  lastUsed: LastUsedRecorder;
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

async function bind(server: Server, address: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(address, ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port)));
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
  let orm: Orm | undefined;
  const servers: Server[] = [];
  try {
    orm = await openOrm(config.database);
    if (opts.migrate ?? config.autoMigrate) {
      const applied = await migrate(orm);
      if (applied.length) logger.info({ migrations: applied }, 'migrations applied');
    }
    const routes = opts.routes ?? (config.authz.routesFile ? loadRouteRules(config.authz.routesFile) : RouteTable.empty());
    const store = createStore(orm, config.database.kind);
    const hasher = createHasher(config.hashSecret);
    const dataPlane = createDataPlaneStore(orm, config.database.kind);
    const a = config.authz;
    const cache = new KeyCache(dataPlane, {
      ttlMs: a.cacheTtlSeconds * 1000,
      maxEntries: a.cacheMaxEntries,
      negativeTtlMs: a.negativeCacheTtlSeconds * 1000,
      negativeMaxEntries: a.negativeCacheMaxEntries,
      maxStaleMs: a.cacheMaxStaleSeconds * 1000,
    });
    const lastUsed = new LastUsedRecorder(dataPlane, (e) => logger.warn({ err: describe(e) }, 'last-used flush failed; will retry'));
    const admin = new AdminService({
      store,
      hasher,
      clock,
      logger,
      rotationGraceSeconds: config.rotationGraceSeconds,
      onChange: (c) => (c.type === 'key' ? cache.invalidateKey(c.id, c.keyHash) : cache.invalidateOrg(c.id)),
    });
    const authorizer = new Authorizer({
      cache,
      hasher,
      clock,
      logger,
      lastUsed,
      reader: { credentialHeaders: a.credentialHeaders, routes },
      response: { stripCredential: a.stripCredential, retryAfterSeconds: 1 },
      onStoreError: a.onStoreError,
    });
    const { generated } = await admin.bootstrapAdminToken(config.adminToken, generateAdminToken);
    if (generated) (opts.onGeneratedAdminToken ?? printGeneratedAdminToken)(generated);

    const limits = { 'grpc.max_receive_message_length': 4 * 1024 * 1024, 'grpc.max_send_message_length': 16 * 1024 * 1024 };
    const adminServer = new Server(limits);
    adminServer.addService(SafeKeyAdminService, keyAdminImplementation(admin, logger));
    const adminHealth = addHealth(adminServer, ['keyward.admin.v1.KeyAdmin']);
    addReflection(adminServer, ['keyward/admin/v1/key_admin.proto']);
    servers.push(adminServer);

    const authzServer = new Server(limits);
    authzServer.addService(SafeAuthorizationService, authorizationImplementation(authorizer, logger));
    const authzHealth = addHealth(authzServer, ['envoy.service.auth.v3.Authorization']);
    addReflection(authzServer, ['envoy/service/auth/v3/external_auth.proto']);
    servers.push(authzServer);

    const adminPort = await bind(adminServer, config.adminListen);
    const authzPort = await bind(authzServer, config.authzListen);
    adminHealth.setStatus('', 'SERVING');
    adminHealth.setStatus('keyward.admin.v1.KeyAdmin', 'SERVING');
    authzHealth.setStatus('', 'SERVING');
    authzHealth.setStatus('envoy.service.auth.v3.Authorization', 'SERVING');
    lastUsed.start(a.lastUsedFlushSeconds * 1000);
    logger.info(
      { admin: config.adminListen.replace(/:\d+$/, `:${adminPort}`), authz: config.authzListen.replace(/:\d+$/, `:${authzPort}`), database: config.database.kind },
      'keyward serving',
    );

    const openOrmRef = orm;
    return {
      adminPort,
      authzPort,
      store,
      admin,
      authorizer,
      cache,
      lastUsed,
      async close(graceMs = 5000) {
        adminHealth.setStatus('', 'NOT_SERVING');
        authzHealth.setStatus('', 'NOT_SERVING');
        await Promise.all(servers.map((s) => shutdown(s, graceMs)));
        lastUsed.stop();
        await lastUsed.flush();
        await openOrmRef.close(true);
      },
    };
  } catch (e) {
    for (const s of servers) s.forceShutdown();
    await orm?.close(true).catch(() => undefined);
    throw e;
  }
}
