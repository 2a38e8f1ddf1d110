/**
 * keyward fleet benchmark: two real `keyward serve` processes (dist/) sharing one
 * PostgreSQL database. Run with `node --import tsx bench/fleet.ts` (after
 * `npm run build`); needs PostgreSQL at BENCH_PG_URL (trust auth).
 *
 * It creates a fresh database (BENCH_DB, dropped first if it exists and dropped at the
 * end), starts processes A and B on it with one hash secret and admin token, and
 * measures:
 *
 *  1. Revocation propagation. BENCH_REVOKES times: create a key on A (KeyAdmin); wait
 *     until B has processed that CreateKey's own announcement (a barrier, see below);
 *     Check the key on B until allowed (B loads and caches it) and once more (a hit);
 *     prove that B answers it from its cache (a "cache probe": the key's row is marked
 *     revoked directly in SQL, which announces nothing, B must still allow it, and the
 *     row is restored); then send RevokeKey to A and poll Check on B back to back, no
 *     sleeps, until B denies with `revoked_api_key` (checked in both the JSON body and
 *     the dynamic metadata `error_code`). Propagation = time from sending the revoke to
 *     receiving B's first deny; the revoke RPC's own round trip is recorded too, and
 *     so are allowed answers to Checks sent after it returned. B runs with a 600 s
 *     cache TTL, so only the NOTIFY path (src/store/change-listener.ts) can make it
 *     deny.
 *     The barrier: CreateKey is announced too, and B drops the key when that NOTIFY
 *     arrives (or, if it arrives while B is loading any key, B does not cache that load).
 *     Arriving late, it would evict the freshly cached key and turn the measurement into
 *     a database read. So before caching, the bench changes a sentinel key's scopes on A
 *     and polls B until its Check shows them (x-keyward-scopes): notifications arrive
 *     in commit order, so B has then processed the CreateKey's too.
 *  2. Access-log ingestion. Envoy's gRPC access-log stream
 *     (envoy.service.accesslog.v3.AccessLogService/StreamAccessLogs, client streaming)
 *     to A's authz port: StreamAccessLogsMessages of BENCH_ALS_BATCH HTTP entries, each
 *     carrying keyward's dynamic metadata for a real key under
 *     filter_metadata["envoy.filters.http.ext_authz"] plus response code, duration,
 *     path, method, request id and the x-usage-tokens / x-usage-cost-usd response
 *     headers. Messages are encoded once, written as fast as the stream's backpressure
 *     allows over raw (identity-serializer) streams, from each count of concurrent
 *     streams in BENCH_ALS_STREAMS, BENCH_ALS_ENTRIES entries per run. keyward answers
 *     a stream when it ends, after its handler has seen every message, so
 *     entries/s = entries / (first write → last answer). Each run uses its own key;
 *     the run then waits for the usage flush (KEYWARD_USAGE_FLUSH_SECONDS = 1) and
 *     compares what is stored (usage_events rows, usage_daily duration counts, and
 *     GetUsageStats tokens and 4xx/5xx) with what was sent. A shortfall is a MISMATCH.
 *
 * Output: progress lines, one markdown table per measurement, and a last line
 * `BENCH_RESULT {json}` for driver scripts. The header names the dist/ build and the
 * git state (dist/ is built from the working tree), the load average, and any other
 * keyward or bench process found running, since they share the CPUs. Keys, hashes,
 * the hash secret and the admin token are never printed.
 *
 * Knobs (environment): BENCH_REVOKES (100), BENCH_REVOKE_DEADLINE_MS (5000),
 * BENCH_ALS_ENTRIES (500000), BENCH_ALS_BATCH entries per message (100),
 * BENCH_ALS_STREAMS comma-separated stream counts ("1,2,4"), BENCH_ALS_SETTLE_MS how
 * long the stored count may stand still, with no usage write running, before the
 * shortfall is final (20000), BENCH_USAGE_BUFFER_MAX (unset: keyward's default,
 * 200000) passed as KEYWARD_USAGE_BUFFER_MAX, BENCH_PG_URL
 * (postgres://postgres@127.0.0.1:5432/postgres), BENCH_DB (keyward_bench_fleet).
 */
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Client, credentials, Metadata } from '@grpc/grpc-js';
import { Client as PgClient } from 'pg';
import { CheckResponse } from '../src/gen/envoy/service/auth/v3/external_auth';
import { StreamAccessLogsMessage } from '../src/gen/envoy/service/accesslog/v3/als';
import { RequestMethod } from '../src/gen/envoy/config/core/v3/base';
import { Environment, KeyAdminClient } from '../src/gen/keyward/admin/v1/key_admin';
import { entryToUsage } from '../src/usage/access-log';
import { BIN, startServerProcess, type ServerProcess } from '../test/support/server-process';
import { accessLogEntry } from './support/access-log';
import { checkRequestBytes } from './support/check-request';
import { ALS_PATH, adminUnary, denyCode, identity, rawCheck, redact as redactSecrets } from './support/keyward';

