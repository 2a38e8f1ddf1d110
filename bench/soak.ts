/**
 * keyward soak: a real keyward under steady mixed traffic for a while, to show that its
 * memory and event loop stay flat and that every answer stays right.
 *
 *   npm run soak -- --minutes 10                                   # builds dist/ first
 *   node --import tsx bench/soak.ts --minutes 0.5 --rate 200       # needs `npm run build`
 *
 * Options: --minutes N (10; fractions allowed), --rate Checks/s in all (300),
 * --admin-rate KeyAdmin calls/s (4; 0 for none), --als-rate access-log entries/s (100;
 * 0 for none), --interval seconds between progress lines (10), --sqlite (do not use
 * PostgreSQL), --no-redis (do not use Redis).
 *
 * The server: dist/cli/main.js serve, started as its own process as `keyward serve`
 * runs (test/support/server-process.ts), on ports the system picks, with a new
 * temporary directory as its working directory. The store is a fresh PostgreSQL
 * database, created for the run and dropped after, when PostgreSQL answers at
 * KEYWARD_TEST_PG_URL (default postgres://postgres@127.0.0.1:5432/postgres), else the
 * embedded SQLite in the temporary directory. Rate limits and quotas are in Redis
 * (KEYWARD_REDIS_URL) when Redis answers at KEYWARD_TEST_REDIS_URL (default
 * redis://127.0.0.1:6379), else in keyward's memory. The first lines say which.
 *
 * Set-up through KeyAdmin: four organizations, 100 keys to allow, 10 more for the
 * KeyAdmin traffic to churn, 3 rate-limited keys and 20 revoked ones; then every key to
 * allow and every revoked key is checked once, so the run starts with a warm cache.
 *
 * The traffic, all of it at once, paced (open loop) from this one process:
 *  - Checks, --rate a second over two HTTP/2 connections (bench/raw-grpc-client.ts),
 *    each answer judged against what its kind must get:
 *      allow    70 %  active keys, with those the KeyAdmin traffic creates and rotates: allowed
 *      invalid   6 %  bad format or checksum: 401 invalid_api_key
 *      unknown   8 %  well-formed keys never issued, half of them new each time: 401 invalid_api_key
 *      revoked   6 %  revoked keys: 401 revoked_api_key
 *      limited  10 %  three keys limited to 20 a minute: allowed or 429 rate_limit_exceeded,
 *                     and no key allowed more than 20 per minute window the run touched
 *                     (40 if keyward's local fallback decided while Redis failed)
 *  - KeyAdmin, --admin-rate calls a second, one at a time: organizations created,
 *    listed, read and renamed; keys created, listed, read (status checked), updated,
 *    rotated and revoked (a key leaves the allow pool, its Checks in flight finish,
 *    then it is revoked and joins the revoked pool); usage stats, the audit log,
 *    rate-limit status, limiter stats and quota.
 *  - Envoy access-log entries, --als-rate a second, over StreamAccessLogs on the authz
 *    port: one stream at a time, five messages a second, each stream ended after 15 s
 *    and its answer awaited.
 *  - The operations server at each progress line: /metrics (read for the figures
 *    below), /readyz (200 and ready) and /healthz.
 * A wrong answer, a gRPC error or a timeout (5 s for a Check, 10 s for a KeyAdmin call)
 * is an error of its kind.
 *
 * Every --interval seconds one line: the time, keyward's RSS (VmRSS of its process)
 * and V8 heap, its event-loop lag p99 and max over the interval (prom-client's
 * keyward_nodejs_eventloop_lag_p99_seconds and _max_seconds on its /metrics; the
 * histogram behind them is reset at each scrape, and this is the only scraper), the
 * rate of each kind, and the errors so far.
 *
 * At the end: the RSS after the warm-up (the first 20 % of the run, at least 30 s), as
 * the median of each minute (RSS moves in a GC sawtooth), each against the first
 * minute's, with the spread in percent, and the minimum, maximum and last sample; the
 * largest event-loop lag; requests and errors by kind; keyward's own counters (Check
 * decisions; access-log entries against those sent, which must match; dropped usage,
 * flush, store, Redis and quota errors, Redis fallback decisions, throttled cache
 * misses and undecodable access-log messages, which must be 0); its log lines at warn and
 * above, counted, with the first distinct messages. keyward is stopped with SIGTERM and
 * must exit 0; the database, the run's quota counters in Redis and the directory are
 * removed. The last line is `SOAK_RESULT {json}`. Exit status 1 when there was an
 * error, keyward did not stop cleanly, or a minute's median RSS after the warm-up moved
 * more than 10 % from the first minute's. Ctrl-C ends the run early the same way (a second one kills
 * keyward at once), with status 130. Keys, hashes, the hash secret and the admin token
 * are never printed.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Client, credentials, Metadata, status as grpcStatus, type ServiceError } from '@grpc/grpc-js';
import Redis from 'ioredis';
import { Client as PgClient } from 'pg';
import { RequestMethod } from '../src/gen/envoy/config/core/v3/base';
import { StreamAccessLogsMessage } from '../src/gen/envoy/service/accesslog/v3/als';
import { CheckResponse } from '../src/gen/envoy/service/auth/v3/external_auth';
import {
  CreateKeyRequest,
  CreateOrganizationRequest,
  Environment,
  GetKeyRequest,
  GetOrganizationRequest,
  GetQuotaRequest,
  GetRateLimiterStatsRequest,
  GetRateLimitStatusRequest,
  GetUsageStatsRequest,
  KeyAdminClient,
  KeyStatus,
  ListAuditEventsRequest,
  ListKeysRequest,
  ListOrganizationsRequest,
  RevokeKeyRequest,
  RotateKeyRequest,
  UpdateKeyRequest,
  UpdateOrganizationRequest,
} from '../src/gen/keyward/admin/v1/key_admin';
import { generateKey } from '../src/keys/format';
import { redisAvailable, testRedisUrl } from '../test/support/redis';
import { BIN, startServerProcess, type ServerProcess } from '../test/support/server-process';
import { RawGrpcClient, type Answer } from './raw-grpc-client';
import { accessLogEntry } from './support/access-log';
import { checkRequestBytes, grpcFrame } from './support/check-request';
import { ALS_PATH, CHECK_PATH, adminUnary, denyCode, identity, logLines, memoryOf, redact, withDatabase } from './support/keyward';

// ---------- options ----------
const USAGE =
  'usage: npm run soak -- [--minutes N] [--rate CHECKS_PER_S] [--admin-rate CALLS_PER_S] [--als-rate ENTRIES_PER_S] [--interval S] [--sqlite] [--no-redis]';

function options() {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        minutes: { type: 'string', default: '10' },
        rate: { type: 'string', default: '300' },
        'admin-rate': { type: 'string', default: '4' },
        'als-rate': { type: 'string', default: '100' },
        interval: { type: 'string', default: '10' },
        sqlite: { type: 'boolean', default: false },
        'no-redis': { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    console.error(`soak: ${(e as Error).message}\n${USAGE}`);
    process.exit(2);
  }
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const num = (name: string, v: string, min: number, max: number): number => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n) || n < min || n > max) {
      console.error(`soak: --${name} must be a number from ${min} to ${max} (got ${JSON.stringify(v)})\n${USAGE}`);
      process.exit(2);
    }
    return n;
  };
  return {
    minutes: num('minutes', values.minutes, 0.05, 1440),
    rate: num('rate', values.rate, 1, 20_000),
    adminRate: num('admin-rate', values['admin-rate'], 0, 100),
    alsRate: num('als-rate', values['als-rate'], 0, 50_000),
    interval: num('interval', values.interval, 1, 3600),
    sqlite: values.sqlite,
    redis: !values['no-redis'],
  };
}
const OPT = options();

const DURATION_MS = Math.round(OPT.minutes * 60_000);
/** RSS is judged from the end of the warm-up on. */
const WARMUP_MS = Math.max(30_000, 0.2 * DURATION_MS);
const RSS_LIMIT_PERCENT = 10;
const RSS_SAMPLE_MS = 2000;
const INTERVAL_MS = OPT.interval * 1000;
const CHECK_TIMEOUT_MS = 5000;
const ADMIN_TIMEOUT_MS = 10_000;
const MAX_IN_FLIGHT = 1000;
const CONNECTIONS = 2;
const POOL_KEYS = 100;
const REVOKED_AT_START = 20;
const UNKNOWN_POOL = 50;
const LIMITED_KEYS = 3;
const LIMIT_PER_MINUTE = 20;
/** Keys of the churn organization the KeyAdmin traffic keeps between these counts. */
const CHURN_MIN = 10;
const CHURN_MAX = 40;
const REVOKED_POOL_MAX = 200;
const QUOTA = 1_000_000_000;
const ALS_STREAM_MS = 15_000;
const ALS_MESSAGES_PER_SECOND = 5;
const ALS_MAX_ENTRIES_PER_MESSAGE = 1000;
/** Check kinds and their shares of --rate. */
const CHECK_MIX: [CheckKind, number][] = [
  ['allow', 0.7],
  ['limited', 0.1],
  ['unknown', 0.08],
  ['invalid', 0.06],
  ['revoked', 0.06],
];

