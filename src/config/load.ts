/**
 * Reads keyward's configuration: every variable of the settings table, parsed and
 * validated once at start, plus the rules that relate them. Reading only: it writes
 * no file (./provision.ts does, for `serve` and `migrate`).
 */
import { existsSync, readFileSync } from 'node:fs';
import { readClientTls } from '../tls/client';
import { clientTlsVariables, readServerTls, TlsFileError, type TlsFiles, type TlsPort } from '../tls/files';
import { tracingConfig } from '../observability/tracing';
import { ConfigError, givenText, parseText, read, type Env } from './read';
import {
  AUTHZ_VARIABLES,
  type AuthzClientConfig,
  type AuthzConfig,
  type ClientConfig,
  type DatabaseConfig,
  type LoadedConfig,
  type LoadedHashSecret,
  type TlsConfig,
} from './types';

/** `variable` names the setting in errors (KEYWARD_DATABASE_URL or KEYWARD_DATABASE_URL_FILE). */
export function parseDatabaseUrl(raw: string | undefined, variable = 'KEYWARD_DATABASE_URL'): DatabaseConfig {
  return raw === undefined || raw === '' ? read({}, 'KEYWARD_DATABASE_URL') : parseText('KEYWARD_DATABASE_URL', raw, variable);
}

/** Where the generated secret is kept for a SQLite database file. */
export function secretFileFor(dbPath: string): string {
  return `${dbPath.replace(/\.db$/, '')}.secret`;
}

/** The secret stored beside a SQLite database, if there is one. */
export function storedHashSecret(file: string): Buffer | undefined {
  if (!existsSync(file)) return undefined;
  return parseText('KEYWARD_HASH_SECRET', readFileSync(file, 'utf8').trim(), `KEYWARD_HASH_SECRET (stored in ${file})`);
}

/** The previous secret must differ from the current one. */
export function checkPreviousDiffers(previous: Buffer | undefined, current: Buffer, env: Env): void {
  if (previous && previous.equals(current)) {
    throw new ConfigError(
      givenText(env, 'KEYWARD_HASH_SECRET_PREVIOUS')!.variable,
      'must differ from the hash secret (KEYWARD_HASH_SECRET); unset it once the rotation is over',
    );
  }
}

function hashSecretOf(env: Env, database: DatabaseConfig): LoadedHashSecret {
  const given = givenText(env, 'KEYWARD_HASH_SECRET');
  if (given) return { hashSecret: parseText('KEYWARD_HASH_SECRET', given.text, given.variable), hashSecretSource: given.source };
  if (database.kind === 'postgres') {
    throw new ConfigError('KEYWARD_HASH_SECRET', 'is required with PostgreSQL (or set KEYWARD_HASH_SECRET_FILE)');
  }
  const stored = database.path === ':memory:' ? undefined : storedHashSecret(secretFileFor(database.path));
  return stored ? { hashSecret: stored, hashSecretSource: 'stored' } : { hashSecretSource: 'unset' };
}

/** The data plane's settings, in AUTHZ_VARIABLES order. */
function authzConfig(env: Env): AuthzConfig {
  const out: Record<string, unknown> = {};
  for (const [field, name] of Object.entries(AUTHZ_VARIABLES)) out[field] = read(env, name);
  return out as AuthzConfig;
}

/** Reads the server's configuration; throws a ConfigError naming the first bad variable. */
export function loadConfig(env: Env = process.env): LoadedConfig {
  const database = read(env, 'KEYWARD_DATABASE_URL');
  const authzListen = read(env, 'KEYWARD_AUTHZ_LISTEN');
  const adminListen = read(env, 'KEYWARD_ADMIN_LISTEN');
  const httpListen = read(env, 'KEYWARD_HTTP_LISTEN');
  const consoleListen = read(env, 'KEYWARD_CONSOLE_LISTEN');
  const logLevel = read(env, 'KEYWARD_LOG_LEVEL');
  const autoMigrate = read(env, 'KEYWARD_AUTO_MIGRATE');
  const rotationGraceSeconds = read(env, 'KEYWARD_ROTATION_GRACE_SECONDS');
  const adminAuthMaxFailures = read(env, 'KEYWARD_ADMIN_AUTH_MAX_FAILURES');
  const adminAuthBlockSeconds = read(env, 'KEYWARD_ADMIN_AUTH_BLOCK_SECONDS');
  const shutdownDeadlineSeconds = read(env, 'KEYWARD_SHUTDOWN_DEADLINE_SECONDS');
  const heapGrowingPercent = read(env, 'KEYWARD_HEAP_GROWING_PERCENT');
  const adminToken = read(env, 'KEYWARD_ADMIN_TOKEN');
  const hashSecretPrevious = read(env, 'KEYWARD_HASH_SECRET_PREVIOUS');
  const secret = hashSecretOf(env, database);
  if (secret.hashSecret) checkPreviousDiffers(hashSecretPrevious, secret.hashSecret, env);
  return {
    database,
    authzListen,
    adminListen,
    httpListen,
    consoleListen,
    console: {
      sessionIdleSeconds: read(env, 'KEYWARD_CONSOLE_SESSION_IDLE_SECONDS'),
      sessionMaxSeconds: read(env, 'KEYWARD_CONSOLE_SESSION_MAX_SECONDS'),
    },
    adminAuthMaxFailures,
    adminAuthBlockSeconds,
    shutdownDeadlineSeconds,
    ...secret,
    ...(hashSecretPrevious && { hashSecretPrevious }),
    adminToken,
    logLevel,
    autoMigrate,
    rotationGraceSeconds,
    heapGrowingPercent,
    authz: authzConfig(env),
    webhooks: {
      allowInsecure: read(env, 'KEYWARD_WEBHOOK_ALLOW_INSECURE'),
      timeoutMs: read(env, 'KEYWARD_WEBHOOK_TIMEOUT_MS'),
      pauseAfterFailures: read(env, 'KEYWARD_WEBHOOK_PAUSE_AFTER_FAILURES'),
    },
    tls: tlsConfig(env),
    ...tracingOf(env),
  };
}