const REVOKES = Number(process.env.BENCH_REVOKES ?? 100);
const REVOKE_DEADLINE_MS = Number(process.env.BENCH_REVOKE_DEADLINE_MS ?? 5000);
const ALS_ENTRIES = Number(process.env.BENCH_ALS_ENTRIES ?? 500_000);
const ALS_BATCH = Number(process.env.BENCH_ALS_BATCH ?? 100);
const ALS_STREAMS = (process.env.BENCH_ALS_STREAMS ?? '1,2,4').split(',').map((s) => Number(s.trim()));
const ALS_SETTLE_MS = Number(process.env.BENCH_ALS_SETTLE_MS ?? 20_000);
const USAGE_BUFFER_MAX = process.env.BENCH_USAGE_BUFFER_MAX;
const PG_URL = process.env.BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const DB_NAME = process.env.BENCH_DB ?? 'keyward_bench_fleet';
const FLUSH_SECONDS = 1;
/** Distinct pre-encoded messages per run, cycled (Envoy's batches differ; ours repeat). */
const POOL = 8;
/** The usage month: every entry starts at the bench's start time. */
const ENTRY_START = new Date();
const ADMIN_TOKEN = `bench-admin-${randomBytes(16).toString('hex')}`;
const HASH_SECRET = randomBytes(32).toString('hex');

if (!/^[a-z_][a-z0-9_]*$/.test(DB_NAME)) throw new Error(`BENCH_DB must be a plain lower-case identifier, got ${JSON.stringify(DB_NAME)}`);
for (const [name, v] of [
  ['BENCH_REVOKES', REVOKES],
  ['BENCH_ALS_ENTRIES', ALS_ENTRIES],
  ['BENCH_ALS_BATCH', ALS_BATCH],
] as const) {
  if (!Number.isSafeInteger(v) || v < 1) throw new Error(`${name} must be a positive integer`);
}
if (ALS_STREAMS.some((s) => !Number.isSafeInteger(s) || s < 1 || s > 64)) throw new Error('BENCH_ALS_STREAMS must list integers 1..64');

// ---------- process bookkeeping: everything spawned is killed on exit, the database dropped ----------
const servers: ServerProcess[] = [];
let tmp: string | undefined;
let dbCreated = false;
function killChildren(): void {
  for (const s of servers) if (s.proc.exitCode === null && s.proc.signalCode === null) s.proc.kill('SIGKILL');
  if (tmp) rmSync(tmp, { recursive: true, force: true });
  tmp = undefined;
}
/** Drops the bench database (FORCE ends leftover sessions); never throws, gives up after 10 s. */
async function dropDatabase(): Promise<void> {
  if (!dbCreated) return;
  const c = new PgClient({ connectionString: PG_URL, connectionTimeoutMillis: 5000 });
  const work = (async () => {
    await c.connect();
    await c.query(`drop database if exists ${DB_NAME} with (force)`);
    dbCreated = false;
  })();
  await Promise.race([work, new Promise((r) => setTimeout(r, 10_000))]).catch((e: unknown) =>
    console.error(`could not drop ${DB_NAME}: ${String(e)}`),
  );
  await c.end().catch(() => undefined);
}
process.on('exit', killChildren);
let interrupted = false;
for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(s, () => {
    if (interrupted) return;
    interrupted = true;
    console.error(`\n${s}: stopping the keyward processes and dropping ${DB_NAME}`);
    killChildren();
    void dropDatabase().finally(() => process.exit(130));
  });
}

// ---------- helpers ----------
/** Hides anything secret-shaped (keys, admin tokens, the bench's secret values) in text we print. */
const redact = (s: string): string => redactSecrets(s, [ADMIN_TOKEN, HASH_SECRET]);

const unary = adminUnary(ADMIN_TOKEN);

/** Nearest-rank percentile of sorted values. */
function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}
interface Summary {
  n: number;
  min: number;
  median: number;
  p90: number;
  max: number;
  mean: number;
}
function summarize(values: number[]): Summary {
  const s = [...values].sort((a, b) => a - b);
  return {
    n: s.length,
    min: s[0] ?? NaN,
    median: pct(s, 50),
    p90: pct(s, 90),
    max: s[s.length - 1] ?? NaN,
    mean: s.reduce((a, b) => a + b, 0) / (s.length || 1),
  };
}
const round = (n: number, d = 3): number => (Number.isFinite(n) ? Number(n.toFixed(d)) : n);
const fmtMs = (n: number): string => `${n.toFixed(2)} ms`;
const fmtInt = (n: number): string => Math.round(n).toLocaleString('en-US');

function table(head: string[], rows: string[][]): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => `| ${r.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join(' | ')} |`;
  return [
    line(head),
    `|${w.map((x, i) => (i === 0 ? ':' : '-') + '-'.repeat(x) + (i === 0 ? '-' : ':')).join('|')}|`,
    ...rows.map(line),
  ].join('\n');
}

/** CPU seconds (user + system) a process has used, from /proc. */
function cpuSeconds(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ 100)
  } catch {
    return NaN;
  }
}

/** What the keyward processes run: dist/ is built from the working tree, which may differ from HEAD. */
function buildInfo(): { head: string; dirtySrc: string[]; distBuiltAt: string } {
  const root = join(__dirname, '..');
  const git = (args: string[]) => spawnSync('git', args, { cwd: root, encoding: 'utf8' }).stdout ?? '';
  let distBuiltAt = '?';
  try {
    distBuiltAt = statSync(BIN).mtime.toISOString();
  } catch {
    // no dist/: startServerProcess reports it
  }
  return {
    head: git(['rev-parse', '--short', 'HEAD']).trim() || '?',
    dirtySrc: git(['status', '--porcelain', '--', 'src'])
      .split('\n')
      .filter(Boolean)
      .map((l) => l.slice(3)),
    distBuiltAt,
  };
}