const ROOT = join(__dirname, '..');
const PG_URL = process.env.KEYWARD_TEST_PG_URL || 'postgres://postgres@127.0.0.1:5432/postgres';
const DB_NAME = `keyward_soak_${randomBytes(4).toString('hex')}`;
const ADMIN_TOKEN = `soak-admin-${randomBytes(16).toString('hex')}`;
const HASH_SECRET = randomBytes(32).toString('hex');
const SECRETS = [ADMIN_TOKEN, HASH_SECRET];

// ---------- tallies ----------
const CHECK_KINDS = ['allow', 'invalid', 'unknown', 'revoked', 'limited'] as const;
type CheckKind = (typeof CHECK_KINDS)[number];
const KINDS = [...CHECK_KINDS, 'admin', 'als', 'ops'] as const;
type Kind = (typeof KINDS)[number];

interface Tally {
  /** Requests sent (for als: entries written). */
  sent: number;
  /** Answers as expected (for als: entries in streams answered OK). */
  ok: number;
  /** Wrong answers, failures, timeouts (for als: failed streams). */
  errors: number;
  /** Error descriptions and their counts (the first 20 distinct). */
  messages: Map<string, number>;
}
const tally = Object.fromEntries(KINDS.map((k) => [k, { sent: 0, ok: 0, errors: 0, messages: new Map() }])) as Record<Kind, Tally>;
let limited429 = 0;
/** Failures after Ctrl-C: keyward may be shutting down by then; not counted as errors. */
let failuresAfterInterrupt = 0;
const afterInterrupt = new Map<string, number>();
const adminCalls = new Map<string, { calls: number; errors: number; ms: number }>();

function fail(kind: Kind, what: string): void {
  if (interrupted) {
    failuresAfterInterrupt++;
    afterInterrupt.set(`${kind}: ${what}`, (afterInterrupt.get(`${kind}: ${what}`) ?? 0) + 1);
    return;
  }
  const t = tally[kind];
  t.errors++;
  const m = t.messages;
  if (m.has(what) || m.size < 20) m.set(what, (m.get(what) ?? 0) + 1);
}

function grpcError(e: unknown): string {
  const se = e as Partial<ServiceError>;
  if (typeof se.code !== 'number') return e instanceof Error ? e.message : String(e);
  const code = se.metadata?.get('x-error-code')[0];
  return `${grpcStatus[se.code] ?? se.code}${code ? ` ${String(code)}` : ''}: ${se.details ?? ''}`;
}

// ---------- keys ----------
interface PoolKey {
  id: string;
  orgId: string;
  /** The Check request's gRPC message frame (the key is in it). */
  frame: Buffer;
  /** Checks with this key in flight. */
  inflight: number;
  churn: boolean;
  rotated: boolean;
}
interface LimitedKey extends PoolKey {
  allowed: number;
  firstSentMs?: number;
  lastAnsweredMs?: number;
}
const active: PoolKey[] = [];
const revoked: PoolKey[] = [];
const limitedKeys: LimitedKey[] = [];
const unknownFrames: Buffer[] = [];
const frameOf = (key: string): Buffer => grpcFrame(checkRequestBytes(key));

/** Keys keyward must refuse before any lookup: bad checksum, too short, unknown environment, too long. */
function invalidKey(): string {
  const k = generateKey('live');
  switch (randomInt(4)) {
    case 0:
      return k.slice(0, -1) + (k.endsWith('A') ? 'B' : 'A');
    case 1:
      return k.slice(0, 30);
    case 2:
      return `kw_prod_${k.slice(8)}`;
    default:
      return `${k}x`;
  }
}

// ---------- state ----------
let server: ServerProcess | undefined;
let tmp: string | undefined;
let dbCreated = false;
let stopping = false;
let interrupted = false;
let wakeMain: () => void = () => undefined;
const interruptedPromise = new Promise<void>((resolve) => (wakeMain = resolve));
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
let loadStart = 0;
const sinceLoad = () => performance.now() - loadStart;

// ---------- Checks ----------
/** Check connections, round robin; one that failed is replaced a second later. */
class CheckConnections {
  private readonly clients: RawGrpcClient[];
  private next = 0;
  private readonly replacing = new Set<number>();
  constructor(
    private readonly port: number,
    n: number,
  ) {
    this.clients = Array.from({ length: n }, () => this.connect());
  }
  private connect(): RawGrpcClient {
    const c = new RawGrpcClient(this.port, CHECK_PATH);
    c.ready.catch(() => undefined);
    return c;
  }
  ready(): Promise<void[]> {
    return Promise.all(this.clients.map((c) => c.ready));
  }
  call(frame: Buffer, done: (a: Answer) => void): void {
    const i = this.next++ % this.clients.length;
    this.clients[i]!.call(frame, (a) => {
      if (!a.ok && /^(socket|connection closed|GOAWAY)/.test(a.error)) this.replace(i);
      done(a);
    });
  }
  private replace(i: number): void {
    if (this.replacing.has(i) || stopping) return;
    this.replacing.add(i);
    setTimeout(() => {
      this.clients[i]!.close();
      this.clients[i] = this.connect();
      this.replacing.delete(i);
    }, 1000);
  }
  close(): void {
    for (const c of this.clients) c.close();
  }
}

let conns: CheckConnections;
let inFlight = 0;

function outcome(r: CheckResponse): string {
  if (r.okResponse) return `allowed (status ${r.status?.code ?? 0})`;
  if (r.deniedResponse) return `denied ${r.deniedResponse.status?.code ?? '?'} ${denyCode(r) ?? ''}`;
  return `no http response (status ${r.status?.code ?? 0})`;
}
const allowed = (r: CheckResponse) => r.okResponse !== undefined && (r.status?.code ?? 0) === 0;
const deniedWith = (r: CheckResponse, http: number, code: string) =>
  Number(r.deniedResponse?.status?.code) === http && denyCode(r) === code;

/** Judges an answer: undefined when it is what the kind must get, else what was wrong. */
type Judge = (r: CheckResponse) => string | undefined;
const expectAllowed: Judge = (r) => (allowed(r) ? undefined : `expected allowed, got ${outcome(r)}`);
const expectDenied =
  (http: number, code: string): Judge =>
  (r) =>
    deniedWith(r, http, code) ? undefined : `expected ${http} ${code}, got ${outcome(r)}`;
