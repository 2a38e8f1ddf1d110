/**
 * Starts a real keyward (KeyAdmin on a real gRPC port 0, a real database) with a
 * manual clock, and gives a promisified KeyAdmin client that authenticates as asked.
 */
import { credentials, Metadata, type handleUnaryCall, type ServiceError } from '@grpc/grpc-js';
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { startApp, type App } from '../../src/app';
import { defaultAuthzConfig, type AuthzConfig, type Config } from '../../src/config';
import { createLogger } from '../../src/util/logger';
import { ADMIN_TOKEN_SCANNER_REGEX, KEY_SCANNER_REGEX } from '../../src/keys/format';
import type { RouteTable } from '../../src/authz/routes';
import { ManualClock } from '../../src/util/clock';
import * as pb from '../../src/gen/keyward/admin/v1/key_admin';
import { KeyAdminClient, KeyAdminService, type KeyAdminServer } from '../../src/gen/keyward/admin/v1/key_admin';
import { Status } from '../../src/gen/google/rpc/status';
import { BadRequest, ErrorInfo } from '../../src/gen/google/rpc/error_details';
import { createTestDatabase, type Dialect, type TestDatabase } from './databases';

export const TEST_ADMIN_TOKEN = 'test-admin-token-' + randomBytes(12).toString('hex');

export interface Harness {
  app: App;
  db: TestDatabase;
  clock: ManualClock;
  config: Config;
  /** Every log line the server wrote. */
  logs: string[];
  /** A KeyAdmin client sending `authorization: Bearer <credential>` (none if undefined). */
  client(credential?: string): AdminClient;
  root: AdminClient;
  stop(): Promise<void>;
}

type Rpcs = { [K in keyof typeof KeyAdminService]: KeyAdminServer[K] };
export type AdminClient = {
  [K in keyof Rpcs]: Rpcs[K] extends handleUnaryCall<infer Req, infer Res> ? (req: Partial<Req>) => Promise<Res> : never;
} & { close(): void };

export function adminClient(port: number, credential?: string): AdminClient {
  const raw = new KeyAdminClient(`127.0.0.1:${port}`, credentials.createInsecure());
  const proxy = new Proxy({} as AdminClient, {
    get(_t, prop: string) {
      if (prop === 'close') return () => raw.close();
      return (req: unknown) =>
        new Promise((resolve, reject) => {
          const md = new Metadata();
          if (credential !== undefined) md.set('authorization', `Bearer ${credential}`);
          const fn = (raw as unknown as Record<string, (...args: unknown[]) => unknown>)[prop]!;
          const type = (pb as unknown as Record<string, { fromPartial(o: unknown): unknown }>)[
            `${prop[0]!.toUpperCase()}${prop.slice(1)}Request`
          ]!;
          fn.call(raw, type.fromPartial(req ?? {}), md, { deadline: Date.now() + 15000 }, (e: ServiceError | null, r: unknown) =>
            e ? reject(e) : resolve(r),
          );
        });
    },
  });
  return proxy;
}

export type HarnessOverrides = Omit<Partial<Config>, 'authz'> & {
  authz?: Partial<AuthzConfig>;
  /** Route rules passed to startApp (default: none, or config.authz.routesFile). */
  routes?: RouteTable;
  /**
   * An existing database to start on (e.g. a restart with another configuration);
   * stop() then leaves it to its owner to dispose. Default: a fresh one, disposed by stop().
   */
  reuseDatabase?: TestDatabase;
};