/** CPU seconds of the PostgreSQL backends serving `pg`'s database (other than `pg`'s own). */
async function pgBackendCpu(pg: PgClient): Promise<number> {
  const pids = (await pg.query(`select pid from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()`)).rows.map(
    (r: { pid: number }) => r.pid,
  );
  return pids.reduce((a: number, pid: number) => a + (cpuSeconds(pid) || 0), 0);
}

/** Other `keyward serve` processes and benchmarks on this machine (they share the CPUs with this one). */
function otherBusyProcesses(): string[] {
  const ours = new Set([process.pid, process.ppid, ...servers.map((s) => s.proc.pid)]);
  const out: string[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d) || ours.has(Number(d))) continue;
    let cmd: string;
    try {
      cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0').join(' ').trim();
    } catch {
      continue;
    }
    if (/cli\/main\.js serve|bench\/\w+\.ts|h2load|jest/.test(cmd) && !cmd.includes('bench/fleet.ts'))
      out.push(`${d}: ${cmd.slice(0, 100)}`);
  }
  return out;
}

function loadLine(when: string): string {
  const others = otherBusyProcesses();
  return `${when}: load average ${loadavg()
    .map((l) => l.toFixed(2))
    .join(
      ' ',
    )}; ${others.length ? `OTHER BENCH/KEYWARD PROCESSES RUNNING (they share the CPUs): ${others.join(' | ')}` : 'no other keyward or bench processes'}`;
}

// ---------- 1. revocation propagation ----------
interface RevokeRun {
  ok: boolean;
  error?: string;
  /** From sending RevokeKey to B's first deny. */
  propagationMs?: number;
  /** RevokeKey's round trip on A. */
  revokeRpcMs?: number;
  /** Checks sent to B from the revoke to the deny. */
  polls?: number;
  /** Allowed answers to Checks sent to B after RevokeKey had returned. */
  allowsAfterAck?: number;
  /** B's first Check (cache miss, loads from the database) and second (cache hit). */
  missMs?: number;
  hitMs?: number;
}

/** The x-keyward-scopes header of an allowed Check, else undefined. */
function scopesHeader(r: CheckResponse): string | undefined {
  return r.okResponse?.headers.find((h) => h.header?.key === 'x-keyward-scopes')?.header?.value;
}

/**
 * A sentinel key, cached on B, whose scopes the barrier changes. barrier() returns once
 * B's Check of the sentinel shows the new scopes, i.e. once B has processed every
 * announcement committed before the barrier's UpdateKey.
 */
class Barrier {
  private gen = 0;
  private constructor(
    private readonly admin: KeyAdminClient,
    private readonly b: Client,
    private readonly keyId: string,
    private readonly req: Buffer,
  ) {}

  static async create(admin: KeyAdminClient, b: Client, orgId: string): Promise<Barrier> {
    const k = await unary(admin.createKey.bind(admin), {
      organizationId: orgId,
      name: 'barrier',
      environment: Environment.ENVIRONMENT_LIVE,
      scopes: ['gen-0'],
      metadata: {},
    });
    const barrier = new Barrier(admin, b, k.key!.id, checkRequestBytes(k.secret));
    await barrier.pass();
    return barrier;
  }

  async pass(): Promise<void> {
    const want = `gen-${++this.gen}`;
    await unary(this.admin.updateKey.bind(this.admin), {
      id: this.keyId,
      scopes: { values: [want] },
      expiresAt: undefined,
      clearExpiresAt: false,
      clearRateLimitPerMinute: false,
      metadata: undefined,
    });
    const t0 = performance.now();
    for (;;) {
      if (scopesHeader(await rawCheck(this.b, this.req, REVOKE_DEADLINE_MS)) === want) return;
      if (performance.now() - t0 > REVOKE_DEADLINE_MS)
        throw new Error(`barrier: B did not see the sentinel's scope update within ${REVOKE_DEADLINE_MS} ms`);
    }
  }
}