const expectInvalid = expectDenied(401, 'invalid_api_key');
const expectRevoked = expectDenied(401, 'revoked_api_key');
function expectLimited(k: LimitedKey): Judge {
  return (r) => {
    k.lastAnsweredMs = Date.now();
    if (allowed(r)) {
      k.allowed++;
      return undefined;
    }
    if (deniedWith(r, 429, 'rate_limit_exceeded')) {
      limited429++;
      return undefined;
    }
    return `expected allowed or 429 rate_limit_exceeded, got ${outcome(r)}`;
  };
}

function sendCheck(kind: CheckKind, frame: Buffer, key: PoolKey | undefined, judge: Judge, onDone?: () => void): void {
  tally[kind].sent++;
  if (inFlight >= MAX_IN_FLIGHT) {
    fail(kind, `not sent: ${MAX_IN_FLIGHT} Checks already in flight`);
    return onDone?.();
  }
  inFlight++;
  if (key) key.inflight++;
  let settled = false;
  const finish = (a: Answer): void => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    inFlight--;
    if (key) key.inflight--;
    let wrong: string | undefined;
    if (!a.ok) wrong = a.error;
    else {
      try {
        wrong = judge(CheckResponse.decode(a.message));
      } catch {
        wrong = 'undecodable CheckResponse';
      }
    }
    if (wrong === undefined) tally[kind].ok++;
    else fail(kind, wrong);
    onDone?.();
  };
  const timer = setTimeout(() => finish({ ok: false, error: `no answer within ${CHECK_TIMEOUT_MS / 1000} s` }), CHECK_TIMEOUT_MS);
  conns.call(frame, finish);
}

const pick = <T>(a: T[]): T => a[randomInt(a.length)]!;

function sendOne(): void {
  let x = Math.random();
  let kind: CheckKind = 'allow';
  for (const [k, w] of CHECK_MIX) {
    if ((x -= w) < 0) {
      kind = k;
      break;
    }
  }
  switch (kind) {
    case 'allow': {
      const k = pick(active);
      return sendCheck(kind, k.frame, k, expectAllowed);
    }
    case 'limited': {
      const k = pick(limitedKeys);
      k.firstSentMs ??= Date.now();
      return sendCheck(kind, k.frame, k, expectLimited(k));
    }
    case 'unknown':
      return sendCheck(kind, Math.random() < 0.5 ? pick(unknownFrames) : frameOf(generateKey('live')), undefined, expectInvalid);
    case 'invalid':
      return sendCheck(kind, frameOf(invalidKey()), undefined, expectInvalid);
    case 'revoked': {
      const k = pick(revoked);
      return sendCheck(kind, k.frame, k, expectRevoked);
    }
  }
}

/**
 * Before the timed traffic: every key to allow and every revoked key checked once, 8 at
 * a time, so that the run starts with them cached instead of with a burst of misses.
 * These Checks are judged and counted like the others.
 */
async function warmCache(): Promise<number> {
  const work: [CheckKind, PoolKey, Judge][] = [
    ...active.map((k): [CheckKind, PoolKey, Judge] => ['allow', k, expectAllowed]),
    ...revoked.map((k): [CheckKind, PoolKey, Judge] => ['revoked', k, expectRevoked]),
  ];
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < work.length) {
        const [kind, k, judge] = work[next++]!;
        await new Promise<void>((resolve) => sendCheck(kind, k.frame, k, judge, resolve));
      }
    }),
  );
  return work.length;
}

/** Open loop: every 10 ms, as many Checks as --rate says are due (at most a second's worth at once). */
function startChecks(): NodeJS.Timeout {
  const start = performance.now();
  let sent = 0;
  return setInterval(() => {
    const due = Math.floor(((performance.now() - start) / 1000) * OPT.rate) - sent;
    const n = Math.min(due, Math.ceil(OPT.rate));
    sent += due; // what could not be sent in time is skipped, not sent in a burst later
    for (let i = 0; i < n; i++) sendOne();
  }, 10);
}

// ---------- KeyAdmin ----------
const unary = adminUnary(ADMIN_TOKEN);
let admin: KeyAdminClient;
const orgs = { pool: '', quota: '', limited: '', churn: '' };
const extraOrgs: string[] = [];
let seq = 0;

async function createKey(orgId: string, name: string, rateLimitPerMinute?: number): Promise<{ id: string; frame: Buffer }> {
  const r = await unary(
    admin.createKey.bind(admin),
    CreateKeyRequest.fromPartial({
      organizationId: orgId,
      name,
      environment: Environment.ENVIRONMENT_LIVE,
      scopes: ['chat'],
      metadata: { soak: 'yes' },
      rateLimitPerMinute,
    }),
    ADMIN_TIMEOUT_MS,
  );
  return { id: r.key!.id, frame: frameOf(r.secret) };
}

async function waitIdle(k: PoolKey): Promise<void> {
  const until = Date.now() + CHECK_TIMEOUT_MS + 1000;
  while (k.inflight > 0 && Date.now() < until) await sleep(5);
}

/** What a KeyAdmin call of the admin loop calls, for its tally. */
type AdminCall = { method: string };

const churnCount = () => active.filter((k) => k.churn).length;

async function churnCreate(c?: AdminCall): Promise<void> {
  if (c) c.method = 'CreateKey';
  const n = ++seq;
  const k = await createKey(orgs.churn, `churn-${n}`);
  active.push({ ...k, orgId: orgs.churn, inflight: 0, churn: true, rotated: false });
}

/** Takes a churn key out of the allow pool, lets its Checks in flight finish, revokes it. */
async function churnRevoke(c: AdminCall): Promise<void> {
  c.method = 'RevokeKey';
  const candidates = active.filter((k) => k.churn);
  const k = pick(candidates);
  active.splice(active.indexOf(k), 1);
  await waitIdle(k);
  const r = await unary(admin.revokeKey.bind(admin), RevokeKeyRequest.fromPartial({ id: k.id, reason: 'soak' }), ADMIN_TIMEOUT_MS);
  if (r.status !== KeyStatus.KEY_STATUS_REVOKED) throw new Error(`answered status ${r.status}`);
  revoked.push(k);
  if (revoked.length > REVOKED_POOL_MAX) revoked.shift();
}

const thisMonth = () => new Date().toISOString().slice(0, 7);

/**
 * The KeyAdmin calls, by weight. Each names the method it calls in `c.method` first
 * (create and revoke swap to keep the churn bounded, and rotation gives way to a
 * revoke at the bound).
 */
