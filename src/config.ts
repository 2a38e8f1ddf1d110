/**
 * keyward's configuration: every environment variable, parsed and validated once
 * at start. A bad value stops the process with one line naming the variable.
 *
 * The README's configuration table lists the same variables; keep them in step.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync, chmodSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { readClientTls } from './tls/client';
import { readServerTls, TlsFileError, type ClientTlsFiles, type TlsFiles, type TlsPort } from './tls/files';

/** A configuration error: its message is the one line printed before exiting. */
export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    problem: string,
  ) {
    super(`${variable}: ${problem}`);
    this.name = 'ConfigError';
  }
}

export type DatabaseConfig = { kind: 'sqlite'; path: string; url: string } | { kind: 'postgres'; url: string };

export interface Config {
  /**
   * KEYWARD_DATABASE_URL (or KEYWARD_DATABASE_URL_FILE, a file holding it):
   * `sqlite:<path>` (default `sqlite:./data/keyward.db`) or `postgres(ql)://…`.
   */
  database: DatabaseConfig;
  /** KEYWARD_AUTHZ_LISTEN: host:port of the ext_authz gRPC server. */
  authzListen: string;
  /** KEYWARD_ADMIN_LISTEN: host:port of the KeyAdmin gRPC server. */
  adminListen: string;
  /**
   * KEYWARD_HTTP_LISTEN: host:port of the operations HTTP server (/metrics, /healthz,
   * /readyz), default 127.0.0.1:9193; `off` (undefined here) serves none.
   */
  httpListen?: string;
  /**
   * The keyed-hash secret (KEYWARD_HASH_SECRET or KEYWARD_HASH_SECRET_FILE), >= 32 bytes.
   * Unset with SQLite: created once beside the database file. Unset with PostgreSQL: an error.
   */
  hashSecret: Buffer;
  /** Where the secret came from, for the start-up log (never the secret itself). */
  hashSecretSource: 'env' | 'file' | 'generated' | 'stored';
  /**
   * KEYWARD_HASH_SECRET_PREVIOUS or KEYWARD_HASH_SECRET_PREVIOUS_FILE: the secret being
   * rotated away from (same encodings, >= 32 bytes, never equal to hashSecret). New keys
   * and tokens are always hashed with hashSecret; a credential not found under it is
   * looked up under this one too, and its stored hash is then rewritten with hashSecret.
   */
  hashSecretPrevious?: Buffer;
  /** KEYWARD_ADMIN_TOKEN or KEYWARD_ADMIN_TOKEN_FILE: the bootstrap administrator token. */
  adminToken?: string;
  /** KEYWARD_LOG_LEVEL: pino level. */
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** KEYWARD_AUTO_MIGRATE: whether `serve` applies migrations at start (default true). */
  autoMigrate: boolean;
  /** KEYWARD_ROTATION_GRACE_SECONDS: RotateKey's default grace period (default 86400). */
  rotationGraceSeconds: number;
  /**
   * KEYWARD_ADMIN_AUTH_MAX_FAILURES (default 10; 0 = no throttling): failed KeyAdmin
   * authentications from one address within a minute before it is refused for
   * KEYWARD_ADMIN_AUTH_BLOCK_SECONDS (default 60).
   */
  adminAuthMaxFailures?: number;
  adminAuthBlockSeconds?: number;
  /**
   * KEYWARD_SHUTDOWN_DEADLINE_SECONDS (default 10): on SIGTERM/SIGINT, how long
   * in-flight RPCs may take before they are cancelled; buffered usage and last-use
   * times are then written and the store closed.
   */
  shutdownDeadlineSeconds?: number;
  /**
   * KEYWARD_HEAP_GROWING_PERCENT (default 20; 0 = V8's own heuristics): once the used
   * heap passes 128 MB, how far V8 may grow it past its live size before the next full
   * collection (src/util/heap.ts). V8 alone lets a busy process grow to several times
   * its live data (1M cached keys: ~400 MB live, over 1.3 GB resident).
   */
  heapGrowingPercent: number;
  /**
   * Transport security per port (src/tls/). For each of authz, admin and http:
   * KEYWARD_<PORT>_TLS_CERT and KEYWARD_<PORT>_TLS_KEY (PEM files, set together) turn on
   * TLS; KEYWARD_<PORT>_TLS_CLIENT_CA (a PEM CA bundle, needs the other two) also
   * requires client certificates that chain to it (mTLS). A port without them is
   * plaintext. The files are checked at start (unreadable, unparsable or a key that is
   * not the certificate's: a ConfigError naming the variable) and reloaded when they
   * change. Undefined (as in tests that build a Config): every port plaintext.
   */
  tls?: TlsConfig;
  /** The data plane (ext_authz Check). */
  authz: AuthzConfig;
}