async function revocationRun(
  admin: KeyAdminClient,
  b: Client,
  pg: PgClient,
  barrier: Barrier,
  orgId: string,
  i: number,
): Promise<RevokeRun> {
  const created = await unary(admin.createKey.bind(admin), {
    organizationId: orgId,
    name: `revoke-${i}`,
    environment: Environment.ENVIRONMENT_LIVE,
    scopes: [],
    metadata: {},
  });
  const keyId = created.key!.id;
  const req = checkRequestBytes(created.secret);
  // B has heard of the CreateKey: its announcement can no longer evict the key.
  await barrier.pass();

  // B loads the key (first allowed Check: a miss), then answers it again (a hit).
  const t1 = performance.now();
  let missMs: number | undefined;
  while (missMs === undefined) {
    const r = await rawCheck(b, req, REVOKE_DEADLINE_MS);
    if (r.okResponse) missMs = performance.now() - t1;
    else if (performance.now() - t1 > REVOKE_DEADLINE_MS)
      return { ok: false, error: `new key not allowed on B within ${REVOKE_DEADLINE_MS} ms (last: ${denyCode(r)})` };
  }
  const t2 = performance.now();
  if (!(await rawCheck(b, req, REVOKE_DEADLINE_MS)).okResponse) return { ok: false, error: 'second Check on B not allowed' };
  const hitMs = performance.now() - t2;

  // Cache probe: with the row marked revoked behind keyward's back (no NOTIFY), only a
  // cached answer can still allow the key. Restored before the real revoke.
  await pg.query('update api_keys set revoked_at = now() where id = $1', [keyId]);
  let probe: CheckResponse;
  try {
    probe = await rawCheck(b, req, REVOKE_DEADLINE_MS);
  } finally {
    await pg.query('update api_keys set revoked_at = null where id = $1', [keyId]);
  }
  if (!probe.okResponse)
    return { ok: false, error: `cache probe: B re-read the key from the database (${denyCode(probe)}), so it was not cached` };

  // The measurement: revoke on A, poll B back to back until it denies.
  let revokeDoneAt: number | undefined;
  let revokeError: unknown;
  const t0 = performance.now();
  const revoke = unary(admin.revokeKey.bind(admin), { id: keyId, reason: 'fleet benchmark' }, REVOKE_DEADLINE_MS).then(
    () => void (revokeDoneAt = performance.now()),
    (e: unknown) => void (revokeError = e),
  );
  let polls = 0;
  let allowsAfterAck = 0;
  try {
    for (;;) {
      const sentAfterAck = revokeDoneAt !== undefined;
      const r = await rawCheck(b, req, REVOKE_DEADLINE_MS);
      const at = performance.now();
      polls++;
      if (r.deniedResponse) {
        const code = denyCode(r);
        if (code !== 'revoked_api_key') return { ok: false, error: `B denied with ${code}, expected revoked_api_key` };
        await revoke;
        if (revokeError) return { ok: false, error: `RevokeKey failed: ${(revokeError as Error).message}` };
        return { ok: true, propagationMs: at - t0, revokeRpcMs: revokeDoneAt! - t0, polls, allowsAfterAck, missMs, hitMs };
      }
      if (sentAfterAck) allowsAfterAck++;
      if (revokeError) return { ok: false, error: `RevokeKey failed: ${(revokeError as Error).message}` };
      if (at - t0 > REVOKE_DEADLINE_MS) {
        return {
          ok: false,
          error: `still allowed on B ${REVOKE_DEADLINE_MS} ms after the revoke (${polls} polls, revoke RPC ${revokeDoneAt === undefined ? 'pending' : `returned after ${fmtMs(revokeDoneAt - t0)}`})`,
        };
      }
    }
  } finally {
    await revoke;
  }
}

// ---------- 2. access-log ingestion ----------
interface PoolSlot {
  bytes: Buffer;
  entries: number;
  errors4xx: number;
  errors5xx: number;
  tokens: number;
  costUsd: number;
}

const PATHS: [RequestMethod, string][] = [
  [RequestMethod.POST, '/v1/chat/completions?stream=false'],
  [RequestMethod.POST, '/v1/chat/completions'],
  [RequestMethod.GET, '/v1/models'],
  [RequestMethod.POST, '/v1/agents/run'],
];

/**
 * POOL distinct StreamAccessLogsMessages of `batch` entries for one key, encoded once.
 * Slot 0 also carries the stream identifier (Envoy sends it in the first message only);
 * the others are plain batches. Response codes: 1 in 20 entries is a 429, 1 in 20 a
 * 503, the rest 200. Every entry must be meterable by keyward's own mapping.
 */
function buildPool(keyId: string, orgId: string, batch: number): { first: PoolSlot; rest: PoolSlot[] } {
  const make = (slot: number, withIdentifier: boolean): PoolSlot => {
    let errors4xx = 0;
    let errors5xx = 0;
    let tokens = 0;
    let costUsd = 0;
    const entries = Array.from({ length: batch }, (_, j) => {
      const n = slot * batch + j;
      const code = n % 20 === 7 ? 429 : n % 20 === 13 ? 503 : 200;
      const tok = code === 200 ? 100 + (n % 900) : 0;
      const cost = tok * 0.000002;
      if (code === 429) errors4xx++;
      if (code === 503) errors5xx++;
      tokens += tok;
      costUsd += cost;
      const [method, path] = PATHS[n % PATHS.length]!;
      return accessLogEntry({
        keyId,
        orgId,
        start: ENTRY_START,
        method,
        path,
        code,
        ms: 5 + ((n * 37) % 1500),
        tokens: tok,
        costUsd: cost,
      });
    });
    const msg = StreamAccessLogsMessage.fromPartial({
      ...(withIdentifier && { identifier: { node: { id: 'bench-envoy', cluster: 'bench' }, logName: 'keyward' } }),
      httpLogs: { logEntry: entries },
    });
    const bytes = Buffer.from(StreamAccessLogsMessage.encode(msg).finish());
    // Round trip through keyward's own decoder and mapping: every entry must count.
    const back = StreamAccessLogsMessage.decode(bytes).httpLogs?.logEntry ?? [];
    const meterable = back.filter(
      (e) => entryToUsage(e, { tokensHeader: 'x-usage-tokens', costHeader: 'x-usage-cost-usd' }, Date.now()) !== undefined,
    ).length;
    if (back.length !== batch || meterable !== batch)
      throw new Error(`pool message ${slot}: ${meterable}/${back.length} of ${batch} entries meterable after a round trip`);
    return { bytes, entries: batch, errors4xx, errors5xx, tokens, costUsd };
  };
  return { first: make(0, true), rest: Array.from({ length: POOL }, (_, i) => make(i + 1, false)) };
}