const ADMIN_OPS: [number, (c: AdminCall) => Promise<void>][] = [
  [
    2,
    async (c) => {
      c.method = 'ListOrganizations';
      const r = await unary(admin.listOrganizations.bind(admin), ListOrganizationsRequest.fromPartial({ pageSize: 20 }), ADMIN_TIMEOUT_MS);
      if (r.organizations.length === 0) throw new Error('empty');
    },
  ],
  [
    2,
    async (c) => {
      c.method = 'GetOrganization';
      const id = pick([orgs.pool, orgs.quota, orgs.limited, orgs.churn, ...extraOrgs]);
      const r = await unary(admin.getOrganization.bind(admin), GetOrganizationRequest.fromPartial({ id }), ADMIN_TIMEOUT_MS);
      if (r.id !== id) throw new Error('another organization');
    },
  ],
  [
    1,
    async (c) => {
      c.method = 'UpdateOrganization';
      const name = `soak-churn-${++seq}`;
      const r = await unary(
        admin.updateOrganization.bind(admin),
        UpdateOrganizationRequest.fromPartial({ id: orgs.churn, name }),
        ADMIN_TIMEOUT_MS,
      );
      if (r.name !== name) throw new Error('name not changed');
    },
  ],
  [
    0.5,
    async (c) => {
      c.method = 'CreateOrganization';
      const r = await unary(
        admin.createOrganization.bind(admin),
        CreateOrganizationRequest.fromPartial({ name: `soak-extra-${++seq}`, rateLimitPerMinute: 600 }),
        ADMIN_TIMEOUT_MS,
      );
      extraOrgs.push(r.id);
    },
  ],
  [1.5, (c) => (churnCount() < CHURN_MAX ? churnCreate(c) : churnRevoke(c))],
  [1.5, (c) => (churnCount() > CHURN_MIN ? churnRevoke(c) : churnCreate(c))],
  [
    3,
    async (c) => {
      c.method = 'GetKey';
      const wantRevoked = Math.random() < 1 / 3;
      const k = pick(wantRevoked ? revoked : active);
      const r = await unary(admin.getKey.bind(admin), GetKeyRequest.fromPartial({ id: k.id }), ADMIN_TIMEOUT_MS);
      const want = wantRevoked ? KeyStatus.KEY_STATUS_REVOKED : KeyStatus.KEY_STATUS_ACTIVE;
      if (r.id !== k.id || r.status !== want) throw new Error(`status ${r.status}, expected ${want}`);
    },
  ],
  [
    2,
    async (c) => {
      c.method = 'ListKeys';
      await unary(
        admin.listKeys.bind(admin),
        ListKeysRequest.fromPartial({ organizationId: orgs.churn, includeRevoked: Math.random() < 0.5, pageSize: 50 }),
        ADMIN_TIMEOUT_MS,
      );
    },
  ],
  [
    1.5,
    async (c) => {
      c.method = 'UpdateKey';
      const k = pick(active.filter((x) => x.churn));
      const name = `churn-${++seq}`;
      const r = await unary(
        admin.updateKey.bind(admin),
        UpdateKeyRequest.fromPartial({ id: k.id, name, metadata: { entries: { soak: 'yes', round: String(seq) } } }),
        ADMIN_TIMEOUT_MS,
      );
      if (r.name !== name) throw new Error('name not changed');
    },
  ],
  [
    1,
    async (c) => {
      c.method = 'RotateKey';
      const candidates = active.filter((x) => x.churn && !x.rotated);
      if (candidates.length === 0 || churnCount() >= CHURN_MAX) return churnRevoke(c);
      const k = pick(candidates);
      k.rotated = true; // once only, even if the call fails
      const r = await unary(
        admin.rotateKey.bind(admin),
        RotateKeyRequest.fromPartial({ id: k.id, gracePeriodSeconds: 3600 }),
        ADMIN_TIMEOUT_MS,
      );
      if (r.newKey?.rotatedFromKeyId !== k.id) throw new Error('the new key does not name the old one');
      // The old key stays usable for its grace period: both are in the allow pool.
      active.push({ id: r.newKey.id, orgId: orgs.churn, frame: frameOf(r.secret), inflight: 0, churn: true, rotated: false });
    },
  ],
  [
    1,
    async (c) => {
      c.method = 'GetUsageStats';
      await unary(
        admin.getUsageStats.bind(admin),
        GetUsageStatsRequest.fromPartial({ organizationId: pick([orgs.pool, orgs.quota]), month: thisMonth() }),
        ADMIN_TIMEOUT_MS,
      );
    },
  ],
  [
    1,
    async (c) => {
      c.method = 'ListAuditEvents';
      const r = await unary(
        admin.listAuditEvents.bind(admin),
        ListAuditEventsRequest.fromPartial({ organizationId: orgs.churn, pageSize: 50 }),
        ADMIN_TIMEOUT_MS,
      );
      if (r.events.length === 0) throw new Error('empty');
    },
  ],
  [
    1,
    async (c) => {
      c.method = 'GetRateLimitStatus';
      const k = pick(limitedKeys);
      const r = await unary(admin.getRateLimitStatus.bind(admin), GetRateLimitStatusRequest.fromPartial({ keyId: k.id }), ADMIN_TIMEOUT_MS);
      if (r.limit !== LIMIT_PER_MINUTE || r.limitSource !== 'key') throw new Error(`limit ${r.limit} from ${r.limitSource}`);
    },
  ],
  [
    0.5,
    async (c) => {
      c.method = 'GetQuota';
      const r = await unary(admin.getQuota.bind(admin), GetQuotaRequest.fromPartial({ organizationId: orgs.quota }), ADMIN_TIMEOUT_MS);
      if (r.limit !== QUOTA) throw new Error(`limit ${r.limit}`);
    },
  ],
  [
    0.5,
    async (c) => {
      c.method = 'GetRateLimiterStats';
      const r = await unary(admin.getRateLimiterStats.bind(admin), GetRateLimiterStatsRequest.fromPartial({}), ADMIN_TIMEOUT_MS);
      if (r.backend !== limiterBackend) throw new Error(`backend ${r.backend}`);
    },
  ],
];
const ADMIN_WEIGHT = ADMIN_OPS.reduce((a, [w]) => a + w, 0);

/** One KeyAdmin call at a time, paced to --admin-rate. */
async function adminLoop(): Promise<void> {
  if (OPT.adminRate === 0) return;
  const period = 1000 / OPT.adminRate;
  let next = performance.now();
  while (!stopping) {
    let x = Math.random() * ADMIN_WEIGHT;
    let op = ADMIN_OPS[0]![1];
    for (const [w, f] of ADMIN_OPS) {
      if ((x -= w) < 0) {
        op = f;
        break;
      }
    }
    tally.admin.sent++;
    const t = performance.now();
    const c: AdminCall = { method: '?' };
    let failed = false;
    try {
      await op(c);
      tally.admin.ok++;
    } catch (e) {
      failed = true;
      fail('admin', `${c.method}: ${grpcError(e)}`);
    }
    const s = adminCalls.get(c.method) ?? { calls: 0, errors: 0, ms: 0 };
    s.calls++;
    if (failed) s.errors++;
    s.ms += performance.now() - t;
    adminCalls.set(c.method, s);
    next += period;
    const now = performance.now();
    if (next < now - 5000) next = now; // far behind: do not catch up in a burst
    await Promise.race([sleep(Math.max(0, next - now)), interruptedPromise]);
  }
}

// ---------- access logs ----------
const ALS_PATHS: [RequestMethod, string][] = [
  [RequestMethod.POST, '/v1/chat/completions'],
  [RequestMethod.GET, '/v1/models'],
  [RequestMethod.POST, '/v1/agents/run'],
];

function alsMessage(entries: number, first: boolean): Buffer {
  const start = new Date();
  const logEntry = Array.from({ length: entries }, () => {
    const k = pick(active);
    const roll = randomInt(100);
    const code = roll < 90 ? 200 : roll < 95 ? 429 : 503;
    const tokens = code === 200 ? 50 + randomInt(2000) : 0;
    const [method, path] = pick(ALS_PATHS);
    return accessLogEntry({
      keyId: k.id,
      orgId: k.orgId,
      start,
      method,
      path,
      code,
      ms: 5 + randomInt(1500),
      tokens,
      costUsd: tokens * 0.000002,
    });
  });
  return Buffer.from(
    StreamAccessLogsMessage.encode(
      StreamAccessLogsMessage.fromPartial({
        ...(first && { identifier: { node: { id: 'soak-envoy', cluster: 'soak' }, logName: 'keyward' } }),
        httpLogs: { logEntry },
      }),
    ).finish(),
  );
}