/** The standard OTEL_* variables (not KEYWARD_*: they are read as every OpenTelemetry SDK reads them). */
function tracingOf(env: Env): { tracing?: ReturnType<typeof tracingConfig> } {
  const tracing = tracingConfig(env);
  return tracing ? { tracing } : {};
}

/** The data-plane defaults, from the settings table, without a usage journal (embedded and test use). */
export function defaultAuthzConfig(): AuthzConfig {
  return authzConfig({ KEYWARD_USAGE_JOURNAL_DIR: 'off' });
}

/** A TlsFileError as the ConfigError that stops the process. */
function tlsChecked<T>(check: () => T): T {
  try {
    return check();
  } catch (e) {
    if (e instanceof TlsFileError) throw new ConfigError(e.variable, e.problem);
    throw e;
  }
}

function serverTls(env: Env, port: TlsPort): TlsFiles | undefined {
  const prefix = `KEYWARD_${port.toUpperCase() as Uppercase<TlsPort>}_TLS` as const;
  const cert = read(env, `${prefix}_CERT`);
  const key = read(env, `${prefix}_KEY`);
  const clientCa = read(env, `${prefix}_CLIENT_CA`);
  if (cert === undefined && key === undefined) {
    if (clientCa !== undefined)
      throw new ConfigError(
        `${prefix}_CLIENT_CA`,
        `needs ${prefix}_CERT and ${prefix}_KEY (client certificates are checked over TLS only)`,
      );
    return undefined;
  }
  if (cert === undefined) throw new ConfigError(`${prefix}_CERT`, `must be set together with ${prefix}_KEY`);
  if (key === undefined) throw new ConfigError(`${prefix}_KEY`, `must be set together with ${prefix}_CERT`);
  const files: TlsFiles = { cert, key, ...(clientCa !== undefined && { clientCa }) };
  tlsChecked(() => readServerTls(port, files));
  return files;
}

function tlsConfig(env: Env): TlsConfig {
  const out: TlsConfig = { reloadSeconds: read(env, 'KEYWARD_TLS_RELOAD_SECONDS') };
  for (const port of ['authz', 'admin', 'http', 'console'] as const) {
    const files = serverTls(env, port);
    if (files) out[port] = files;
  }
  return out;
}

/** The CLI's TLS to KeyAdmin or the authz port, from KEYWARD_<PORT>_TLS and _TLS_CA, _CLIENT_CERT, _CLIENT_KEY, _SERVER_NAME. */
function clientTls(env: Env, port: 'admin' | 'authz'): ClientConfig['adminTls'] {
  const P = port === 'admin' ? 'KEYWARD_ADMIN_TLS' : 'KEYWARD_AUTHZ_TLS';
  const ca = read(env, `${P}_CA`);
  const clientCert = read(env, `${P}_CLIENT_CERT`);
  const clientKey = read(env, `${P}_CLIENT_KEY`);
  const files = {
    ...(ca !== undefined && { ca }),
    ...(clientCert !== undefined && { clientCert }),
    ...(clientKey !== undefined && { clientKey }),
  };
  const serverNameText = givenText(env, `${P}_SERVER_NAME`)?.text;
  const anyFile = Object.keys(files).length > 0;
  const on = read(env, P) ?? (anyFile || serverNameText !== undefined);
  if (!on) {
    if (anyFile || serverNameText !== undefined) {
      throw new ConfigError(P, `is false, but ${P}_CA, _CLIENT_CERT, _CLIENT_KEY or _SERVER_NAME is set`);
    }
    return undefined;
  }
  const serverName = read(env, `${P}_SERVER_NAME`);
  tlsChecked(() => readClientTls(files, clientTlsVariables(port)));
  return { ...files, ...(serverName !== undefined && { serverName }) };
}

/** Reads `keyward check`'s configuration; throws a ConfigError naming the first bad variable. */
export function loadAuthzClientConfig(env: Env = process.env): AuthzClientConfig {
  const authzUrl = read(env, 'KEYWARD_AUTHZ_URL');
  const authzTls = clientTls(env, 'authz');
  return { authzUrl, ...(authzTls && { authzTls }) };
}

/** Reads the CLI's configuration; throws a ConfigError naming the first bad variable. */
export function loadClientConfig(env: Env = process.env): ClientConfig {
  const adminUrl = read(env, 'KEYWARD_ADMIN_URL');
  const token = givenText(env, 'KEYWARD_ADMIN_TOKEN');
  const adminTls = clientTls(env, 'admin');
  return { adminUrl, adminToken: token?.text, ...(adminTls && { adminTls }) };
}
