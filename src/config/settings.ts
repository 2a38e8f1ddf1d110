/**
 * Every KEYWARD_* variable, in one table: its group, schema, default and description.
 * The typed Config (./types.ts), its defaults (./load.ts) and docs/configuration.md
 * (./doc.ts) all come from here. To add one: an entry below, its field in ./types.ts
 * (a data-plane one: a line in AUTHZ_VARIABLES, nothing else), its read in ./load.ts,
 * then `npm run docs:config`.
 */
import type { z } from 'zod';
import type { TlsPort } from '../tls/files';
import * as schema from './schemas';
import { USAGE_SETTINGS } from './settings-usage';
import { WEBHOOK_SETTINGS } from './settings-webhooks';
import { CONSOLE_SETTINGS } from './settings-console';

/** The groups of docs/configuration.md, in order. */
export const GROUPS = {
  listeners: { title: 'Listeners', intro: 'The four ports of `keyward serve`.' },
  database: { title: 'Database', intro: 'Where keys, organizations, usage and audit live.' },
  secrets: {
    title: 'Secrets',
    intro: 'Each may instead be given as a file (`_FILE`, e.g. a mounted Kubernetes Secret); errors never quote the value.',
  },
  controlPlane: { title: 'Control plane (KeyAdmin)', intro: 'The administration service.' },
  dataPlane: { title: 'Data plane (Check)', intro: "How Envoy's ext_authz Check reads the credential and answers." },
  cache: { title: 'Key cache', intro: 'Checks are answered from memory; these bound how stale and how large it may be.' },
  limits: { title: 'Rate limits and quotas', intro: 'In memory per process, or shared across replicas through Redis.' },
  usage: { title: 'Usage', intro: 'Usage events are buffered, written in batches, and journaled locally while the store fails.' },
  tls: {
    title: 'TLS',
    intro:
      'A port with a certificate and key serves TLS; with a client CA it requires client certificates (mTLS). The files are checked at start and reloaded when they change.',
  },
  console: {
    title: 'Web console',
    intro:
      'The console (docs/console.md) signs in with the administrator token or an admin-scoped API key; its sessions live in the serving process.',
  },
  operations: { title: 'Operations', intro: 'Logging, shutdown and memory.' },
  cli: {
    title: 'CLI',
    intro:
      'Read by the `keyward` client commands (`org`, `key`, `audit`, `check`), not by the server. `keyward health` reads KEYWARD_HTTP_LISTEN and KEYWARD_HTTP_TLS_CERT as `serve` does.',
  },
} as const;

export type SettingGroup = keyof typeof GROUPS;

/** One variable. Its name is its key in SETTINGS. */
export interface Setting {
  group: SettingGroup;
  /** One line for docs/configuration.md. */
  description: string;
  /** The text used when the variable is unset or empty; none: the value is undefined. */
  default?: string;
  /** Parses the text; its first issue's message is the problem the ConfigError names. */
  schema: z.ZodType;
  /** Also accepted as NAME_FILE: a file holding the value. */
  file?: boolean;
  /** false: errors do not quote the value (a secret, a URL with a password, or a message that already does). */
  echo?: boolean;
  /** An empty value is parsed (and refused) rather than meaning unset. */
  emptyIsValue?: boolean;
}

type TlsPortName = Uppercase<TlsPort>;
type PortTlsSetting = Setting & { schema: typeof schema.path; default?: undefined };

/** A server port's three TLS variables, KEYWARD_<PORT>_TLS_CERT, _KEY and _CLIENT_CA. */
function portTls<P extends TlsPortName>(
  port: P,
  label: string,
): Record<`KEYWARD_${P}_TLS_${'CERT' | 'KEY' | 'CLIENT_CA'}`, PortTlsSetting> {
  const prefix = `KEYWARD_${port}_TLS`;
  return {
    [`${prefix}_CERT`]: {
      group: 'tls',
      schema: schema.path,
      description: `PEM certificate (optionally followed by its chain) of the ${label}; set with ${prefix}_KEY, the port serves TLS.`,
    },
    [`${prefix}_KEY`]: { group: 'tls', schema: schema.path, description: `The unencrypted PEM private key of ${prefix}_CERT.` },
    [`${prefix}_CLIENT_CA`]: {
      group: 'tls',
      schema: schema.path,
      description: `PEM CA bundle that client certificates must chain to (mTLS on the ${label}); needs ${prefix}_CERT and _KEY.`,
    },
  } as Record<`KEYWARD_${P}_TLS_${'CERT' | 'KEY' | 'CLIENT_CA'}`, PortTlsSetting>;
}