/** One stream: --als-rate entries a second in five messages a second, ended after ALS_STREAM_MS; resolves on keyward's answer. */
function alsStream(client: Client): Promise<void> {
  return new Promise((resolve) => {
    let entries = 0;
    let blocked = false;
    let ended = false;
    const start = performance.now();
    const call = client.makeClientStreamRequest<Buffer, Buffer>(
      ALS_PATH,
      identity,
      identity,
      new Metadata(),
      { deadline: Date.now() + ALS_STREAM_MS + 30_000 },
      (e) => {
        clearInterval(timer);
        if (e) fail('als', `stream of ${entries} entries: ${grpcError(e)}`);
        else tally.als.ok += entries;
        resolve();
      },
    );
    const timer = setInterval(() => {
      if (ended) return;
      const elapsed = performance.now() - start;
      if (stopping || elapsed >= ALS_STREAM_MS) {
        ended = true;
        call.end();
        return;
      }
      if (blocked) return;
      const n = Math.min(ALS_MAX_ENTRIES_PER_MESSAGE, Math.floor((elapsed / 1000) * OPT.alsRate) - entries);
      if (n <= 0) return;
      const bytes = alsMessage(n, entries === 0);
      entries += n;
      tally.als.sent += n;
      if (!call.write(bytes)) {
        blocked = true;
        call.once('drain', () => (blocked = false));
      }
    }, 1000 / ALS_MESSAGES_PER_SECOND);
  });
}

async function alsLoop(port: number): Promise<void> {
  if (OPT.alsRate === 0) return;
  const client = new Client(`127.0.0.1:${port}`, credentials.createInsecure());
  try {
    while (!stopping) await alsStream(client);
  } finally {
    client.close();
  }
}

// ---------- the operations server ----------
function get(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpGet({ host: '127.0.0.1', port, path, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 5 s')));
    req.on('error', reject);
  });
}

/** Prometheus exposition text: `name{labels}` → value. */
function parseMetrics(text: string): Map<string, number> {
  const m = new Map<string, number>();
  for (const line of text.split('\n')) {
    const r = /^([a-zA-Z_:][\w:]*(?:\{[^}]*\})?)\s+(\S+)/.exec(line);
    if (r) m.set(r[1]!, Number(r[2]));
  }
  return m;
}

/** /metrics, /readyz and /healthz once; the metrics, or undefined when /metrics failed. */
async function scrape(port: number): Promise<Map<string, number> | undefined> {
  let metrics: Map<string, number> | undefined;
  const probes: [string, (r: { status: number; body: string }) => string | undefined][] = [
    [
      '/metrics',
      (r) =>
        r.status === 200 && r.body.includes('keyward_nodejs_eventloop_lag_p99_seconds')
          ? void (metrics = parseMetrics(r.body))
          : `/metrics: ${r.status}`,
    ],
    [
      '/readyz',
      (r) =>
        r.status === 200 && (JSON.parse(r.body) as { ready?: boolean }).ready === true
          ? undefined
          : `/readyz: ${r.status} ${r.body.trim().slice(0, 200)}`,
    ],
    ['/healthz', (r) => (r.status === 200 ? undefined : `/healthz: ${r.status}`)],
  ];
  for (const [path, judge] of probes) {
    tally.ops.sent++;
    try {
      const wrong = judge(await get(port, path));
      if (wrong === undefined) tally.ops.ok++;
      else fail('ops', wrong);
    } catch (e) {
      fail('ops', `${path}: ${(e as Error).message}`);
    }
  }
  return metrics;
}

// ---------- start and stop ----------
async function pgAdminQuery(sql: string, timeoutMs = 5000): Promise<void> {
  const c = new PgClient({ connectionString: PG_URL, connectionTimeoutMillis: timeoutMs });
  try {
    await c.connect();
    await c.query(sql);
  } finally {
    await c.end().catch(() => undefined);
  }
}

const pgReachable = (): Promise<boolean> =>
  pgAdminQuery('select 1', 2000).then(
    () => true,
    () => false,
  );

/** Drops the run's database (FORCE ends leftover sessions); never throws. */
async function dropDatabase(): Promise<string> {
  if (!dbCreated) return '';
  try {
    await pgAdminQuery(`drop database if exists ${DB_NAME} with (force)`);
    dbCreated = false;
    return `database ${DB_NAME} dropped`;
  } catch (e) {
    return `COULD NOT DROP database ${DB_NAME}: ${(e as Error).message}`;
  }
}

/** The run's quota counters in Redis (rate-limit windows expire within 2 minutes by themselves). */
async function cleanRedis(url: string): Promise<string> {
  const r = new Redis(url, { lazyConnect: true, connectTimeout: 2000, maxRetriesPerRequest: 1, retryStrategy: () => null });
  r.on('error', () => undefined);
  try {
    await r.connect();
    let removed = 0;
    for (const org of [orgs.pool, orgs.quota, orgs.limited, orgs.churn, ...extraOrgs].filter(Boolean)) {
      const keys = await r.keys(`kw:quota:{${org}}:*`);
      if (keys.length) removed += await r.del(...keys);
    }
    return `${removed} quota counter(s) removed from Redis`;
  } catch (e) {
    return `could not remove the quota counters from Redis: ${(e as Error).message}`;
  } finally {
    r.disconnect();
  }
}

/** For the exit handler: kills keyward if it still runs, removes the directory, drops the database. */
function cleanupSync(): void {
  if (server && server.proc.exitCode === null && server.proc.signalCode === null) server.proc.kill('SIGKILL');
  if (tmp) rmSync(tmp, { recursive: true, force: true });
  tmp = undefined;
  if (dbCreated) {
    const script = `const {Client}=require('pg');const c=new Client(process.env.URL);c.connect().then(()=>c.query('drop database if exists ${DB_NAME} with (force)')).then(()=>c.end(),(e)=>{console.error(e.message);process.exit(1)})`;
    spawnSync(process.execPath, ['-e', script], { cwd: ROOT, env: { ...process.env, URL: PG_URL }, stdio: 'inherit', timeout: 30_000 });
    dbCreated = false;
  }
}

/**
 * SIGTERM, unless keyward is already shutting down (a Ctrl-C in the terminal reaches it
 * too, and it treats SIGINT as SIGTERM; a second signal would make it exit at once).
 */
async function stopServer(s: ServerProcess): Promise<{ code: number | null | 'timeout'; signalled: boolean; seconds: number }> {
  const t = performance.now();
  const already = s.proc.exitCode !== null || s.proc.signalCode !== null || s.stdout().includes('"msg":"shutting down"');
  if (!already) s.proc.kill('SIGTERM');
  const code = await Promise.race([s.exited, sleep(30_000).then(() => 'timeout' as const)]);
  if (code === 'timeout') s.proc.kill('SIGKILL');
  return { code, signalled: !already, seconds: (performance.now() - t) / 1000 };
}

function buildInfo(): string {
  const git = (args: string[]) => spawnSync('git', args, { cwd: ROOT, encoding: 'utf8' }).stdout?.trim() ?? '';
  let built = '?';
  try {
    built = statSync(BIN).mtime.toISOString();
  } catch {
    // startServerProcess reports a missing dist/
  }
  const dirty = git(['status', '--porcelain', '--', 'src']) !== '';
  return `git ${git(['rev-parse', '--short', 'HEAD']) || '?'}${dirty ? ' (src/ has uncommitted changes)' : ''}, dist/ built ${built}`;
}

// ---------- output ----------
const mmss = (ms: number) => `${Math.floor(ms / 60_000)}:${String(Math.floor((ms % 60_000) / 1000)).padStart(2, '0')}`;
const mb = (kb: number) => (kb / 1024).toFixed(1);
const int = (n: number) => Math.round(n).toLocaleString('en-US');
const pad = (s: string | number, w: number) => String(s).padStart(w);

const COLUMNS = `${pad('time', 6)} ${pad('RSS MB', 7)} ${pad('heap MB', 7)} ${pad('lag p99/max ms', 15)} | Checks/s: ${pad('allow', 6)} ${pad('invalid', 7)} ${pad('unknown', 7)} ${pad('revoked', 7)} ${pad('limited', 7)} ${pad('(429)', 6)} | ${pad('admin/s', 7)} ${pad('ALS/s', 6)} | errors`;