/** Writes `count` messages (pool.first, then pool.rest cycled) as fast as backpressure allows; resolves on the server's answer. */
function streamMessages(
  client: Client,
  pool: { first: PoolSlot; rest: PoolSlot[] },
  count: number,
  offset: number,
): Promise<{ answeredAt: number; sent: PoolSlot[] }> {
  return new Promise((resolve, reject) => {
    const sent: PoolSlot[] = [];
    const call = client.makeClientStreamRequest<Buffer, Buffer>(
      ALS_PATH,
      identity,
      identity,
      new Metadata(),
      { deadline: Date.now() + 600_000 },
      (e) => (e ? reject(e) : resolve({ answeredAt: performance.now(), sent })),
    );
    let i = 0;
    const pump = (): void => {
      while (i < count) {
        const slot = i === 0 ? pool.first : pool.rest[(offset + i) % pool.rest.length]!;
        i++;
        sent.push(slot);
        if (!call.write(slot.bytes)) {
          call.once('drain', pump);
          return;
        }
      }
      call.end();
    };
    pump();
  });
}

interface AlsRun {
  streams: number;
  messages: number;
  entries: number;
  seconds: number;
  entriesPerSec: number;
  mbPerSec: number;
  /** keyward A's CPU from the first write to the last answer. */
  keywardCpuSeconds: number;
  /** keyward A's and its PostgreSQL backends' CPU from the first write until everything was stored (or the count settled). */
  keywardCpuSecondsTotal: number;
  postgresCpuSecondsTotal: number;
  /** usage_events rows of this run's key, source accesslog. */
  storedEvents: number;
  /** sum(duration_count) of usage_daily for the key. */
  storedDurationCount: number;
  statsTokens: number;
  expectedTokens: number;
  statsErrors4xx: number;
  expected4xx: number;
  statsErrors5xx: number;
  expected5xx: number;
  statsCostUsd: number;
  expectedCostUsd: number;
  /** From the first write until the stored count reached `entries` (or gave up). */
  persistedSeconds: number;
  persistedPerSec: number;
  match: boolean;
}

