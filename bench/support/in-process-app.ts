/**
 * keyward started inside the benchmark's own process (startApp), for the in-process
 * measurements (bench/profile-check.ts, bench/garbage.ts): its gRPC ports on
 * 127.0.0.1:0, a fresh hash secret, migrations applied, logging at warn.
 */
import { randomBytes } from 'node:crypto';
import { startApp } from '../../src/app';
import { defaultAuthzConfig, parseDatabaseUrl, type Config } from '../../src/config';
import { createLogger } from '../../src/util/logger';

export type InProcessApp = Awaited<ReturnType<typeof startApp>>;

/** Starts keyward on `databaseUrl` (sqlite:<file> or postgres://...). */
export function startInProcessApp(databaseUrl: string): Promise<InProcessApp> {
  const config: Config = {
    database: parseDatabaseUrl(databaseUrl),
    authzListen: '127.0.0.1:0',
    adminListen: '127.0.0.1:0',
    hashSecret: randomBytes(32),
    hashSecretSource: 'env',
    adminToken: 'bench-admin-token-0123456789abcdef',
    logLevel: 'info',
    autoMigrate: true,
    rotationGraceSeconds: 86400,
    heapGrowingPercent: 20,
    authz: defaultAuthzConfig(),
  };
  return startApp({ config, logger: createLogger('warn'), onGeneratedAdminToken: () => undefined });
}
