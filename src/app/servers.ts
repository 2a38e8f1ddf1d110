/**
 * The two gRPC servers of a running keyward: KeyAdmin on its port, and the data plane
 * (ext_authz Check and Envoy's access log) on the other, each with health and reflection.
 */
import { Server, ServerCredentials } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { AdminService } from '../admin/service';
import type { Authorizer } from '../authz/service';
import { keyAdminImplementation, SafeKeyAdminService } from '../grpc/admin/server';
import { authorizationImplementation, SafeAuthorizationService } from '../grpc/authz-server';
import { accessLogImplementation, SafeAccessLogService, type AccessLogStats } from '../grpc/accesslog-server';
import type { CheckObserverOptions } from '../grpc/check-observer';
import { addHealth, addReflection } from '../grpc/discovery';
import { routeGrpcLibraryLog } from '../grpc/library-log';
import type { Metrics } from '../observability/metrics';
import type { Tracing } from '../observability/tracing';
import type { ServerTls } from '../tls/server';
import type { Clock } from '../util/clock';
import type { UsageBatcher } from '../usage/batcher';
import type { AccessLogUsageOptions } from '../usage/access-log';
import { GRPC_SERVER_OPTIONS } from '../grpc/server-options';

export interface GrpcServersDeps {
  admin: AdminService;
  authorizer: Authorizer;
  usage: UsageBatcher;
  metrics: Metrics;
  logger: Logger;
  clock: Clock;
  accessLogStats: AccessLogStats;
  decisionLog: CheckObserverOptions['decisionLog'];
  accessLogHeaders: AccessLogUsageOptions;
  /** Spans for Checks and KeyAdmin calls when OTEL_* asks for them. */
  tracing?: Tracing;
}

export interface GrpcServers {
  admin: Server;
  authz: Server;
  /** gRPC health on both ports: SERVING or NOT_SERVING for '' and each service. */
  setServing(ready: boolean): void;
}

export function buildGrpcServers(deps: GrpcServersDeps): GrpcServers {
  const { logger, metrics } = deps;
  // grpc-js's own log lines can quote request metadata: they go through keyward's logger.
  routeGrpcLibraryLog(logger);
  const admin = new Server(GRPC_SERVER_OPTIONS);
  admin.addService(
    SafeKeyAdminService,
    keyAdminImplementation(deps.admin, logger, (method, code) => metrics.adminCall(method, code), deps.tracing),
  );
  const adminHealth = addHealth(admin, ['keyward.admin.v1.KeyAdmin']);
  addReflection(admin, ['keyward/admin/v1/key_admin.proto']);

  const authz = new Server(GRPC_SERVER_OPTIONS);
  authz.addService(
    SafeAuthorizationService,
    authorizationImplementation(deps.authorizer, {
      logger,
      observe: (code, seconds) => metrics.checkDecided(code, seconds),
      decisionLog: deps.decisionLog,
      ...(deps.tracing && { tracing: deps.tracing }),
    }),
  );
  authz.addService(
    SafeAccessLogService,
    accessLogImplementation(deps.usage, deps.accessLogHeaders, logger, deps.clock, deps.accessLogStats),
  );
  const authzHealth = addHealth(authz, ['envoy.service.auth.v3.Authorization']);
  addReflection(authz, ['envoy/service/auth/v3/external_auth.proto', 'envoy/service/accesslog/v3/als.proto']);

  const setServing = (ready: boolean) => {
    const status = ready ? 'SERVING' : 'NOT_SERVING';
    adminHealth.setStatus('', status);
    adminHealth.setStatus('keyward.admin.v1.KeyAdmin', status);
    authzHealth.setStatus('', status);
    authzHealth.setStatus('envoy.service.auth.v3.Authorization', status);
  };
  return { admin, authz, setServing };
}

/** Binds `server` to `address` (plaintext, or TLS when given); resolves with the port. */
export function bind(server: Server, address: string, tls?: ServerTls): Promise<number> {
  const creds = tls ? tls.grpcCredentials() : ServerCredentials.createInsecure();
  return new Promise((resolve, reject) => {
    server.bindAsync(address, creds, (err, port) => (err ? reject(err) : resolve(port)));
  });
}

/** Stops accepting and lets in-flight calls finish; cancels what is left after graceMs. */
export function shutdown(server: Server, graceMs: number): Promise<void> {
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