/** Polls the stored count of `keyId`'s access-log events until it reaches `want`, or stands still with no usage write running for ALS_SETTLE_MS. */
async function waitStored(pg: PgClient, keyId: string, want: number): Promise<{ count: number; at: number }> {
  let last = -1;
  let since = performance.now();
  for (;;) {
    const n = Number(
      (await pg.query<{ n: string }>(`select count(*)::bigint as n from usage_events where key_id = $1 and source = 'accesslog'`, [keyId]))
        .rows[0]!.n,
    );
    if (n >= want) return { count: n, at: performance.now() };
    const writing = Number(
      (
        await pg.query<{ n: number }>(
          `select count(*)::int as n from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid() and state <> 'idle' and query ilike 'insert into usage_%'`,
        )
      ).rows[0]!.n,
    );
    if (n !== last || writing > 0) {
      last = n;
      since = performance.now();
    } else if (performance.now() - since > ALS_SETTLE_MS) {
      return { count: n, at: since };
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function alsRun(
  admin: KeyAdminClient,
  server: ServerProcess,
  pg: PgClient,
  orgId: string,
  streams: number,
  wantEntries: number,
  label: string,
): Promise<AlsRun> {
  const k = await unary(admin.createKey.bind(admin), {
    organizationId: orgId,
    name: `als-${label}`,
    environment: Environment.ENVIRONMENT_LIVE,
    scopes: [],
    metadata: {},
  });
  const keyId = k.key!.id;
  const pool = buildPool(keyId, orgId, ALS_BATCH);
  const messages = Math.ceil(wantEntries / ALS_BATCH);
  const clients = Array.from(
    { length: streams },
    () => new Client(`127.0.0.1:${server.authzPort}`, credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 }),
  );
  await Promise.all(clients.map((c) => new Promise<void>((res, rej) => c.waitForReady(Date.now() + 10_000, (e) => (e ? rej(e) : res())))));

  const cpu0 = cpuSeconds(server.proc.pid);
  const pgCpu0 = await pgBackendCpu(pg);
  const t0 = performance.now();
  const results = await Promise.all(
    clients.map((c, s) => streamMessages(c, pool, Math.floor(messages / streams) + (s < messages % streams ? 1 : 0), s * 3)),
  );
  const t1 = Math.max(...results.map((r) => r.answeredAt));
  const cpu1 = cpuSeconds(server.proc.pid);
  for (const c of clients) c.close();

  const sent = results.flatMap((r) => r.sent);
  const entries = sent.reduce((a, s) => a + s.entries, 0);
  const bytes = sent.reduce((a, s) => a + s.bytes.length + 5, 0);
  const seconds = (t1 - t0) / 1000;
  console.log(
    `  ${label}: ${fmtInt(entries)} entries in ${sent.length} messages (${(bytes / 1e6).toFixed(1)} MB) answered after ${seconds.toFixed(2)}s = ${fmtInt(entries / seconds)} entries/s; waiting for the usage flush ...`,
  );

  const stored = await waitStored(pg, keyId, entries);
  const persistedSeconds = (stored.at - t0) / 1000;
  const cpu2 = cpuSeconds(server.proc.pid);
  const pgCpu = (await pgBackendCpu(pg)) - pgCpu0;
  const daily = Number(
    (await pg.query<{ n: string }>(`select coalesce(sum(duration_count), 0)::bigint as n from usage_daily where key_id = $1`, [keyId]))
      .rows[0]!.n,
  );
  const stats = await unary(admin.getUsageStats.bind(admin), {
    organizationId: orgId,
    month: ENTRY_START.toISOString().slice(0, 7),
    keyId,
  });
  const t = stats.totals!;
  const expectedTokens = sent.reduce((a, s) => a + s.tokens, 0);
  const expected4xx = sent.reduce((a, s) => a + s.errors4xx, 0);
  const expected5xx = sent.reduce((a, s) => a + s.errors5xx, 0);
  const expectedCostUsd = sent.reduce((a, s) => a + s.costUsd, 0);
  const match =
    stored.count === entries &&
    daily === entries &&
    Number(t.tokens) === expectedTokens &&
    Number(t.errors4xx) === expected4xx &&
    Number(t.errors5xx) === expected5xx &&
    Math.abs(t.costUsd - expectedCostUsd) < 1e-6 * Math.max(1, expectedCostUsd);
  console.log(
    `  ${label}: sent ${fmtInt(entries)}, stored ${fmtInt(stored.count)} events (usage_daily duration_count ${fmtInt(daily)}; GetUsageStats tokens ${fmtInt(Number(t.tokens))}/${fmtInt(expectedTokens)}, ` +
      `4xx ${t.errors4xx}/${expected4xx}, 5xx ${t.errors5xx}/${expected5xx}, cost ${t.costUsd.toFixed(4)}/${expectedCostUsd.toFixed(4)}) after ${persistedSeconds.toFixed(1)}s` +
      (match
        ? ' - all counted'
        : `\n  !!!!! MISMATCH: ${fmtInt(entries - stored.count)} of ${fmtInt(entries)} access-log entries (${((100 * (entries - stored.count)) / entries).toFixed(1)}%) are not stored !!!!!`),
  );
  return {
    streams,
    messages: sent.length,
    entries,
    seconds: round(seconds),
    entriesPerSec: Math.round(entries / seconds),
    mbPerSec: round(bytes / 1e6 / seconds, 2),
    keywardCpuSeconds: round(cpu1 - cpu0, 2),
    keywardCpuSecondsTotal: round(cpu2 - cpu0, 2),
    postgresCpuSecondsTotal: round(pgCpu, 2),
    storedEvents: stored.count,
    storedDurationCount: daily,
    statsTokens: Number(t.tokens),
    expectedTokens,
    statsErrors4xx: Number(t.errors4xx),
    expected4xx,
    statsErrors5xx: Number(t.errors5xx),
    expected5xx,
    statsCostUsd: round(t.costUsd, 6),
    expectedCostUsd: round(expectedCostUsd, 6),
    persistedSeconds: round(persistedSeconds, 2),
    persistedPerSec: Math.round(stored.count / persistedSeconds),
    match,
  };
}

// ---------- main ----------
async function main(): Promise<object> {
  const started = Date.now();
  const cpuModel = /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? cpus()[0]?.model ?? '?';
  const pgHost = new URL(PG_URL);
  console.log('# keyward fleet benchmark');
  console.log(`machine: ${cpus().length} CPUs, ${cpuModel}; node ${process.version}; date ${new Date().toISOString()}`);
  console.log(`PostgreSQL ${pgHost.host}, database ${DB_NAME}; everything (bench client, 2 keyward processes, PostgreSQL) shares the CPUs`);
  const build = buildInfo();
  console.log(
    `keyward: dist/ built ${build.distBuiltAt}, HEAD ${build.head}, ${build.dirtySrc.length ? `src/ differs from HEAD in ${build.dirtySrc.join(', ')}` : 'src/ clean'}`,
  );

  // A fresh database.
  const root = new PgClient({ connectionString: PG_URL });
  await root.connect();
  const pgVersion = String((await root.query<{ server_version: string }>('show server_version')).rows[0]!.server_version);
  await root.query(`drop database if exists ${DB_NAME} with (force)`);
  await root.query(`create database ${DB_NAME}`);
  dbCreated = true;
  await root.end();
  const dbUrl = new URL(PG_URL);
  dbUrl.pathname = `/${DB_NAME}`;

  // Two processes on it. B caches keys for 600 s: only the change notification can make it deny.
  tmp = mkdtempSync(join(tmpdir(), 'keyward-bench-fleet-'));
  const env: Record<string, string> = {
    KEYWARD_DATABASE_URL: dbUrl.toString(),
    KEYWARD_HASH_SECRET: HASH_SECRET,
    KEYWARD_ADMIN_TOKEN: ADMIN_TOKEN,
    KEYWARD_LOG_LEVEL: 'info',
    KEYWARD_CACHE_TTL_SECONDS: '600',
    KEYWARD_USAGE_FLUSH_SECONDS: String(FLUSH_SECONDS),
    ...(USAGE_BUFFER_MAX !== undefined && { KEYWARD_USAGE_BUFFER_MAX: USAGE_BUFFER_MAX }),
    HOME: tmp,
  };
  const a = await startServerProcess(env, tmp);
  servers.push(a);
  const b = await startServerProcess(env, tmp);
  servers.push(b);
  console.log(
    `PostgreSQL ${pgVersion}; keyward A: authz :${a.authzPort} admin :${a.adminPort}; B: authz :${b.authzPort} admin :${b.adminPort}`,
  );
  const othersBefore = otherBusyProcesses().length;
  const loadBefore = loadavg()[0]!;
  console.log(loadLine('before'));
  console.log(
    `settings: KEYWARD_CACHE_TTL_SECONDS=600, KEYWARD_USAGE_FLUSH_SECONDS=${FLUSH_SECONDS}, KEYWARD_USAGE_BUFFER_MAX=${USAGE_BUFFER_MAX ?? '(default 200000)'}, log level info`,
  );

  const pg = new PgClient({ connectionString: dbUrl.toString() });
  // Dropping the database on a signal ends this session too: not an error worth a crash.
  pg.on('error', () => undefined);
  await pg.connect();
  const admin = new KeyAdminClient(`127.0.0.1:${a.adminPort}`, credentials.createInsecure());
  const checkB = new Client(`127.0.0.1:${b.authzPort}`, credentials.createInsecure());
  try {
    // The listeners must be up before anything is measured.
    const listeners = Number(
      (
        await pg.query<{ n: number }>(
          `select count(*)::int as n from pg_stat_activity where datname = current_database() and application_name = 'keyward-listener'`,
        )
      ).rows[0]!.n,
    );
    console.log(`change listeners connected: ${listeners} (expected 2)`);
    if (listeners !== 2) throw new Error('the keyward-listener connections are not both up');

    // ---- 1. revocation propagation ----
    console.log('');
    console.log(`## 1. revocation propagation: ${REVOKES} runs (create on A, barrier, cache on B, probe, RevokeKey on A, poll Check on B)`);
    const org = await unary(admin.createOrganization.bind(admin), {
      name: 'bench-revoke',
      maxKeys: REVOKES + 10,
      rateLimitPerMinute: 0,
      monthlyQuota: 0,
    });
    // One warm-up run (connections, JIT) that is not counted.
    const barrier = await Barrier.create(admin, checkB, org.id);
    const warm = await revocationRun(admin, checkB, pg, barrier, org.id, -1);
    if (!warm.ok) throw new Error(`warm-up run failed: ${warm.error}`);
    const runs: RevokeRun[] = [];
    const tr = Date.now();
    for (let i = 0; i < REVOKES; i++) {
      let r: RevokeRun;
      try {
        r = await revocationRun(admin, checkB, pg, barrier, org.id, i);
      } catch (e) {
        r = { ok: false, error: e instanceof Error ? e.message : String(e) };
      }
      runs.push(r);
      if (!r.ok) console.log(`  run ${i + 1}: FAILED: ${redact(r.error ?? '')}`);
      if ((i + 1) % 25 === 0 || i + 1 === REVOKES) {
        const okSoFar = runs.filter((x) => x.ok);
        const med = summarize(okSoFar.map((x) => x.propagationMs!)).median;
        console.log(`  ${i + 1}/${REVOKES} runs, ${runs.length - okSoFar.length} failed; median propagation so far ${fmtMs(med)}`);
      }
    }
    const ok = runs.filter((r) => r.ok);
    const failures = runs.filter((r) => !r.ok);
    const prop = summarize(ok.map((r) => r.propagationMs!));
    const rpc = summarize(ok.map((r) => r.revokeRpcMs!));
    const afterAck = summarize(ok.map((r) => r.propagationMs! - r.revokeRpcMs!));
    const polls = summarize(ok.map((r) => r.polls!));
    const miss = summarize(ok.map((r) => r.missMs!));
    const hit = summarize(ok.map((r) => r.hitMs!));
    const staleAllows = ok.reduce((n, r) => n + r.allowsAfterAck!, 0);
    const runsWithStale = ok.filter((r) => r.allowsAfterAck! > 0).length;
    const row = (name: string, s: Summary): string[] => [name, fmtMs(s.median), fmtMs(s.p90), fmtMs(s.max), fmtMs(s.min), fmtMs(s.mean)];
    console.log(
      `  done in ${((Date.now() - tr) / 1000).toFixed(1)}s: ${ok.length} ok, ${failures.length} failed; cache probe passed in every ok run`,
    );
    console.log('');
    console.log(`### Revocation propagation, A → B (${ok.length}/${REVOKES} runs)`);
    console.log(
      table(
        ['measure', 'median', 'p90', 'max', 'min', 'mean'],
        [
          row('propagation: RevokeKey sent → first deny on B', prop),
          row('RevokeKey RPC round trip on A', rpc),
          row('first deny on B − RevokeKey returned', afterAck),
          row("B's Check, cache miss (first)", miss),
          row("B's Check, cache hit (second)", hit),
        ],
      ),
    );
    console.log(
      `polls per run (Checks to B until the deny): median ${polls.median}, max ${polls.max}. ` +
        `Checks sent to B after RevokeKey returned that were still allowed: ${staleAllows} in ${runsWithStale} run(s).`,
    );

    // ---- 2. access-log ingestion ----
    console.log('');
    console.log(
      `## 2. access-log ingestion into A: ${fmtInt(ALS_ENTRIES)} entries per run, ${ALS_BATCH} per message, streams ${ALS_STREAMS.join(', ')}`,
    );
    const alsOrg = await unary(admin.createOrganization.bind(admin), {
      name: 'bench-als',
      maxKeys: ALS_STREAMS.length + 10,
      rateLimitPerMinute: 0,
      monthlyQuota: 0,
    });
    const sample = buildPool(`key_${'0'.repeat(25)}`, `org_${'0'.repeat(25)}`, ALS_BATCH);
    console.log(
      `  one message: ${sample.first.bytes.length} B with the identifier, ${sample.rest[0]!.bytes.length} B without (${(sample.rest[0]!.bytes.length / ALS_BATCH).toFixed(0)} B per entry); ${POOL} distinct messages cycled`,
    );
    // An uncounted warm-up (connections, JIT of keyward's decode path), verified like the others.
    const warmAls = await alsRun(admin, a, pg, alsOrg.id, 1, Math.min(ALS_ENTRIES, 20_000), 'warm-up, 1 stream (not counted)');
    if (!warmAls.match) console.log('  the warm-up already lost entries');
    const als: AlsRun[] = [];
    for (const s of ALS_STREAMS) als.push(await alsRun(admin, a, pg, alsOrg.id, s, ALS_ENTRIES, `${s} stream(s)`));
    const best = als.reduce((x, y) => (y.entriesPerSec > x.entriesPerSec ? y : x));
    console.log('');
    console.log(`### Access-log ingestion (StreamAccessLogs on A's authz port, ${ALS_BATCH} entries per message)`);
    console.log(
      table(
        [
          'streams',
          'entries',
          'seconds',
          'entries/s',
          'MB/s',
          'keyward CPU s',
          'stored',
          'all stored after',
          'stored/s',
          'CPU s to store: keyward / PG',
          'verdict',
        ],
        als.map((r) => [
          String(r.streams),
          fmtInt(r.entries),
          r.seconds.toFixed(2),
          fmtInt(r.entriesPerSec),
          r.mbPerSec.toFixed(2),
          r.keywardCpuSeconds.toFixed(2),
          fmtInt(r.storedEvents),
          `${r.persistedSeconds.toFixed(1)} s`,
          fmtInt(r.persistedPerSec),
          `${r.keywardCpuSecondsTotal.toFixed(1)} / ${r.postgresCpuSecondsTotal.toFixed(1)}`,
          r.match ? 'ok' : 'MISMATCH',
        ]),
      ),
    );
    console.log(
      `best: ${best.streams} stream(s), ${fmtInt(best.entriesPerSec)} entries/s (first write → the server's answer; the answer comes after keyward's handler has read every message).`,
    );
    console.log(
      '"stored" = usage_events rows of the run\'s key; "all stored after" = from the first write until that count reached the entries sent (or last moved);',
    );
    console.log(
      '"keyward CPU s" = process A while streaming; "CPU s to store" = A and its PostgreSQL backends from the first write until stored.',
    );
    const mismatches = als.filter((r) => !r.match);
    if (mismatches.length)
      console.log(
        `MISMATCH in ${mismatches.length} run(s): ${mismatches.map((r) => `${r.streams} stream(s): ${fmtInt(r.entries - r.storedEvents)} lost`).join('; ')}`,
      );

    const logLines = [a, b].flatMap((p) =>
      p
        .stdout()
        .split('\n')
        .filter((l) => l.startsWith('{')),
    );
    const bad = logLines.filter((l) => /"level":(40|50|60)/.test(l));
    console.log('');
    console.log(
      `keyward wrote ${logLines.length} log lines, ${bad.length} at warn or above${bad.length ? `: ${redact(bad.slice(0, 3).join(' '))}` : ''}`,
    );
    const othersAfter = otherBusyProcesses().length;
    console.log(loadLine('after'));
    console.log(`total ${((Date.now() - started) / 1000).toFixed(0)}s`);

    const result = {
      date: new Date().toISOString(),
      cpus: cpus().length,
      node: process.version,
      postgres: pgVersion,
      build,
      loadAverage1m: { before: round(loadBefore, 2), after: round(loadavg()[0]!, 2) },
      otherBenchOrKeywardProcesses: { before: othersBefore, after: othersAfter },
      revocation: {
        runs: REVOKES,
        ok: ok.length,
        failed: failures.length,
        propagationMs: {
          median: round(prop.median),
          p90: round(prop.p90),
          max: round(prop.max),
          min: round(prop.min),
          mean: round(prop.mean),
        },
        revokeRpcMs: { median: round(rpc.median), p90: round(rpc.p90), max: round(rpc.max), min: round(rpc.min) },
        denyAfterRevokeReturnedMs: {
          median: round(afterAck.median),
          p90: round(afterAck.p90),
          max: round(afterAck.max),
          min: round(afterAck.min),
        },
        checkMissMs: { median: round(miss.median), p90: round(miss.p90) },
        checkHitMs: { median: round(hit.median), p90: round(hit.p90) },
        pollsMedian: polls.median,
        staleAllowsAfterRevokeReturned: staleAllows,
      },
      accessLog: {
        entriesPerRun: ALS_ENTRIES,
        batch: ALS_BATCH,
        bestEntriesPerSec: best.entriesPerSec,
        bestStreams: best.streams,
        allStored: mismatches.length === 0,
        runs: als,
      },
      totalSeconds: Math.round((Date.now() - started) / 1000),
    };

    return result;
  } finally {
    checkB.close();
    admin.close();
    await pg.end().catch(() => undefined);
  }
}

main().then(
  async (result) => {
    // SIGTERM: each process flushes and exits cleanly; then the database goes.
    const codes = await Promise.all(
      servers.map((s) => Promise.race([s.stop('SIGTERM'), new Promise((r) => setTimeout(() => r('timeout'), 15_000))])),
    );
    if (codes.some((c) => c !== 0)) console.log(`WARNING: keyward exit statuses after SIGTERM: ${codes.join(', ')}`);
    await dropDatabase();
    killChildren();
    console.log(`BENCH_RESULT ${JSON.stringify(result)}`);
    process.exit(0);
  },
  async (e: unknown) => {
    if (interrupted) return; // the signal handler cleans up and exits
    console.error(`bench failed: ${redact(e instanceof Error ? (e.stack ?? e.message) : String(e))}`);
    for (const s of servers) console.error(redact(s.stderr().slice(-2000)));
    killChildren();
    await dropDatabase();
    process.exit(1);
  },
);