export interface TlsConfig {
  authz?: TlsFiles;
  admin?: TlsFiles;
  http?: TlsFiles;
  /**
   * KEYWARD_TLS_RELOAD_SECONDS (default 10, 1–3600): how often the files are read again
   * even when no file-change event came (changes are otherwise picked up at once).
   */
  reloadSeconds: number;
}

export interface AuthzConfig {
  /** KEYWARD_CREDENTIAL_HEADERS: lower-case header names that may carry the key (default authorization,x-api-key). */
  credentialHeaders: string[];
  /** KEYWARD_STRIP_CREDENTIAL: remove the credential headers before the upstream (default true). */
  stripCredential: boolean;
  /** KEYWARD_ROUTES_FILE: the route-rules file, if any. */
  routesFile?: string;
  /** KEYWARD_ON_STORE_ERROR: an uncached key while the store fails: `deny` (503) or `error` (gRPC UNAVAILABLE). */
  onStoreError: 'deny' | 'error';
  /** KEYWARD_CHECK_LOG: which Check decisions are logged at info: off (default), denied, all. */
  checkLog: 'off' | 'denied' | 'all';
  /** KEYWARD_CHECK_LOG_SAMPLE: the fraction of those that is logged, 0–1 (default 1). */
  checkLogSample: number;
  /** KEYWARD_CACHE_TTL_SECONDS (default 30): how long a cached key is used before it is reloaded. */
  cacheTtlSeconds: number;
  /** KEYWARD_CACHE_MAX_ENTRIES (default 100000): cached keys, least recently used evicted. */
  cacheMaxEntries: number;
  /** KEYWARD_CACHE_MAX_STALE_SECONDS (default 300): past its TTL, how long a cached key still decides while the store fails. */
  cacheMaxStaleSeconds: number;
  /**
   * KEYWARD_CACHE_TTL_UNNOTIFIED_SECONDS (default 2): with PostgreSQL, the cache lifetime
   * while change notifications cannot be received (the listener is reconnecting), so
   * correctness never depends on one message arriving.
   */
  cacheTtlUnnotifiedSeconds: number;
  /** KEYWARD_NEGATIVE_CACHE_TTL_SECONDS (default 10): how long an unknown key is remembered. */
  negativeCacheTtlSeconds: number;
  /** KEYWARD_NEGATIVE_CACHE_MAX_ENTRIES (default 100000). */
  negativeCacheMaxEntries: number;
  /**
   * KEYWARD_CACHE_MISS_QUERIES_PER_SECOND (default 5000; 0 = no bound): key lookups a
   * process sends to the store per second at most (a one-second burst). Beyond it an
   * uncached key is answered as if the store were unavailable (stale entry, else 503),
   * so a flood of random well-formed keys cannot overload the database.
   */
  cacheMissQueriesPerSecond: number;
  /** KEYWARD_LAST_USED_FLUSH_SECONDS (default 10): how often last_used_at is written. */
  lastUsedFlushSeconds: number;
  /**
   * KEYWARD_REDIS_URL (or KEYWARD_REDIS_URL_FILE, a file holding it): redis://… shares
   * rate limits and quotas across replicas; unset: in memory.
   */
  redisUrl?: string;
  /** KEYWARD_REDIS_FAILURE_MODE (default local): when Redis fails, limit locally (`local`) or deny with 503 (`deny`). */
  redisFailureMode: 'local' | 'deny';
  /** KEYWARD_RATE_LIMIT_MAX_KEYS (default 1000000): keys the in-memory limiter tracks at most. */
  rateLimitMaxKeys: number;
  /** KEYWARD_QUOTA_SYNC_SECONDS (default 5): without Redis, how often quota counts are synced through the database. */
  quotaSyncSeconds: number;
  /** KEYWARD_USAGE_FLUSH_SECONDS (default 5): how often buffered usage is written. */
  usageFlushSeconds: number;
  /** KEYWARD_USAGE_BUFFER_MAX (default 200000): buffered usage events at most while the store is unreachable. */
  usageBufferMax: number;
  /**
   * KEYWARD_USAGE_JOURNAL_DIR (default ./data/usage-journal; `off` = none): the local
   * directory of the usage journal, where usage batches the store cannot take are
   * appended and from where they are replayed once it answers (src/usage/journal.ts).
   * One process per directory. Undefined: no journal (usage waits in memory only).
   */
  usageJournalDir?: string;
  /** KEYWARD_USAGE_JOURNAL_MAX_MB (default 1024): the most the journal holds on disk. */
  usageJournalMaxMb: number;
  /** KEYWARD_USAGE_RETENTION_DAYS (default 35): how long raw usage events are kept; aggregates are kept. */
  usageRetentionDays: number;
  /** KEYWARD_USAGE_TOKENS_HEADER (default x-usage-tokens): the upstream response header with tokens used. */
  usageTokensHeader: string;
  /** KEYWARD_USAGE_COST_HEADER (default x-usage-cost-usd): the upstream response header with the cost in USD. */
  usageCostHeader: string;
}