interface Sample {
  atMs: number;
  rssKb: number;
  heapMb: number;
  lagP99Ms: number;
  lagMaxMs: number;
}

// ---------- main ----------
let limiterBackend = 'memory';

async function main(): Promise<number> {
  const cpuModel = cpus()[0]?.model ?? '?';
  console.log('# keyward soak');
  console.log(
    `machine: ${cpus().length} CPUs, ${cpuModel}; node ${process.version}; load average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}; ${new Date().toISOString()}`,
  );
  console.log(`keyward under test: ${buildInfo()}`);

  // The store and the limiter.
  tmp = mkdtempSync(join(tmpdir(), 'keyward-soak-'));
  let store: string;
  const env: Record<string, string> = { KEYWARD_LOG_LEVEL: 'info', KEYWARD_HASH_SECRET: HASH_SECRET, KEYWARD_ADMIN_TOKEN: ADMIN_TOKEN };
  if (!OPT.sqlite && (await pgReachable())) {
    await pgAdminQuery(`create database ${DB_NAME}`);
    dbCreated = true;
    env.KEYWARD_DATABASE_URL = withDatabase(PG_URL, DB_NAME);
    store = `PostgreSQL (a fresh database ${DB_NAME} at ${redact(new URL(PG_URL).host)}, dropped at the end)`;
  } else {
    env.KEYWARD_DATABASE_URL = `sqlite:${join(tmp, 'keyward.db')}`;
    store = `SQLite in ${tmp}${OPT.sqlite ? ' (--sqlite)' : ' (PostgreSQL not reachable)'}`;
  }
  const redisUrl = testRedisUrl();
  let limiter: string;
  if (OPT.redis && (await redisAvailable(redisUrl))) {
    env.KEYWARD_REDIS_URL = redisUrl;
    limiterBackend = 'redis';
    limiter = `Redis at ${new URL(redisUrl).host} (KEYWARD_REDIS_URL)`;
  } else {
    limiter = `in memory${OPT.redis ? ' (Redis not reachable)' : ' (--no-redis)'}`;
  }
  console.log(`store: ${store}`);
  console.log(`rate limits and quotas: ${limiter}`);

  server = await startServerProcess(env, tmp);
  const serving = JSON.parse(
    server
      .stdout()
      .split('\n')
      .find((l) => l.includes('"keyward serving"'))!,
  ) as { http?: string };
  const httpPort = Number(serving.http?.split(':').pop());
  if (!Number.isInteger(httpPort)) throw new Error('keyward did not report its operations HTTP port');
  const pid = server.proc.pid!;
  console.log(
    `keyward pid ${pid}, cwd ${tmp}: authz 127.0.0.1:${server.authzPort}, admin 127.0.0.1:${server.adminPort}, http 127.0.0.1:${httpPort}`,
  );

  // Organizations and keys.
  admin = new KeyAdminClient(`127.0.0.1:${server.adminPort}`, credentials.createInsecure());
  const org = async (name: string, rateLimitPerMinute: number, monthlyQuota = 0) =>
    (
      await unary(
        admin.createOrganization.bind(admin),
        CreateOrganizationRequest.fromPartial({ name, rateLimitPerMinute, monthlyQuota, maxKeys: 1000 }),
      )
    ).id;
  orgs.pool = await org('soak-pool', 1_000_000);
  orgs.quota = await org('soak-quota', 1_000_000, QUOTA);
  orgs.limited = await org('soak-limited', 60);
  orgs.churn = await org('soak-churn', 1_000_000);
  for (let i = 0; i < POOL_KEYS; i++) {
    const orgId = i % 3 === 2 ? orgs.quota : orgs.pool;
    active.push({ ...(await createKey(orgId, `pool-${i}`)), orgId, inflight: 0, churn: false, rotated: false });
  }
  for (let i = 0; i < CHURN_MIN; i++) await churnCreate();
  for (let i = 0; i < LIMITED_KEYS; i++) {
    limitedKeys.push({
      ...(await createKey(orgs.limited, `limited-${i}`, LIMIT_PER_MINUTE)),
      orgId: orgs.limited,
      inflight: 0,
      churn: false,
      rotated: false,
      allowed: 0,
    });
  }
  for (let i = 0; i < REVOKED_AT_START; i++) {
    const k = await createKey(orgs.churn, `revoked-${i}`);
    await unary(admin.revokeKey.bind(admin), RevokeKeyRequest.fromPartial({ id: k.id, reason: 'soak' }));
    revoked.push({ ...k, orgId: orgs.churn, inflight: 0, churn: true, rotated: true });
  }
  for (let i = 0; i < UNKNOWN_POOL; i++) unknownFrames.push(frameOf(generateKey('live')));
  console.log(
    `set up through KeyAdmin: 4 organizations; ${POOL_KEYS} keys to allow (rate limit 1,000,000/min, a third under a monthly quota of ${int(QUOTA)}), ` +
      `${CHURN_MIN}-${CHURN_MAX} more churned by KeyAdmin, ${LIMITED_KEYS} limited to ${LIMIT_PER_MINUTE}/min, ${REVOKED_AT_START} revoked at the start`,
  );

  conns = new CheckConnections(server.authzPort, CONNECTIONS);
  await conns.ready();
  const tw = performance.now();
  const warmed = await warmCache();
  console.log(`cache warmed: ${warmed} keys checked once in ${((performance.now() - tw) / 1000).toFixed(1)} s`);
  console.log(
    `traffic for ${mmss(DURATION_MS)} (${OPT.minutes} min): ${OPT.rate} Checks/s (${CHECK_MIX.map(([k, w]) => `${k} ${Math.round(w * 100)} %`).join(', ')}), ` +
      `${OPT.adminRate} KeyAdmin calls/s, ${OPT.alsRate} access-log entries/s; warm-up ${mmss(WARMUP_MS)}, then each minute's median RSS must stay within ${RSS_LIMIT_PERCENT} % of the first minute's`,
  );
  console.log('');
  console.log(COLUMNS);

  // The run.
  await scrape(httpPort); // resets the event-loop histogram: the first interval starts here
  const rssBeforeKb = memoryOf(pid).rssKb;
  loadStart = performance.now();
  const rss: { atMs: number; kb: number }[] = [];
  const sampleRss = () => rss.push({ atMs: sinceLoad(), kb: memoryOf(pid).rssKb });
  const rssTimer = setInterval(sampleRss, RSS_SAMPLE_MS);
  const checkTimer = startChecks();
  const adminDone = adminLoop();
  const alsDone = alsLoop(server.authzPort);
  const samples: Sample[] = [];
  const countsNow = () => KINDS.map((k) => (k === 'als' ? tally[k].sent : tally[k].ok + tally[k].errors));
  const cpuStart = process.cpuUsage();
  let last = { atMs: 0, counts: countsNow(), limited429 };
  for (let tick = 1; ; tick++) {
    const at = Math.min(tick * INTERVAL_MS, DURATION_MS);
    await Promise.race([sleep(at - sinceLoad()), interruptedPromise]);
    if (interrupted) break;
    const rssKb = memoryOf(pid).rssKb;
    const m = await scrape(httpPort);
    const now = sinceLoad();
    const counts = countsNow();
    const secs = (now - last.atMs) / 1000;
    const rate = (k: Kind) => (counts[KINDS.indexOf(k)]! - last.counts[KINDS.indexOf(k)]!) / secs;
    const s: Sample = {
      atMs: now,
      rssKb,
      heapMb: (m?.get('keyward_nodejs_heap_size_used_bytes') ?? NaN) / 1048576,
      lagP99Ms: (m?.get('keyward_nodejs_eventloop_lag_p99_seconds') ?? NaN) * 1000,
      lagMaxMs: (m?.get('keyward_nodejs_eventloop_lag_max_seconds') ?? NaN) * 1000,
    };
    samples.push(s);
    const errors = KINDS.reduce((a, k) => a + tally[k].errors, 0);
    console.log(
      `${pad(mmss(now), 6)} ${pad(mb(rssKb), 7)} ${pad(s.heapMb.toFixed(1), 7)} ${pad(`${s.lagP99Ms.toFixed(1)} / ${s.lagMaxMs.toFixed(1)}`, 15)} | ` +
        `${pad('', 9)} ${pad(rate('allow').toFixed(1), 6)} ${pad(rate('invalid').toFixed(1), 7)} ${pad(rate('unknown').toFixed(1), 7)} ${pad(rate('revoked').toFixed(1), 7)} ${pad(rate('limited').toFixed(1), 7)} ` +
        `${pad(((limited429 - last.limited429) / secs).toFixed(1), 6)} | ${pad(rate('admin').toFixed(1), 7)} ${pad(rate('als').toFixed(0), 6)} | ${errors}`,
    );
    last = { atMs: now, counts, limited429 };
    if (at >= DURATION_MS) break;
  }

  // Drain: no new requests; those in flight finish; the access-log stream ends and is answered.
  sampleRss();
  const lastRssKb = rss[rss.length - 1]!.kb;
  const hwmKb = memoryOf(pid).hwmKb;
  const loadMs = sinceLoad();
  const cpu = process.cpuUsage(cpuStart);
  stopping = true;
  clearInterval(checkTimer);
  clearInterval(rssTimer);
  await Promise.all([adminDone, alsDone]);
  const drainUntil = performance.now() + CHECK_TIMEOUT_MS + 1000;
  while (inFlight > 0 && performance.now() < drainUntil) await sleep(20);
  conns.close();
  admin.close();
  // keyward's counters, unless a Ctrl-C in the terminal reached keyward too and it is stopping.
  if (interrupted) await sleep(500);
  const finalMetrics = server.stdout().includes('"msg":"shutting down"') ? undefined : await scrape(httpPort);

  // keyward stops; its log is read; everything is removed.
  const stop = await stopServer(server);
  const { lines, warnings } = logLines(server.stdout());
  const stderrLines = server
    .stderr()
    .split('\n')
    .filter((l) => l.trim() !== '');
  const byMessage = new Map<string, number>();
  for (const w of warnings) {
    let what: string;
    try {
      const j = JSON.parse(w) as { level: number; msg?: string; err?: { code?: string; type?: string } };
      what = `${j.level >= 50 ? 'error' : 'warn'}: ${j.msg ?? '?'}${j.err ? ` (${j.err.code ?? j.err.type ?? ''})` : ''}`;
    } catch {
      what = w.slice(0, 200);
    }
    byMessage.set(what, (byMessage.get(what) ?? 0) + 1);
  }
  const cleanup = [await dropDatabase(), env.KEYWARD_REDIS_URL ? await cleanRedis(env.KEYWARD_REDIS_URL) : ''];
  rmSync(tmp, { recursive: true, force: true });
  cleanup.push(`${tmp} removed`);
  tmp = undefined;

  // ---------- the summary ----------
  console.log('');
  console.log(`## summary${interrupted ? ' (interrupted)' : ''}`);
  console.log(`ran ${mmss(loadMs)} of traffic; store: ${store}; limits: ${limiter}`);
  const problems: string[] = [];

  // RSS.
  const afterWarmup = rss.filter((r) => r.atMs >= WARMUP_MS);
  let rssResult: Record<string, number> | null = null;
  if (afterWarmup.length >= 2) {
    // RSS moves in a garbage-collection sawtooth, so single samples are compared by the
    // median of each minute after the warm-up: the first minute's is the baseline, and
    // every later minute's must stay within ±RSS_LIMIT_PERCENT of it.
    const median = (xs: number[]) => {
      const v = [...xs].sort((a, b) => a - b);
      return v.length % 2 ? v[(v.length - 1) / 2]! : (v[v.length / 2 - 1]! + v[v.length / 2]!) / 2;
    };
    const windows = new Map<number, number[]>();
    for (const r of afterWarmup) {
      const w = Math.floor((r.atMs - WARMUP_MS) / 60_000);
      windows.set(w, [...(windows.get(w) ?? []), r.kb]);
    }
    const medians = [...windows.entries()].sort((a, b) => a[0] - b[0]).map(([w, kbs]) => ({ w, kb: median(kbs) }));
    const base = medians[0]!.kb;
    const kbs = afterWarmup.map((r) => r.kb);
    const max = Math.max(...kbs);
    const min = Math.min(...kbs);
    const up = ((Math.max(...medians.map((m) => m.kb)) - base) / base) * 100;
    const down = ((base - Math.min(...medians.map((m) => m.kb))) / base) * 100;
    const spread = Math.max(up, down);
    console.log(
      `RSS by minute after the warm-up (median of ${RSS_SAMPLE_MS / 1000} s samples): ` +
        medians.map((m) => `${mmss(WARMUP_MS + m.w * 60_000)} ${mb(m.kb)}`).join(', ') +
        ` MB; against the first: +${up.toFixed(1)} % / -${down.toFixed(1)} %; limit ±${RSS_LIMIT_PERCENT} %`,
    );
    console.log(`RSS samples after the warm-up: min ${mb(min)}, max ${mb(max)}, last ${mb(lastRssKb)} MB (${afterWarmup.length} samples)`);
    if (spread > RSS_LIMIT_PERCENT)
      problems.push(`RSS after the warm-up moved ${spread.toFixed(1)} % by minute medians (limit ${RSS_LIMIT_PERCENT} %)`);
    rssResult = {
      warmupSeconds: WARMUP_MS / 1000,
      afterWarmupMb: +mb(base),
      minMb: +mb(min),
      maxMb: +mb(max),
      lastMb: +mb(lastRssKb),
      upPercent: +up.toFixed(2),
      downPercent: +down.toFixed(2),
    };
  } else {
    console.log(`RSS: not judged: the run ended before the warm-up (${mmss(WARMUP_MS)}) was over; last ${mb(lastRssKb)} MB`);
  }
  console.log(`RSS before the traffic ${mb(rssBeforeKb)} MB; peak (VmHWM) ${mb(hwmKb)} MB`);

  // Event loop.
  const worst = samples.reduce<Sample | undefined>((a, s) => (!a || s.lagMaxMs > a.lagMaxMs ? s : a), undefined);
  const p99s = samples.map((s) => s.lagP99Ms).filter(Number.isFinite);
  const worstP99 = p99s.length ? Math.max(...p99s) : NaN;
  if (worst)
    console.log(
      `event-loop lag: max ${worst.lagMaxMs.toFixed(1)} ms (interval ending ${mmss(worst.atMs)}); highest interval p99 ${worstP99.toFixed(1)} ms`,
    );

  // keyward's counters.
  if (finalMetrics) {
    const decisions = [...finalMetrics]
      .filter(([n]) => n.startsWith('keyward_check_decisions_total{'))
      .map(([n, v]) => `${/code="([^"]*)"/.exec(n)?.[1]} ${int(v)}`);
    console.log(`keyward's Check decisions: ${decisions.join(', ')}`);
    const counter = (name: string) => finalMetrics.get(name) ?? 0;
    const seen = counter('keyward_accesslog_entries_total');
    console.log(
      `keyward's access-log entries: ${int(seen)} received (${int(tally.als.sent)} sent), ${int(counter('keyward_accesslog_entries_recorded_total'))} recorded; ` +
        `usage events written ${int(counter('keyward_usage_events_written_total'))}, buffered ${int(counter('keyward_usage_buffer_depth'))}`,
    );
    if (seen !== tally.als.sent) fail('als', `keyward received ${seen} access-log entries, ${tally.als.sent} were sent`);
    for (const name of [
      'keyward_usage_events_dropped_total',
      'keyward_usage_flush_errors_total',
      'keyward_last_used_flush_errors_total',
      'keyward_store_errors_total',
      'keyward_redis_errors_total',
      'keyward_ratelimit_fallback_decisions_total',
      'keyward_quota_errors_total',
      'keyward_accesslog_undecodable_total',
      'keyward_cache_misses_throttled_total',
    ]) {
      if (counter(name) > 0) fail('ops', `keyward's ${name} is ${counter(name)}, not 0`);
    }
  }

  // Limited keys: no more allowed than the limit in each minute window touched. While
  // Redis fails, keyward's local fallback counts on its own (KEYWARD_REDIS_FAILURE_MODE=local),
  // so a key may then get its limit from each: the bound doubles (and the Redis errors are errors).
  const fallbacks = finalMetrics?.get('keyward_ratelimit_fallback_decisions_total');
  const fallback = (fallbacks ?? 0) > 0;
  const windowsOf = (k: LimitedKey) =>
    Math.floor((k.lastAnsweredMs ?? Date.now()) / 60_000) - Math.floor((k.firstSentMs ?? Date.now()) / 60_000) + 1;
  for (const k of limitedKeys) {
    if (k.firstSentMs === undefined) continue;
    const bound = windowsOf(k) * LIMIT_PER_MINUTE * (fallback ? 2 : 1);
    if (k.allowed > bound)
      fail(
        'limited',
        `a key limited to ${LIMIT_PER_MINUTE}/min was allowed ${k.allowed} times in ${windowsOf(k)} minute window(s)${fallback ? ' (Redis fallback included)' : ''}`,
      );
  }
  console.log(
    `limited keys: allowed ${limitedKeys.map((k) => `${k.allowed} in ${windowsOf(k)} window(s)`).join(', ')} (limit ${LIMIT_PER_MINUTE} per minute window${fallback ? `, doubled: ${int(fallbacks!)} decisions by the local fallback while Redis failed` : ''}${fallbacks === undefined ? "; keyward's counters not read" : ''})`,
  );

  // keyward's log.
  console.log(
    `keyward's log: ${lines.length} lines, ${warnings.length} at warn or above${stderrLines.length ? `; ${stderrLines.length} lines on stderr` : ''}`,
  );
  for (const [what, n] of [...byMessage].slice(0, 5)) console.log(`  ${n} × ${redact(what, SECRETS)}`);
  for (const l of stderrLines.slice(0, 3)) console.log(`  stderr: ${redact(l, SECRETS).slice(0, 200)}`);

  // Requests.
  const checkSent = CHECK_KINDS.reduce((a, k) => a + tally[k].sent, 0);
  console.log('');
  console.log(`| kind | sent | as expected | errors |`);
  console.log(`|:--|--:|--:|--:|`);
  for (const k of KINDS) {
    const t = tally[k];
    const note = k === 'limited' ? ` (${int(limited429)} of them 429)` : k === 'als' ? ' entries (in streams answered OK)' : '';
    console.log(`| ${k} | ${int(t.sent)} | ${int(t.ok)}${note} | ${int(t.errors)}${k === 'als' ? ' streams' : ''} |`);
  }
  console.log(
    `Checks: ${int(checkSent)} in ${mmss(loadMs)}, ${(checkSent / (loadMs / 1000)).toFixed(1)}/s; KeyAdmin: ${[...adminCalls]
      .sort((a, b) => b[1].calls - a[1].calls)
      .map(([m, s]) => `${m} ${s.calls}${s.errors ? ` (${s.errors} failed)` : ''}`)
      .join(', ')}`,
  );
  const adminMs = [...adminCalls.values()].reduce((a, s) => a + s.ms, 0) / Math.max(1, tally.admin.sent);
  const cpuS = (cpu.user + cpu.system) / 1e6;
  console.log(
    `KeyAdmin mean round trip ${adminMs.toFixed(1)} ms; this load generator used ${cpuS.toFixed(1)} s of CPU (${((cpuS / (loadMs / 1000)) * 100).toFixed(0)} % of one core)`,
  );

  // The stop.
  const stopText =
    stop.code === 'timeout'
      ? 'did not exit within 30 s of SIGTERM (killed)'
      : `exited with status ${stop.code} ${stop.seconds.toFixed(1)} s after ${stop.signalled ? 'SIGTERM' : 'the Ctrl-C'}`;
  console.log(`keyward ${stopText}; ${cleanup.filter(Boolean).join('; ')}`);
  if (stop.code !== 0) problems.push(`keyward ${stopText}`);

  // Errors.
  const errors = KINDS.reduce((a, k) => a + tally[k].errors, 0);
  if (errors > 0) {
    problems.push(`${errors} error(s)`);
    console.log(
      `errors by kind: ${KINDS.filter((k) => tally[k].errors)
        .map((k) => `${k} ${tally[k].errors}`)
        .join(', ')}`,
    );
    for (const k of KINDS)
      for (const [what, n] of [...tally[k].messages].slice(0, 5)) console.log(`  ${k}: ${n} × ${redact(what, SECRETS)}`);
  }
  if (failuresAfterInterrupt) {
    console.log(
      `(${failuresAfterInterrupt} request(s) failed after the interrupt, while the run and keyward were stopping; not counted as errors:`,
    );
    for (const [what, n] of [...afterInterrupt].slice(0, 5)) console.log(`  ${n} × ${redact(what, SECRETS)}`);
    console.log(')');
  }
  const verdict = problems.length
    ? `FAIL: ${problems.join('; ')}`
    : `PASS: no errors, ${rssResult ? `RSS within ±${RSS_LIMIT_PERCENT} % after the warm-up` : 'RSS not judged (the run was shorter than the warm-up)'}, clean stop`;
  console.log(interrupted ? `INTERRUPTED after ${mmss(loadMs)} (${verdict})` : verdict);

  const result = {
    date: new Date().toISOString(),
    minutes: +(loadMs / 60_000).toFixed(3),
    interrupted,
    store: store.startsWith('PostgreSQL') ? 'postgres' : 'sqlite',
    limiter: limiterBackend,
    rate: OPT.rate,
    adminRate: OPT.adminRate,
    alsRate: OPT.alsRate,
    rss: rssResult,
    lagMaxMs: worst ? +worst.lagMaxMs.toFixed(1) : null,
    lagP99MaxMs: Number.isFinite(worstP99) ? +worstP99.toFixed(1) : null,
    requests: Object.fromEntries(KINDS.map((k) => [k, tally[k].sent])),
    limited429,
    errors: Object.fromEntries(KINDS.map((k) => [k, tally[k].errors])),
    keywardWarnings: warnings.length,
    keywardExit: stop.code,
    cpus: cpus().length,
    node: process.version,
    pass: problems.length === 0,
  };
  console.log(`SOAK_RESULT ${JSON.stringify(result)}`);
  return interrupted ? 130 : problems.length ? 1 : 0;
}

process.on('exit', cleanupSync);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => {
    if (interrupted) {
      console.error(`\n${sig} again: killing keyward and removing what the run made`);
      cleanupSync();
      process.exit(130);
    }
    interrupted = true;
    console.error(`\n${sig}: the run stops; keyward is stopped and the run's data removed (${sig} again to kill it now)`);
    wakeMain();
  });
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(`soak failed: ${redact(e instanceof Error ? (e.stack ?? e.message) : String(e), SECRETS)}`);
    if (server) console.error(redact(server.stderr().slice(-2000), SECRETS));
    process.exit(1);
  },
);