export const SETTINGS = {
  // listeners
  KEYWARD_AUTHZ_LISTEN: {
    group: 'listeners',
    default: '127.0.0.1:9191',
    schema: schema.hostPort,
    echo: false,
    emptyIsValue: true,
    description: "host:port of the ext_authz gRPC server (Envoy's Check).",
  },
  KEYWARD_ADMIN_LISTEN: {
    group: 'listeners',
    default: '127.0.0.1:9192',
    schema: schema.hostPort,
    echo: false,
    emptyIsValue: true,
    description: 'host:port of the KeyAdmin gRPC server.',
  },
  KEYWARD_HTTP_LISTEN: {
    group: 'listeners',
    default: '127.0.0.1:9193',
    schema: schema.hostPortOrOff,
    echo: false,
    emptyIsValue: true,
    description: 'host:port of the operations HTTP server (/metrics, /healthz, /readyz); `off` serves none.',
  },
  ...CONSOLE_SETTINGS,

  // database
  KEYWARD_DATABASE_URL: {
    group: 'database',
    default: 'sqlite:./data/keyward.db',
    schema: schema.databaseUrl,
    file: true,
    echo: false,
    description:
      '`sqlite:<path>` or `postgres://…` (`postgresql://…`); the SQLite file and its folder are created by `serve` and `migrate`.',
  },
  KEYWARD_AUTO_MIGRATE: {
    group: 'database',
    default: 'true',
    schema: schema.bool,
    description:
      'Whether `serve` applies pending migrations at start (`true`/`false`, `1`/`0`, `yes`/`no`); `serve --no-migrate` skips them too.',
  },

  // secrets
  KEYWARD_HASH_SECRET: {
    group: 'secrets',
    schema: schema.hashSecret,
    file: true,
    echo: false,
    description:
      'The keyed-hash secret of keys and tokens, hex or base64, at least 32 bytes. Required with PostgreSQL; unset with SQLite, `serve` generates one and stores it beside the database (`<name>.secret`, mode 0600).',
  },
  KEYWARD_HASH_SECRET_PREVIOUS: {
    group: 'secrets',
    schema: schema.hashSecret,
    file: true,
    echo: false,
    description:
      'During a rotation, the secret being rotated away from (same encodings, must differ): a credential found under it is rehashed with KEYWARD_HASH_SECRET.',
  },
  KEYWARD_ADMIN_TOKEN: {
    group: 'secrets',
    schema: schema.adminToken,
    file: true,
    echo: false,
    description:
      'The bootstrap administrator token, at least 16 characters; unset, one is generated at the first start and printed once. Also the CLI credential (an API key with the `admin` scope works too).',
  },

  // control plane
  KEYWARD_ROTATION_GRACE_SECONDS: {
    group: 'controlPlane',
    default: '86400',
    schema: schema.intIn(0, 2_592_000),
    description: "RotateKey's default grace period: how long the old key keeps working (0–2592000).",
  },
  ...WEBHOOK_SETTINGS,
  KEYWARD_ADMIN_AUTH_MAX_FAILURES: {
    group: 'controlPlane',
    default: '10',
    schema: schema.intIn(0, 1_000_000),
    description: 'Failed KeyAdmin authentications from one address within a minute before it is refused (0–1000000); 0 = no throttling.',
  },
  KEYWARD_ADMIN_AUTH_BLOCK_SECONDS: {
    group: 'controlPlane',
    default: '60',
    schema: schema.intIn(1, 86_400),
    description: 'How long such an address is refused (1–86400).',
  },

  // data plane
  KEYWARD_CREDENTIAL_HEADERS: {
    group: 'dataPlane',
    default: 'authorization,x-api-key',
    schema: schema.headerNames,
    description: 'Comma-separated header names that may carry the key (`Authorization: Bearer <key>` or the bare key).',
  },
  KEYWARD_STRIP_CREDENTIAL: {
    group: 'dataPlane',
    default: 'true',
    schema: schema.bool,
    description: 'Remove the credential headers before the request goes upstream.',
  },
  KEYWARD_ROUTES_FILE: {
    group: 'dataPlane',
    schema: schema.existingFile,
    echo: false,
    description: 'The route-rules file (YAML): per path and method, the scopes a key needs or `public: true`; unset, no rules.',
  },
  KEYWARD_ON_STORE_ERROR: {
    group: 'dataPlane',
    default: 'deny',
    schema: schema.onStoreError,
    description: 'An uncached key while the store fails: `deny` (HTTP 503) or `error` (gRPC UNAVAILABLE, for Envoy to decide).',
  },
  KEYWARD_CHECK_LOG: {
    group: 'dataPlane',
    default: 'off',
    schema: schema.checkLog,
    description: 'Which Check decisions are logged at info: `off`, `denied` or `all`.',
  },
  KEYWARD_CHECK_LOG_SAMPLE: {
    group: 'dataPlane',
    default: '1',
    schema: schema.fraction,
    description: 'The fraction of those decisions that is logged, 0–1.',
  },

  // key cache
  KEYWARD_CACHE_TTL_SECONDS: {
    group: 'cache',
    default: '30',
    schema: schema.intIn(0, 86_400),
    description: 'How long a cached key is used before it is reloaded (0–86400).',
  },
  KEYWARD_CACHE_MAX_ENTRIES: {
    group: 'cache',
    default: '100000',
    schema: schema.intIn(1, 50_000_000),
    description: 'Keys cached at most; the least recently used is evicted.',
  },
  KEYWARD_CACHE_MAX_STALE_SECONDS: {
    group: 'cache',
    default: '300',
    schema: schema.intIn(0, 86_400),
    description: 'Past its TTL, how long a cached key still decides while the store fails (0–86400).',
  },
  KEYWARD_CACHE_TTL_UNNOTIFIED_SECONDS: {
    group: 'cache',
    default: '2',
    schema: schema.intIn(0, 3600),
    description: 'With PostgreSQL, the cache lifetime while change notifications cannot be received (the listener is reconnecting).',
  },
  KEYWARD_NEGATIVE_CACHE_TTL_SECONDS: {
    group: 'cache',
    default: '10',
    schema: schema.intIn(0, 3600),
    description: 'How long an unknown key is remembered (0–3600).',
  },
  KEYWARD_NEGATIVE_CACHE_MAX_ENTRIES: {
    group: 'cache',
    default: '100000',
    schema: schema.intIn(1, 50_000_000),
    description: 'Unknown keys remembered at most.',
  },
  KEYWARD_CACHE_MISS_QUERIES_PER_SECOND: {
    group: 'cache',
    default: '5000',
    schema: schema.intIn(0, 10_000_000),
    description:
      'Key lookups a process sends to the store per second at most (0 = no bound); beyond it an uncached key is answered as if the store were unavailable.',
  },
  KEYWARD_LAST_USED_FLUSH_SECONDS: {
    group: 'cache',
    default: '10',
    schema: schema.intIn(1, 3600),
    description: "How often keys' last-use times are written (1–3600).",
  },

  // rate limits and quotas
  KEYWARD_REDIS_URL: {
    group: 'limits',
    schema: schema.redisUrl,
    file: true,
    echo: false,
    description: '`redis://…` or `rediss://…`: rate limits and quotas shared across replicas; unset, in memory per process.',
  },
  KEYWARD_REDIS_FAILURE_MODE: {
    group: 'limits',
    default: 'local',
    schema: schema.redisFailureMode,
    description: 'When Redis fails: limit in memory (`local`) or deny with 503 (`deny`).',
  },
  KEYWARD_RATE_LIMIT_MODE: {
    group: 'limits',
    default: 'strict',
    schema: schema.rateLimitMode,
    description:
      '`strict`: never more than the limit in any 60 s span (a client steady at up to 92.3 % of it is never refused); `approximate`: the sliding-window counter, up to 2 × limit − 1 in a 60 s span.',
  },
  KEYWARD_RATE_LIMIT_MAX_KEYS: {
    group: 'limits',
    default: '1000000',
    schema: schema.intIn(1000, 50_000_000),
    description: 'Keys the in-memory rate limiter tracks at most.',
  },
  KEYWARD_QUOTA_SYNC_SECONDS: {
    group: 'limits',
    default: '5',
    schema: schema.intIn(1, 3600),
    description: 'Without Redis, how often quota counts are synced through the database (1–3600).',
  },

  // usage
  ...USAGE_SETTINGS,

  // TLS
  ...portTls('AUTHZ', 'ext_authz port'),
  ...portTls('ADMIN', 'KeyAdmin port'),
  ...portTls('HTTP', 'operations HTTP port'),
  ...portTls('CONSOLE', 'web console port'),
  KEYWARD_TLS_RELOAD_SECONDS: {
    group: 'tls',
    default: '10',
    schema: schema.intIn(1, 3600),
    description: 'How often the TLS files are read again even when no change event came (1–3600).',
  },

  // operations
  KEYWARD_LOG_LEVEL: {
    group: 'operations',
    default: 'info',
    schema: schema.logLevel,
    description: '`fatal`, `error`, `warn`, `info`, `debug`, `trace` or `silent`.',
  },
  KEYWARD_SHUTDOWN_DEADLINE_SECONDS: {
    group: 'operations',
    default: '10',
    schema: schema.intIn(0, 3600),
    description: 'On SIGTERM or SIGINT, how long in-flight RPCs may take before they are cancelled (0–3600).',
  },
  KEYWARD_HEAP_GROWING_PERCENT: {
    group: 'operations',
    default: '20',
    schema: schema.intIn(0, 400),
    description:
      "Once the heap passes 128 MB, how far V8 may grow it past its live size before a full collection (0–400); 0 = V8's own heuristics.",
  },

  // CLI
  KEYWARD_ADMIN_URL: {
    group: 'cli',
    default: '127.0.0.1:9192',
    schema: schema.hostPort,
    echo: false,
    emptyIsValue: true,
    description: 'host:port of KeyAdmin. The credential is KEYWARD_ADMIN_TOKEN (or _FILE).',
  },
  KEYWARD_ADMIN_TLS: {
    group: 'cli',
    schema: schema.bool,
    description: 'TLS to KeyAdmin (`true`/`false`); unset, on when any KEYWARD_ADMIN_TLS_* below is set.',
  },
  KEYWARD_ADMIN_TLS_CA: { group: 'cli', schema: schema.path, description: "CA bundle to trust; unset, the system's roots." },
  KEYWARD_ADMIN_TLS_CLIENT_CERT: {
    group: 'cli',
    schema: schema.path,
    description: 'Client certificate for mTLS, set with KEYWARD_ADMIN_TLS_CLIENT_KEY.',
  },
  KEYWARD_ADMIN_TLS_CLIENT_KEY: { group: 'cli', schema: schema.path, description: 'Its unencrypted PEM private key.' },
  KEYWARD_ADMIN_TLS_SERVER_NAME: {
    group: 'cli',
    schema: schema.serverName,
    description: 'The name the server certificate must carry, when not the host of KEYWARD_ADMIN_URL.',
  },
  KEYWARD_AUTHZ_URL: {
    group: 'cli',
    default: '127.0.0.1:9191',
    schema: schema.hostPort,
    echo: false,
    emptyIsValue: true,
    description: 'host:port of the authz (Check) port, for `keyward check`.',
  },
  KEYWARD_AUTHZ_TLS: {
    group: 'cli',
    schema: schema.bool,
    description:
      '`keyward check`: TLS to the authz port (`true`/`false`); unset, on when any KEYWARD_AUTHZ_TLS_CA, _CLIENT_CERT, _CLIENT_KEY or _SERVER_NAME is set.',
  },
  KEYWARD_AUTHZ_TLS_CA: {
    group: 'cli',
    schema: schema.path,
    description: "`keyward check`: CA bundle to trust; unset, the system's roots.",
  },
  KEYWARD_AUTHZ_TLS_CLIENT_CERT: {
    group: 'cli',
    schema: schema.path,
    description: '`keyward check`: client certificate for mTLS, set with KEYWARD_AUTHZ_TLS_CLIENT_KEY.',
  },
  KEYWARD_AUTHZ_TLS_CLIENT_KEY: { group: 'cli', schema: schema.path, description: '`keyward check`: its unencrypted PEM private key.' },
  KEYWARD_AUTHZ_TLS_SERVER_NAME: {
    group: 'cli',
    schema: schema.serverName,
    description: '`keyward check`: the name the server certificate must carry, when not the host of KEYWARD_AUTHZ_URL.',
  },
} satisfies Record<string, Setting>;

export type SettingName = keyof typeof SETTINGS;