/** The CLI's own settings: where KeyAdmin is and the credential to use. */
export interface ClientConfig {
  /** KEYWARD_ADMIN_URL: host:port, default 127.0.0.1:9192. */
  adminUrl: string;
  /** KEYWARD_ADMIN_TOKEN or KEYWARD_ADMIN_TOKEN_FILE; an admin-scoped API key also works. */
  adminToken?: string;
  /**
   * TLS to KeyAdmin, undefined for plaintext. On when KEYWARD_ADMIN_TLS=true or any of
   * KEYWARD_ADMIN_TLS_CA, KEYWARD_ADMIN_TLS_CLIENT_CERT, KEYWARD_ADMIN_TLS_CLIENT_KEY is
   * set (KEYWARD_ADMIN_TLS=false with one of them is an error). Files are checked here.
   */
  adminTls?: ClientTlsFiles & {
    /** KEYWARD_ADMIN_TLS_SERVER_NAME: the name the server certificate must carry, when not the host of KEYWARD_ADMIN_URL. */
    serverName?: string;
  };
}

type Env = Record<string, string | undefined>;

const LISTEN = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/;

function listen(env: Env, name: string, dflt: string): string {
  const v = env[name] ?? dflt;
  const m = LISTEN.exec(v);
  if (!m || Number(m[2]) > 65535) throw new ConfigError(name, `expected host:port, got ${JSON.stringify(v)}`);
  return v;
}

/**
 * A value given either directly (NAME) or as a file (NAME_FILE, e.g. a mounted
 * Kubernetes Secret; surrounding whitespace and the trailing newline are dropped).
 * Both set, an unreadable file or an empty file is an error naming the variable.
 * `variable` is the name to use in errors about the value itself.
 */