export async function startHarness(dialect: Dialect, options: HarnessOverrides = {}): Promise<Harness> {
  const { routes, reuseDatabase, ...overrides } = options;
  const db = reuseDatabase ?? (await createTestDatabase(dialect));
  const clock = new ManualClock();
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      logs.push(String(chunk));
      cb();
    },
  });
  const config: Config = {
    database: db.config,
    authzListen: '127.0.0.1:0',
    adminListen: '127.0.0.1:0',
    hashSecret: randomBytes(32),
    hashSecretSource: 'env',
    adminToken: TEST_ADMIN_TOKEN,
    logLevel: 'debug',
    autoMigrate: true,
    rotationGraceSeconds: 86400,
    heapGrowingPercent: 20,
    ...overrides,
    authz: { ...defaultAuthzConfig(), ...overrides.authz },
  };
  const app = await startApp({
    config,
    logger: createLogger('debug', sink),
    clock,
    onGeneratedAdminToken: () => undefined,
    ...(routes && { routes }),
  });
  const clients: AdminClient[] = [];
  const client = (credential?: string) => {
    const c = adminClient(app.adminPort, credential);
    clients.push(c);
    return c;
  };
  return {
    app,
    db,
    clock,
    config,
    logs,
    client,
    root: client(TEST_ADMIN_TOKEN),
    async stop() {
      for (const c of clients) c.close();
      await app.close(1000);
      if (!reuseDatabase) await db.dispose();
      // Every harness test logs at debug: none of its lines may hold a secret.
      const leaks = secretsIn(logs.join(''), config);
      if (leaks.length > 0) {
        const fields = [
          ...new Set(logs.filter((l) => secretsIn(l, config).length > 0).flatMap((l) => Object.keys(JSON.parse(l) as object))),
        ];
        throw new Error(`the log holds secrets: ${leaks.join(', ')} (in lines with the fields ${fields.join(', ')})`);
      }
    },
  };
}

/**
 * What in a log text looks like a secret: a full API key or admin token (by format,
 * whichever test made it), the test's admin token, the hash secret (hex or base64), or
 * anything shaped like a keyed hash (64 hex digits). Names the kind, never the value.
 */
export function secretsIn(
  text: string,
  config: Pick<Config, 'hashSecret' | 'adminToken'> & Partial<Pick<Config, 'hashSecretPrevious'>>,
): string[] {
  const found: string[] = [];
  if (text.match(KEY_SCANNER_REGEX)) found.push('an API key');
  if (text.match(ADMIN_TOKEN_SCANNER_REGEX)) found.push('an admin token');
  if (config.adminToken && text.includes(config.adminToken)) found.push('the configured admin token');
  for (const secret of [config.hashSecret, config.hashSecretPrevious]) {
    if (secret && (text.includes(secret.toString('hex')) || text.includes(secret.toString('base64')))) found.push('the hash secret');
  }
  if (/(^|[^0-9a-f])[0-9a-f]{64}([^0-9a-f]|$)/.test(text)) found.push('a 64-hex-digit hash');
  return found;
}

/** The keyward error of a failed call, read from both trailers. */
export function errorOf(e: unknown): {
  grpc: number;
  code: string;
  trailerCode: string;
  field?: string;
  info?: ErrorInfo;
  badRequest?: BadRequest;
  message: string;
} {
  const err = e as ServiceError;
  if (!err || typeof err.code !== 'number') throw new Error(`not a gRPC error: ${String(e)}`);
  const trailerCode = String(err.metadata?.get('x-error-code')[0] ?? '');
  const bin = err.metadata?.get('grpc-status-details-bin')[0];
  let info: ErrorInfo | undefined;
  let badRequest: BadRequest | undefined;
  let code = '';
  if (bin instanceof Buffer) {
    const st = Status.decode(bin);
    for (const d of st.details) {
      if (d.typeUrl === 'type.googleapis.com/google.rpc.ErrorInfo') info = ErrorInfo.decode(d.value);
      if (d.typeUrl === 'type.googleapis.com/google.rpc.BadRequest') badRequest = BadRequest.decode(d.value);
    }
    code = info?.reason ?? '';
  }
  return { grpc: err.code, code, trailerCode, field: info?.metadata.field, info, badRequest, message: err.details };
}

/** Expects the promise to fail and returns its keyward error. */
export async function failure(p: Promise<unknown>): Promise<ReturnType<typeof errorOf>> {
  try {
    await p;
  } catch (e) {
    return errorOf(e);
  }
  throw new Error('expected the call to fail, but it succeeded');
}