function fromEnvOrFile(env: Env, name: string): { value: string; source: 'env' | 'file'; variable: string } | undefined {
  const direct = env[name];
  const file = env[`${name}_FILE`];
  if (direct !== undefined && direct !== '' && file !== undefined && file !== '') {
    throw new ConfigError(name, `set either ${name} or ${name}_FILE, not both`);
  }
  if (direct !== undefined && direct !== '') return { value: direct.trim(), source: 'env', variable: name };
  if (file !== undefined && file !== '') {
    let value: string;
    try {
      value = readFileSync(file, 'utf8').trim();
    } catch (e) {
      throw new ConfigError(`${name}_FILE`, `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
    }
    if (value === '') throw new ConfigError(`${name}_FILE`, `${file} is empty`);
    return { value, source: 'file', variable: `${name}_FILE` };
  }
  return undefined;
}

/** Decodes a secret given as hex or base64 (standard or url-safe); undefined if neither. */
export function decodeSecret(text: string): Buffer | undefined {
  if (/^[0-9a-fA-F]+$/.test(text) && text.length % 2 === 0) return Buffer.from(text, 'hex');
  if (/^[A-Za-z0-9+/_-]+={0,2}$/.test(text)) {
    const b = Buffer.from(text.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
    return b.length > 0 ? b : undefined;
  }
  return undefined;
}

function hashSecretFrom(text: string, variable: string): Buffer {
  const b = decodeSecret(text);
  if (!b) throw new ConfigError(variable, 'must be hex or base64');
  if (b.length < 32) throw new ConfigError(variable, `must decode to at least 32 bytes, got ${b.length}`);
  return b;
}

/** `variable` names the setting in errors (KEYWARD_DATABASE_URL or KEYWARD_DATABASE_URL_FILE). */
export function parseDatabaseUrl(raw: string | undefined, variable = 'KEYWARD_DATABASE_URL'): DatabaseConfig {
  const v = raw === undefined || raw === '' ? 'sqlite:./data/keyward.db' : raw;
  if (v.startsWith('sqlite:')) {
    const p = v.slice('sqlite:'.length).replace(/^\/\/(?=\/)/, '');
    if (p === '') throw new ConfigError(variable, 'sqlite: needs a file path, e.g. sqlite:./data/keyward.db');
    if (p === ':memory:') return { kind: 'sqlite', path: p, url: v };
    return { kind: 'sqlite', path: resolve(p), url: v };
  }
  if (/^postgres(ql)?:\/\//.test(v)) {
    try {
      const u = new URL(v);
      if (!u.hostname && !u.searchParams.get('host')) throw new Error('no host');
    } catch {
      throw new ConfigError(variable, 'is not a valid postgres:// URL');
    }
    return { kind: 'postgres', url: v };
  }
  throw new ConfigError(variable, 'must start with sqlite: or postgres:// or postgresql://');
}

const logLevel = z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);
const bool = z.enum(['true', 'false', '1', '0', 'yes', 'no']).transform((s) => s === 'true' || s === '1' || s === 'yes');
const grace = z.coerce.number().int().min(0).max(2_592_000);
const intIn = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9a-z-]+$/;
const headerName = z
  .string()
  .transform((s) => s.trim().toLowerCase())
  .refine((h) => HEADER_NAME.test(h), 'must be a header name');
/** KEYWARD_REDIS_URL or KEYWARD_REDIS_URL_FILE; errors never echo the URL (it may hold a password). */
function redisUrl(env: Env): string | undefined {
  const given = fromEnvOrFile(env, 'KEYWARD_REDIS_URL');
  if (!given) return undefined;
  const v = given.value;
  if (!/^rediss?:\/\/[^\s]+$/.test(v)) throw new ConfigError(given.variable, 'must be a redis:// or rediss:// URL');
  try {
    new URL(v);
  } catch {
    throw new ConfigError(given.variable, 'must be a redis:// or rediss:// URL');
  }
  return v;
}
const headerNames = z
  .string()
  .transform((s) =>
    s
      .split(',')
      .map((h) => h.trim().toLowerCase())
      .filter((h) => h !== ''),
  )
  .refine((l) => l.length > 0 && l.every((h) => HEADER_NAME.test(h)), 'must be a comma-separated list of header names');

function zparse<T>(schema: z.ZodType<T>, env: Env, name: string, dflt: string): T {
  const raw = env[name] === undefined || env[name] === '' ? dflt : env[name];
  const r = schema.safeParse(raw);
  if (!r.success) throw new ConfigError(name, `${r.error.issues[0]?.message ?? 'invalid'} (got ${JSON.stringify(raw)})`);
  return r.data;
}

/** Where the generated secret is kept for a SQLite database file. */
export function secretFileFor(dbPath: string): string {
  return `${dbPath.replace(/\.db$/, '')}.secret`;
}

/**
 * Reads the server's configuration. With SQLite it creates the database folder and,
 * when no secret is configured, the secret file beside the database (mode 0600).
 */
function journalDir(env: Env): string | undefined {
  const v = env.KEYWARD_USAGE_JOURNAL_DIR;
  if (v === 'off') return undefined;
  const dir = v === undefined || v === '' ? './data/usage-journal' : v;
  if (existsSync(dir) && !statSync(dir).isDirectory())
    throw new ConfigError('KEYWARD_USAGE_JOURNAL_DIR', `${dir} exists and is not a directory`);
  return dir;
}

export function loadConfig(env: Env = process.env): Config {
  const databaseUrl = fromEnvOrFile(env, 'KEYWARD_DATABASE_URL');
  const database = parseDatabaseUrl(databaseUrl?.value, databaseUrl?.variable);
  const authzListen = listen(env, 'KEYWARD_AUTHZ_LISTEN', '127.0.0.1:9191');
  const adminListen = listen(env, 'KEYWARD_ADMIN_LISTEN', '127.0.0.1:9192');
  const httpListen = env.KEYWARD_HTTP_LISTEN === 'off' ? undefined : listen(env, 'KEYWARD_HTTP_LISTEN', '127.0.0.1:9193');
  const level = zparse(logLevel, env, 'KEYWARD_LOG_LEVEL', 'info');
  const autoMigrate = zparse(bool, env, 'KEYWARD_AUTO_MIGRATE', 'true');
  const rotationGraceSeconds = zparse(grace, env, 'KEYWARD_ROTATION_GRACE_SECONDS', '86400');
  const adminAuthMaxFailures = zparse(intIn(0, 1_000_000), env, 'KEYWARD_ADMIN_AUTH_MAX_FAILURES', '10');
  const adminAuthBlockSeconds = zparse(intIn(1, 86_400), env, 'KEYWARD_ADMIN_AUTH_BLOCK_SECONDS', '60');
  const shutdownDeadlineSeconds = zparse(intIn(0, 3600), env, 'KEYWARD_SHUTDOWN_DEADLINE_SECONDS', '10');
  const heapGrowingPercent = zparse(intIn(0, 400), env, 'KEYWARD_HEAP_GROWING_PERCENT', '20');

  const token = fromEnvOrFile(env, 'KEYWARD_ADMIN_TOKEN');
  if (token && token.value.length < 16) {
    throw new ConfigError(token.source === 'env' ? 'KEYWARD_ADMIN_TOKEN' : 'KEYWARD_ADMIN_TOKEN_FILE', 'must be at least 16 characters');
  }

  // Checked before a secret may be generated, so a bad one leaves no file behind.
  const previous = fromEnvOrFile(env, 'KEYWARD_HASH_SECRET_PREVIOUS');
  const hashSecretPrevious = previous && hashSecretFrom(previous.value, previous.variable);
  let hashSecret: Buffer;
  let hashSecretSource: Config['hashSecretSource'];
  const given = fromEnvOrFile(env, 'KEYWARD_HASH_SECRET');
  if (given) {
    hashSecret = hashSecretFrom(given.value, given.source === 'env' ? 'KEYWARD_HASH_SECRET' : 'KEYWARD_HASH_SECRET_FILE');
    hashSecretSource = given.source;
  } else if (database.kind === 'postgres') {
    throw new ConfigError('KEYWARD_HASH_SECRET', 'is required with PostgreSQL (or set KEYWARD_HASH_SECRET_FILE)');
  } else if (database.path === ':memory:') {
    hashSecret = randomBytes(32);
    hashSecretSource = 'generated';
  } else {
    const file = secretFileFor(database.path);
    mkdirSync(dirname(database.path), { recursive: true });
    if (existsSync(file)) {
      hashSecret = hashSecretFrom(readFileSync(file, 'utf8').trim(), `KEYWARD_HASH_SECRET (stored in ${file})`);
      hashSecretSource = 'stored';
    } else {
      hashSecret = randomBytes(32);
      writeFileSync(file, hashSecret.toString('hex') + '\n', { mode: 0o600, flag: 'wx' });
      chmodSync(file, 0o600);
      hashSecretSource = 'generated';
    }
  }
  if (hashSecretPrevious && hashSecretPrevious.equals(hashSecret)) {
    throw new ConfigError(previous!.variable, 'must differ from the hash secret (KEYWARD_HASH_SECRET); unset it once the rotation is over');
  }
  if (database.kind === 'sqlite' && database.path !== ':memory:') mkdirSync(dirname(database.path), { recursive: true });

  const routesFile = env.KEYWARD_ROUTES_FILE === undefined || env.KEYWARD_ROUTES_FILE === '' ? undefined : env.KEYWARD_ROUTES_FILE;
  if (routesFile !== undefined && !existsSync(routesFile)) throw new ConfigError('KEYWARD_ROUTES_FILE', `no such file: ${routesFile}`);
  const authz: AuthzConfig = {
    credentialHeaders: zparse(headerNames, env, 'KEYWARD_CREDENTIAL_HEADERS', 'authorization,x-api-key'),
    stripCredential: zparse(bool, env, 'KEYWARD_STRIP_CREDENTIAL', 'true'),
    routesFile,
    onStoreError: zparse(z.enum(['deny', 'error']), env, 'KEYWARD_ON_STORE_ERROR', 'deny'),
    checkLog: zparse(z.enum(['off', 'denied', 'all']), env, 'KEYWARD_CHECK_LOG', 'off'),
    checkLogSample: zparse(z.coerce.number().min(0).max(1), env, 'KEYWARD_CHECK_LOG_SAMPLE', '1'),
    cacheTtlSeconds: zparse(intIn(0, 86_400), env, 'KEYWARD_CACHE_TTL_SECONDS', '30'),
    cacheMaxEntries: zparse(intIn(1, 50_000_000), env, 'KEYWARD_CACHE_MAX_ENTRIES', '100000'),
    cacheMaxStaleSeconds: zparse(intIn(0, 86_400), env, 'KEYWARD_CACHE_MAX_STALE_SECONDS', '300'),
    cacheTtlUnnotifiedSeconds: zparse(intIn(0, 3600), env, 'KEYWARD_CACHE_TTL_UNNOTIFIED_SECONDS', '2'),
    negativeCacheTtlSeconds: zparse(intIn(0, 3600), env, 'KEYWARD_NEGATIVE_CACHE_TTL_SECONDS', '10'),
    negativeCacheMaxEntries: zparse(intIn(1, 50_000_000), env, 'KEYWARD_NEGATIVE_CACHE_MAX_ENTRIES', '100000'),
    cacheMissQueriesPerSecond: zparse(intIn(0, 10_000_000), env, 'KEYWARD_CACHE_MISS_QUERIES_PER_SECOND', '5000'),
    lastUsedFlushSeconds: zparse(intIn(1, 3600), env, 'KEYWARD_LAST_USED_FLUSH_SECONDS', '10'),
    redisUrl: redisUrl(env),
    redisFailureMode: zparse(z.enum(['local', 'deny']), env, 'KEYWARD_REDIS_FAILURE_MODE', 'local'),
    rateLimitMaxKeys: zparse(intIn(1000, 50_000_000), env, 'KEYWARD_RATE_LIMIT_MAX_KEYS', '1000000'),
    quotaSyncSeconds: zparse(intIn(1, 3600), env, 'KEYWARD_QUOTA_SYNC_SECONDS', '5'),
    usageFlushSeconds: zparse(intIn(1, 3600), env, 'KEYWARD_USAGE_FLUSH_SECONDS', '5'),
    usageBufferMax: zparse(intIn(1000, 50_000_000), env, 'KEYWARD_USAGE_BUFFER_MAX', '200000'),
    usageJournalDir: journalDir(env),
    usageJournalMaxMb: zparse(intIn(1, 1_048_576), env, 'KEYWARD_USAGE_JOURNAL_MAX_MB', '1024'),
    usageRetentionDays: zparse(intIn(1, 3650), env, 'KEYWARD_USAGE_RETENTION_DAYS', '35'),
    usageTokensHeader: zparse(headerName, env, 'KEYWARD_USAGE_TOKENS_HEADER', 'x-usage-tokens'),
    usageCostHeader: zparse(headerName, env, 'KEYWARD_USAGE_COST_HEADER', 'x-usage-cost-usd'),
  };

  return {
    database,
    authzListen,
    adminListen,
    httpListen,
    adminAuthMaxFailures,
    adminAuthBlockSeconds,
    shutdownDeadlineSeconds,
    hashSecret,
    hashSecretSource,
    ...(hashSecretPrevious && { hashSecretPrevious }),
    adminToken: token?.value,
    logLevel: level,
    autoMigrate,
    rotationGraceSeconds,
    heapGrowingPercent,
    tls: tlsConfig(env),
    authz,
  };
}

function setting(env: Env, name: string): string | undefined {
  const v = env[name];
  return v === undefined || v === '' ? undefined : v;
}

/** A TlsFileError as the ConfigError that stops the process. */
function tlsChecked<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof TlsFileError) throw new ConfigError(e.variable, e.problem);
    throw e;
  }
}

function serverTls(env: Env, port: TlsPort): TlsFiles | undefined {
  const p = `KEYWARD_${port.toUpperCase()}_TLS`;
  const cert = setting(env, `${p}_CERT`);
  const key = setting(env, `${p}_KEY`);
  const clientCa = setting(env, `${p}_CLIENT_CA`);
  if (cert === undefined && key === undefined) {
    if (clientCa !== undefined)
      throw new ConfigError(`${p}_CLIENT_CA`, `needs ${p}_CERT and ${p}_KEY (client certificates are checked over TLS only)`);
    return undefined;
  }
  if (cert === undefined) throw new ConfigError(`${p}_CERT`, `must be set together with ${p}_KEY`);
  if (key === undefined) throw new ConfigError(`${p}_KEY`, `must be set together with ${p}_CERT`);
  const files: TlsFiles = { cert, key, ...(clientCa !== undefined && { clientCa }) };
  tlsChecked(() => readServerTls(port, files));
  return files;
}

function tlsConfig(env: Env): TlsConfig {
  const out: TlsConfig = { reloadSeconds: zparse(intIn(1, 3600), env, 'KEYWARD_TLS_RELOAD_SECONDS', '10') };
  for (const port of ['authz', 'admin', 'http'] as const) {
    const files = serverTls(env, port);
    if (files) out[port] = files;
  }
  return out;
}

const SERVER_NAME = /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/;

function clientTls(env: Env): ClientConfig['adminTls'] {
  const files: ClientTlsFiles = {};
  const ca = setting(env, 'KEYWARD_ADMIN_TLS_CA');
  const clientCert = setting(env, 'KEYWARD_ADMIN_TLS_CLIENT_CERT');
  const clientKey = setting(env, 'KEYWARD_ADMIN_TLS_CLIENT_KEY');
  if (ca !== undefined) files.ca = ca;
  if (clientCert !== undefined) files.clientCert = clientCert;
  if (clientKey !== undefined) files.clientKey = clientKey;
  const serverName = setting(env, 'KEYWARD_ADMIN_TLS_SERVER_NAME');
  const anyFile = Object.keys(files).length > 0;
  const on =
    setting(env, 'KEYWARD_ADMIN_TLS') === undefined ? anyFile || serverName !== undefined : zparse(bool, env, 'KEYWARD_ADMIN_TLS', 'false');
  if (!on) {
    if (anyFile || serverName !== undefined) {
      throw new ConfigError('KEYWARD_ADMIN_TLS', 'is false, but KEYWARD_ADMIN_TLS_CA, _CLIENT_CERT, _CLIENT_KEY or _SERVER_NAME is set');
    }
    return undefined;
  }
  if (serverName !== undefined && !SERVER_NAME.test(serverName))
    throw new ConfigError('KEYWARD_ADMIN_TLS_SERVER_NAME', `must be a host name (got ${JSON.stringify(serverName)})`);
  tlsChecked(() => readClientTls(files));
  return { ...files, ...(serverName !== undefined && { serverName }) };
}

/** The data-plane defaults (what loadConfig gives with no variables set). */
export function defaultAuthzConfig(): AuthzConfig {
  return {
    credentialHeaders: ['authorization', 'x-api-key'],
    stripCredential: true,
    routesFile: undefined,
    onStoreError: 'deny',
    checkLog: 'off',
    checkLogSample: 1,
    cacheTtlSeconds: 30,
    cacheMaxEntries: 100_000,
    cacheMaxStaleSeconds: 300,
    cacheTtlUnnotifiedSeconds: 2,
    negativeCacheTtlSeconds: 10,
    negativeCacheMaxEntries: 100_000,
    cacheMissQueriesPerSecond: 5000,
    lastUsedFlushSeconds: 10,
    redisUrl: undefined,
    redisFailureMode: 'local',
    rateLimitMaxKeys: 1_000_000,
    quotaSyncSeconds: 5,
    usageFlushSeconds: 5,
    usageBufferMax: 200_000,
    usageJournalMaxMb: 1024,
    usageRetentionDays: 35,
    usageTokensHeader: 'x-usage-tokens',
    usageCostHeader: 'x-usage-cost-usd',
  };
}

export function loadClientConfig(env: Env = process.env): ClientConfig {
  const adminUrl = listen(env, 'KEYWARD_ADMIN_URL', '127.0.0.1:9192');
  const token = fromEnvOrFile(env, 'KEYWARD_ADMIN_TOKEN');
  const adminTls = clientTls(env);
  return { adminUrl, adminToken: token?.value, ...(adminTls && { adminTls }) };
}
