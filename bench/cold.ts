/**
 * keyward cold-path and memory benchmark, on a real PostgreSQL.
 *
 *   node --import tsx bench/cold.ts                                  # 1,000,000 keys, 60 s of load
 *   BENCH_COLD_SECONDS=0 node --import tsx bench/cold.ts             # until every key was checked once
 *   BENCH_COLD_KEYS=20000 node --import tsx bench/cold.ts            # a quick run
 *
 * Needs the built dist/ (`npm run build`) and PostgreSQL at BENCH_PG_URL.
 *
 * What it does:
 *  1. Creates a fresh database (keyward_bench_cold; dropped first if it exists, and at
 *     the end unless BENCH_KEEP_DB=1) and starts a real `keyward serve` on it, which
 *     runs the migrations. Creates organizations through KeyAdmin (rate limit 1000/min,
 *     no monthly quota; max_keys is at most 100,000, hence several organizations).
 *  2. Inserts BENCH_COLD_KEYS keys with SQL (multi-row INSERT … SELECT FROM unnest, in
 *     batches), each made the way KeyAdmin makes one: generateKey('live'), the project's
 *     HMAC hasher with the same secret, newId('key'), displayParts. Then VACUUM ANALYZE,
 *     and a grpc-js Check of a sample of keys, which must all be allowed.
 *  3. Restarts keyward (an empty cache) and drives Checks in which every request carries
 *     a key never checked before, so each one is a cache miss and a database lookup,
 *     from a Node load generator (a child process running this file, gRPC framed by
 *     hand over node:http2 with pre-built request bytes, a fixed number in flight).
 *     h2load is not used because it repeats one request body.
 *     Stops when every key was checked once or after BENCH_COLD_SECONDS.
 *  4. Database work per Check, read from PostgreSQL's statistics (not assumed): deltas
 *     of pg_stat_user_indexes / pg_stat_user_tables / pg_stat_database across the run,
 *     polled until they settle (backends publish their counters with a delay, and
 *     keyward writes last_used_at and usage in the background, in batches).
 *  5. Memory: keyward's VmRSS (/proc/<pid>/status) holding every checked key in its
 *     cache, with the limiter's tracked keys (KeyAdmin GetRateLimiterStats); a re-check
 *     of a sample of checked keys must reach the database 0 times (still cached). The
 *     limiter forgets keys idle for 2 windows, so unless the load checks every key within
 *     about 2 minutes it holds fewer windows than keys: the bench then also measures the
 *     limiter's bytes per window (src/, in a separate process) and prints a projection,
 *     labelled as such, for all keys. Also keyward's CPU per Check (and PostgreSQL's).
 *  6. Prints progress, a markdown table, and one line `BENCH_RESULT {json}`.
 *
 * Knobs (environment):
 *   BENCH_COLD_KEYS (1000000)        keys in the database, each checked at most once
 *   BENCH_COLD_SECONDS (60)          load time limit; 0 = until every key was checked
 *   BENCH_COLD_INFLIGHT (64)         requests in flight, over all generators
 *   BENCH_COLD_GENERATORS (1)        load-generator processes (one HTTP/2 connection each)
 *   BENCH_COLD_PASS2_GENERATORS (2)  generators of the second pass (when every key was checked:
 *                                    every key again, now cached, so that all windows are live
 *                                    at once for the RSS figure); 0 skips it
 *   BENCH_KEEP_DB (unset)            1: keep the database at the end
 *   BENCH_PG_URL (postgres://postgres@127.0.0.1:5432/postgres)  where to create it
 *   BENCH_CPU_PROF_DIR (unset)       run the measured keyward under `node --cpu-prof`, profile written there
 *                                    (summarize it with bench/cpuprofile-top.ts)
 *   BENCH_COLD_NODE_ARGS (unset)     more node options for keyward, space-separated
 *   KEYWARD_* (except the database, secrets and listen addresses) are passed on to keyward;
 *   the bench sets KEYWARD_CACHE_MAX_ENTRIES and KEYWARD_RATE_LIMIT_MAX_KEYS to
 *   max(1,100,000, 1.1 x keys), KEYWARD_CACHE_TTL_SECONDS to 86400 and
 *   KEYWARD_CACHE_MISS_QUERIES_PER_SECOND to 0 (no bound: every miss is looked up, which
 *   is what is measured; with the default bound of 2,000/s the excess is a 503) unless given.
 */
import { fork, spawnSync, type ChildProcess } from 'node:child_process';
import * as http2 from 'node:http2';
import { randomBytes, randomInt } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { cpus } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Client, credentials } from '@grpc/grpc-js';
import { Client as PgClient } from 'pg';
import { LIMITS } from '../src/admin/validate';
import { CheckResponse } from '../src/gen/envoy/service/auth/v3/external_auth';
import { KeyAdminClient } from '../src/gen/keyward/admin/v1/key_admin';
import { displayParts, generateKey } from '../src/keys/format';
import { createHasher } from '../src/keys/hash';
import { MemoryRateLimiter } from '../src/limits/sliding-window';
import { newId } from '../src/util/ids';
import { startServerProcess, type ServerProcess } from '../test/support/server-process';
import { checkRequestBytes } from './support/check-request';
import { CHECK_PATH, adminUnary, memoryOf, rawCheck, withDatabase } from './support/keyward';

const KEYS = Number(process.env.BENCH_COLD_KEYS ?? 1_000_000);
const SECONDS = Number(process.env.BENCH_COLD_SECONDS ?? 60);
const INFLIGHT = Number(process.env.BENCH_COLD_INFLIGHT ?? 64);
const GENERATORS = Number(process.env.BENCH_COLD_GENERATORS ?? 1);
/** Generators of the second, cached pass (0 skips it); it must cover every key within 2 minutes. */
const PASS2_GENERATORS = Number(process.env.BENCH_COLD_PASS2_GENERATORS ?? 2);
const KEEP_DB = process.env.BENCH_KEEP_DB === '1';
/** The in-process memory run (bench/memory-driver.cjs); BENCH_COLD_INPROC=0 skips it. */
const INPROC = process.env.BENCH_COLD_INPROC !== '0';
const INPROC_INFLIGHT = 64;
const INPROC_CHUNK = 20_000;
/** How long the in-process run's RSS is followed at rest after the load. */
const INPROC_REST_MS = 30_000;
const CPU_PROF = process.env.BENCH_CPU_PROF_DIR ? resolve(process.env.BENCH_CPU_PROF_DIR) : undefined;
const NODE_ARGS = (process.env.BENCH_COLD_NODE_ARGS ?? '').split(' ').filter((a) => a !== '');
const PG_ADMIN_URL = process.env.BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const DB_NAME = 'keyward_bench_cold';
const ADMIN_TOKEN = 'bench-admin-token-0123456789abcdef';
const RATE_LIMIT = 1000;
const INSERT_BATCH = 10_000;
const SAMPLE = 20;
const RECHECK = 1000;
const ROOT = join(__dirname, '..');

// ---------- shared: request bytes ----------

/**
 * Every key has the same length, so every request has the same bytes but for the key:
 * encode once with a placeholder key and copy each key over it (encoding 1,000,000
 * requests one by one would take longer than the load). The parent checks on a sample
 * that the result equals checkRequestBytes(key).
 */
function requestTemplate(keyLen: number): { bytes: Buffer; offset: number } {
  const placeholder = generateKey('live');
  if (placeholder.length !== keyLen) throw new Error(`keys are ${keyLen} characters, a new one is ${placeholder.length}`);
  const bytes = checkRequestBytes(placeholder);
  const offset = bytes.indexOf(placeholder, 0, 'latin1');
  if (offset < 0 || bytes.indexOf(placeholder, offset + 1, 'latin1') >= 0) throw new Error('the key must occur once in the request bytes');
  return { bytes, offset };
}

/**
 * All requests in one buffer, each a gRPC message frame (1 byte "not compressed", 4
 * bytes length, the CheckRequest) of `len` bytes, for keys packed `keyLen` bytes each in `keys`.
 */
function buildRequests(keys: Uint8Array, keyLen: number): { blob: Buffer; len: number; count: number } {
  const { bytes, offset } = requestTemplate(keyLen);
  const src = Buffer.from(keys.buffer, keys.byteOffset, keys.byteLength);
  const count = src.length / keyLen;
  const frame = Buffer.alloc(5 + bytes.length);
  frame.writeUInt32BE(bytes.length, 1);
  bytes.copy(frame, 5);
  const len = frame.length;
  const blob = Buffer.allocUnsafe(count * len);
  for (let i = 0; i < count; i++) {
    frame.copy(blob, i * len);
    src.copy(blob, i * len + 5 + offset, i * keyLen, (i + 1) * keyLen);
  }
  return { blob, len, count };
}

/** Whether a CheckResponse (protobuf bytes) has ok_response (field 3), from its top-level tags only. */
function hasOkResponse(b: Buffer, from: number): boolean {
  let i = from;
  const varint = (): number => {
    let v = 0;
    for (let shift = 0; i < b.length; shift += 7) {
      const c = b[i++]!;
      v += (c & 0x7f) * 2 ** shift;
      if (c < 0x80) break;
    }
    return v;
  };
  while (i < b.length) {
    const tag = varint();
    const wire = tag & 7;
    if (tag >>> 3 === 3) return true;
    if (wire === 2) {
      const n = varint();
      i += n;
    } else if (wire === 0) varint();
    else if (wire === 1) i += 8;
    else if (wire === 5) i += 4;
    else return false;
  }
  return false;
}

function describe(r: CheckResponse): string {
  if (r.okResponse) return `allow (status ${r.status?.code ?? 0})`;
  if (r.deniedResponse)
    return `deny HTTP ${r.deniedResponse.status?.code} (status ${r.status?.code}${r.status?.message ? `: ${r.status.message}` : ''})`;
  return `status ${r.status?.code}`;
}

// ---------- the load generator (a child process running this file) ----------

/** Parent → generator. */
type ToGen = { type: 'keys'; keys: Uint8Array; keyLen: number } | { type: 'start'; port: number; inflight: number; seconds: number };
/** Generator → parent. */
type FromGen = { type: 'ready'; count: number } | { type: 'progress'; done: number } | { type: 'result'; result: GenResult };

interface GenResult {
  /** Requests answered (allowed + denied + errors); keys [0, done) of the slice were sent. */
  done: number;
  allowed: number;
  denied: Record<string, number>;
  errors: Record<string, number>;
  startMs: number;
  endMs: number;
  /** ms per request, in completion order. */
  latencies: Float64Array;
  /** The generator's own CPU time during the load, ms. */
  cpuMs: number;
}

function loadGenerator(): void {
  let reqs: { blob: Buffer; len: number; count: number } | undefined;
  const send = (m: FromGen) => process.send!(m);
  process.on('disconnect', () => process.exit(0));
  process.on('message', (m: ToGen) => {
    if (m.type === 'keys') {
      reqs = buildRequests(m.keys, m.keyLen);
      send({ type: 'ready', count: reqs.count });
      return;
    }
    const { blob, len, count } = reqs!;
    // gRPC by hand over node:http2 (one connection): a fraction of a grpc-js client's CPU
    // per call, so that the generators can outpace keyward.
    const session = http2.connect(`http://127.0.0.1:${m.port}`);
    session.on('error', () => undefined);
    const requestHeaders = { ':method': 'POST', ':path': CHECK_PATH, 'content-type': 'application/grpc', te: 'trailers' };
    const latencies = new Float64Array(count);
    const denied: Record<string, number> = {};
    const errors: Record<string, number> = {};
    let next = 0;
    let done = 0;
    let active = 0;
    let allowed = 0;
    const cpu0 = process.cpuUsage();
    const startMs = Date.now();
    const stopAt = m.seconds > 0 ? performance.now() + m.seconds * 1000 : Infinity;
    const progress = setInterval(() => send({ type: 'progress', done }), 1000);
    const finish = () => {
      clearInterval(progress);
      const cpu = process.cpuUsage(cpu0);
      session.close();
      const result: GenResult = {
        done,
        allowed,
        denied,
        errors,
        startMs,
        endMs: Date.now(),
        latencies: latencies.subarray(0, done),
        cpuMs: (cpu.user + cpu.system) / 1000,
      };
      process.send!({ type: 'result', result } satisfies FromGen, () => process.disconnect());
    };
    // Closed loop: each answer sends the next key's request, so `inflight` stay in flight.
    const fire = (): void => {
      const i = next++;
      const t = performance.now();
      active++;
      const stream = session.request(requestHeaders);
      const chunks: Buffer[] = [];
      let grpcStatus: string | undefined;
      stream.on('response', (h: http2.IncomingHttpHeaders) => (grpcStatus = (h['grpc-status'] as string | undefined) ?? grpcStatus));
      stream.on('trailers', (h: http2.IncomingHttpHeaders) => (grpcStatus = h['grpc-status'] as string | undefined));
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('error', () => undefined);
      stream.on('close', () => {
        const now = performance.now();
        latencies[done++] = now - t;
        active--;
        const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
        if (grpcStatus !== '0' || body.length < 5) {
          const what = `gRPC ${grpcStatus ?? `stream closed (${stream.rstCode})`}`;
          errors[what] = (errors[what] ?? 0) + 1;
        } else if (hasOkResponse(body, 5)) allowed++;
        else {
          const what = describe(CheckResponse.decode(body.subarray(5)));
          denied[what] = (denied[what] ?? 0) + 1;
        }
        if (next < count && now < stopAt) fire();
        else if (active === 0) finish();
      });
      stream.end(blob.subarray(i * len, (i + 1) * len));
    };
    for (let k = 0; k < Math.min(m.inflight, count); k++) fire();
    if (count === 0) finish();
  });
}

/**
 * Bytes per window of the in-memory limiter (JS heap plus array buffers), for key ids
 * like keyward's, which the key cache holds anyway (run with --expose-gc).
 */
function limiterHeap(): void {
  const n = 1_000_000;
  // Flat strings, as the database driver returns them (newId's own result is a rope,
  // which the Map would flatten, freeing more than it takes).
  const ids = Array.from({ length: n }, () => Buffer.from(newId('key', Date.now()), 'latin1').toString('latin1'));
  const gc = (globalThis as { gc?: () => void }).gc!;
  gc();
  const used = () => {
    const m = process.memoryUsage();
    return m.heapUsed + m.arrayBuffers;
  };
  const before = used();
  const limiter = new MemoryRateLimiter({ maxKeys: n + 1 });
  const now = Date.now();
  for (const id of ids) limiter.consume(id, RATE_LIMIT, now);
  gc();
  const after = used();
  if (limiter.stats().trackedKeys !== n || ids.length !== n) throw new Error('limiter did not keep every window');
  process.stdout.write(JSON.stringify({ bytesPerWindow: (after - before) / n }) + '\n');
}

// ---------- the driver ----------

const children = new Set<ChildProcess>();
let keyward: ServerProcess | undefined;
let dbCreated = false;

/** Synchronous, for the exit handler: drops the benchmark database from a short node child. */
function dropDatabaseSync(): void {
  if (!dbCreated || KEEP_DB) return;
  const script = `const {Client}=require('pg');const c=new Client(process.env.URL);c.connect().then(()=>c.query('drop database if exists ${DB_NAME} with (force)')).then(()=>c.end(),(e)=>{console.error(e.message);process.exit(1)})`;
  spawnSync(process.execPath, ['-e', script], { cwd: ROOT, env: { ...process.env, URL: PG_ADMIN_URL }, stdio: 'inherit', timeout: 30_000 });
  dbCreated = false;
}

function cleanup(): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  if (keyward && keyward.proc.exitCode === null) keyward.proc.kill('SIGKILL');
  dropDatabaseSync();
}

function track(c: ChildProcess): ChildProcess {
  children.add(c);
  c.on('exit', () => children.delete(c));
  return c;
}

const dbUrl = (name: string): string => withDatabase(PG_ADMIN_URL, name);

const unary = adminUnary(ADMIN_TOKEN);

async function pool<T>(items: T[], width: number, fn: (t: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
const mb = (kb: number) => kb / 1024;

const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout?.trim()) || 100;
/** utime and stime of a process, ms (fields 14 and 15 of /proc/<pid>/stat). */
function cpuOf(pid: number): { user: number; sys: number } {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return { user: (Number(f[11]) / CLK_TCK) * 1000, sys: (Number(f[12]) / CLK_TCK) * 1000 };
  } catch {
    return { user: 0, sys: 0 }; // exited meanwhile
  }
}
function cpuMsOf(pid: number): number {
  const c = cpuOf(pid);
  return c.user + c.sys;
}
/** CPU ms of every process named postgres on this machine, by pid. */
function postgresCpuMs(): Map<number, number> {
  const m = new Map<number, number>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (readFileSync(`/proc/${d}/comm`, 'utf8').trim() === 'postgres') m.set(Number(d), cpuMsOf(Number(d)));
    } catch {
      // gone
    }
  }
  return m;
}
/**
 * CPU ms used between two readings, by the processes in `only` (all if not given).
 * A backend that exited in between is lost: keyward's pooled connections stay open.
 */
function postgresCpuDelta(before: Map<number, number>, after: Map<number, number>, only?: Set<number>): number {
  let sum = 0;
  for (const [pid, ms] of after) if (!only || only.has(pid)) sum += ms - (before.get(pid) ?? 0);
  return sum;
}

/** The backends connected to the benchmark database, but for the monitor's own. */
async function keywardBackends(pg: PgClient): Promise<number[]> {
  const r = await pg.query<{ pid: number }>(
    'select pid from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()',
  );
  return r.rows.map((x) => x.pid);
}

function distBuilt(): string {
  try {
    return statSync(join(ROOT, 'dist', 'cli', 'main.js')).mtime.toISOString();
  } catch {
    return '?';
  }
}

/** Which keyward is measured: dist/ is what runs, and it may be rebuilt by others while the bench runs. */
function buildInfo(): string {
  const git = (args: string[]) => spawnSync('git', args, { cwd: ROOT, encoding: 'utf8' }).stdout?.trim() ?? '';
  const head = git(['rev-parse', '--short', 'HEAD']) || '?';
  const dirty = git(['status', '--porcelain', '--', 'src']) !== '';
  return `git ${head}${dirty ? ' (src/ has uncommitted changes)' : ''}, dist/ built ${distBuilt()}`;
}

// ---------- PostgreSQL statistics ----------

interface PgStats {
  /** pg_stat_user_tables, by table. */
  tables: Record<string, { seq: number; idx: number; ins: number; upd: number }>;
  /** pg_stat_user_indexes.idx_scan, by index. */
  indexes: Record<string, number>;
  /** pg_stat_database.xact_commit, less this monitor's own transactions. */
  commits: number;
  /** Other sessions on this database that are not idle (a statement or a transaction open). */
  busy: number;
}

/**
 * Reads the cumulative statistics over one connection to the benchmark database, one
 * autocommit statement per reading (a statement's transaction sees a fresh snapshot
 * of the statistics, so no pg_stat_clear_snapshot() is needed). Each reading is itself
 * one committed transaction in this database: they are counted and subtracted.
 */
class StatsMonitor {
  private queries = 0;
  constructor(private readonly pg: PgClient) {}

  async read(): Promise<PgStats> {
    const before = this.queries++;
    const r = await this.pg.query<{ tables: PgStats['tables'] | null; indexes: PgStats['indexes'] | null; commits: string; busy: number }>(`
      select
        (select json_object_agg(relname, json_build_object('seq', seq_scan, 'idx', coalesce(idx_scan, 0), 'ins', n_tup_ins, 'upd', n_tup_upd))
           from pg_stat_user_tables) as tables,
        (select json_object_agg(indexrelname, idx_scan) from pg_stat_user_indexes) as indexes,
        (select xact_commit from pg_stat_database where datname = current_database()) as commits,
        (select count(*)::int from pg_stat_activity
           where datname = current_database() and pid <> pg_backend_pid() and state <> 'idle') as busy`);
    const row = r.rows[0]!;
    return { tables: row.tables ?? {}, indexes: row.indexes ?? {}, commits: Number(row.commits) - before, busy: row.busy };
  }

  /**
   * Polls until the counters stop moving. PostgreSQL backends publish their counters
   * at most once a second while busy and about 10 s after going idle (PG 15's
   * pg_stat_force_next_flush() only flushes the calling backend), and keyward flushes
   * last_used_at every 10 s and usage every 5 s, each in one transaction whose counters
   * appear only at its commit: so the readings must have been unchanged for 12 s with
   * no other session on the database busy, and at least `minWaitMs` must have passed.
   */
  async settle(minWaitMs = 15_000, maxWaitMs = 300_000): Promise<PgStats> {
    const t0 = Date.now();
    let last = await this.read();
    let since = Date.now();
    for (;;) {
      await sleep(2000);
      const s = await this.read();
      if (JSON.stringify(s) !== JSON.stringify(last)) {
        last = s;
        since = Date.now();
      } else if (s.busy === 0 && Date.now() - since >= 12_000 && Date.now() - t0 >= minWaitMs) {
        return s;
      }
      if (Date.now() - t0 > maxWaitMs) {
        console.log(`  WARNING: PostgreSQL statistics still moving after ${maxWaitMs / 1000}s; using the last reading`);
        return s;
      }
    }
  }
}

function delta(a: PgStats, b: PgStats) {
  const t = (name: string) => {
    const x = a.tables[name] ?? { seq: 0, idx: 0, ins: 0, upd: 0 };
    const y = b.tables[name] ?? { seq: 0, idx: 0, ins: 0, upd: 0 };
    return { seq: y.seq - x.seq, idx: y.idx - x.idx, ins: y.ins - x.ins, upd: y.upd - x.upd };
  };
  const i = (name: string) => (b.indexes[name] ?? 0) - (a.indexes[name] ?? 0);
  return {
    keyHashScans: i('api_keys_key_hash_unique'),
    keyPkeyScans: i('api_keys_pkey'),
    apiKeys: t('api_keys'),
    organizations: t('organizations'),
    usageEvents: t('usage_events'),
    usageDaily: t('usage_daily'),
    usageMonthly: t('usage_monthly'),
    commits: b.commits - a.commits,
  };
}

// ---------- main ----------

/**
 * KEYWARD_* variables set for the bench are passed on to keyward (for A/B runs, e.g.
 * KEYWARD_LAST_USED_FLUSH_SECONDS), except the database, the secrets and the listen
 * addresses, which the bench sets.
 */
const PASSED_ENV = Object.fromEntries(
  Object.entries(process.env).filter(
    (e): e is [string, string] =>
      e[0].startsWith('KEYWARD_') &&
      e[1] !== undefined &&
      !/^KEYWARD_(DATABASE_URL|HASH_SECRET|ADMIN_TOKEN|ADMIN_LISTEN|AUTHZ_LISTEN)(_FILE)?$/.test(e[0]),
  ),
);

const CAP = String(Math.max(1_100_000, Math.ceil(KEYS * 1.1)));
/** keyward's settings, but for the database and the secrets. */
const KEYWARD_SETTINGS: Record<string, string> = {
  KEYWARD_LOG_LEVEL: 'info',
  KEYWARD_CACHE_MAX_ENTRIES: CAP,
  KEYWARD_RATE_LIMIT_MAX_KEYS: CAP,
  // Positive entries stay fresh for the whole bench, so the re-check after the load can
  // show from the database statistics that they are still cached. (An expired entry
  // stays in memory until evicted anyway: the memory figure does not depend on it.)
  KEYWARD_CACHE_TTL_SECONDS: '86400',
  // The store path's own capacity is measured: no bound on lookups per second.
  KEYWARD_CACHE_MISS_QUERIES_PER_SECOND: '0',
  ...PASSED_ENV,
};

async function startKeyward(hashSecretHex: string, cpuProf?: string): Promise<ServerProcess> {
  return startServerProcess(
    {
      ...KEYWARD_SETTINGS,
      KEYWARD_DATABASE_URL: dbUrl(DB_NAME),
      KEYWARD_HASH_SECRET: hashSecretHex,
      KEYWARD_ADMIN_TOKEN: ADMIN_TOKEN,
    },
    ROOT,
    [...(cpuProf ? ['--cpu-prof', `--cpu-prof-dir=${cpuProf}`] : []), ...NODE_ARGS],
  );
}

/** Forks a load generator and hands it its keys; resolves once its requests are built. */
async function startGenerator(
  keys: Buffer,
  keyLen: number,
): Promise<{ proc: ChildProcess; count: number; onMessage: (f: (m: FromGen) => void) => void }> {
  const proc = track(
    fork(__filename, [], {
      execArgv: ['--import', 'tsx'],
      env: { ...process.env, BENCH_COLD_ROLE: 'loadgen' },
      serialization: 'advanced',
      cwd: ROOT,
    }),
  );
  const listeners: ((m: FromGen) => void)[] = [];
  proc.on('message', (m: FromGen) => {
    for (const l of listeners) l(m);
  });
  const ready = new Promise<number>((resolve, reject) => {
    listeners.push((m) => m.type === 'ready' && resolve(m.count));
    proc.on('exit', (code) => reject(new Error(`load generator exited (${code})`)));
  });
  proc.send({ type: 'keys', keys, keyLen } satisfies ToGen);
  const count = await ready;
  return { proc, count, onMessage: (f) => listeners.push(f) };
}

interface InProcessResult {
  pass1: { seconds: number; allowed: number; other: string };
  pass2: { seconds: number; allowed: number; other: string };
  /** RSS once the buffered writes were done (the end of the load). */
  rssLoadEndMb: number;
  /** RSS after INPROC_REST_MS at rest. */
  rssMb: number;
  heapUsedMb: number;
  heapTotalMb: number;
  externalMb: number;
  cacheSize: number;
  trackedWindows: number;
}

/**
 * Starts keyward in bench/memory-driver.cjs (the real app from dist/, an empty cache)
 * and checks every key twice inside it: first from the store, then cached, the second
 * pass fast enough (all keys within seconds) that every rate-limit window is live.
 * Then reads its RSS.
 */
async function inProcessMemory(hashSecretHex: string, keys: Buffer, keyLen: number): Promise<InProcessResult> {
  const driver = track(
    fork(join(__dirname, 'memory-driver.cjs'), [], {
      cwd: ROOT,
      execArgv: [],
      serialization: 'advanced',
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
      env: {
        PATH: process.env.PATH ?? '',
        ...(process.env.BENCH_HEAP_SNAPSHOT && { BENCH_HEAP_SNAPSHOT: process.env.BENCH_HEAP_SNAPSHOT }),
        KEYWARD_ADMIN_LISTEN: '127.0.0.1:0',
        KEYWARD_AUTHZ_LISTEN: '127.0.0.1:0',
        KEYWARD_HTTP_LISTEN: '127.0.0.1:0',
        ...KEYWARD_SETTINGS,
        KEYWARD_DATABASE_URL: dbUrl(DB_NAME),
        KEYWARD_HASH_SECRET: hashSecretHex,
        KEYWARD_ADMIN_TOKEN: ADMIN_TOKEN,
      },
    }),
  );
  type FromDriver =
    | { type: 'ready'; pid: number }
    | { type: 'chunk-done'; allowed: number; denied: Record<string, number>; errors: number }
    | {
        type: 'measured';
        series: { atMs: number; rssKb: number; heapUsed: number; heapTotal: number }[];
        rssKb: number;
        heapUsed: number;
        heapTotal: number;
        external: number;
        cacheSize: number;
        trackedWindows: number;
      };
  let waiter: ((m: FromDriver) => void) | undefined;
  driver.on('message', (m: FromDriver) => waiter?.(m));
  const exited = new Promise<never>((_, reject) => driver.on('exit', (code) => reject(new Error(`memory driver exited (${code})`))));
  const next = <T extends FromDriver['type']>(type: T) =>
    Promise.race([
      exited,
      new Promise<Extract<FromDriver, { type: T }>>(
        (resolve) => (waiter = (m) => m.type === type && resolve(m as Extract<FromDriver, { type: T }>)),
      ),
    ]);
  const ready = await next('ready');
  const { bytes: template, offset } = requestTemplate(keyLen);
  const count = keys.length / keyLen;
  const pass = async (name: string, inflight: number) => {
    const t = Date.now();
    let allowed = 0;
    const other: Record<string, number> = {};
    for (let from = 0; from < count; from += INPROC_CHUNK) {
      const chunk = keys.subarray(from * keyLen, Math.min(count, from + INPROC_CHUNK) * keyLen);
      driver.send({ type: 'chunk', keys: new Uint8Array(chunk), keyLen, template: new Uint8Array(template), offset, inflight });
      const r = await next('chunk-done');
      allowed += r.allowed;
      for (const [k, v] of Object.entries(r.denied)) other[k] = (other[k] ?? 0) + v;
      if (r.errors > 0) other.errors = (other.errors ?? 0) + r.errors;
      if (from % 100_000 === 0) process.stdout.write('.');
    }
    const seconds = (Date.now() - t) / 1000;
    console.log(` ${name}: ${fmt(count)} Checks in ${seconds.toFixed(1)}s (${fmt(count / seconds)}/s), ${fmt(allowed)} allowed`);
    return {
      seconds,
      allowed,
      other:
        Object.entries(other)
          .map(([k, v]) => `${k}: ${fmt(v)}`)
          .join(', ') || 'none',
    };
  };
  process.stdout.write(`in-process memory run: keyward pid ${ready.pid}, every key from the store`);
  const pass1 = await pass('first pass (cache misses)', INPROC_INFLIGHT);
  // Rate-limit windows are whole minutes, and a key idle for two of them is dropped:
  // starting the cached pass just after a minute begins leaves it nearly 2 minutes
  // before its first keys could go, so every window is live at the end.
  const wait = 60_000 - (Date.now() % 60_000) + 200;
  console.log(`in-process memory run: waiting ${(wait / 1000).toFixed(0)} s for the next minute to begin`);
  await new Promise((r) => setTimeout(r, wait));
  process.stdout.write('in-process memory run: every key again, cached');
  const pass2 = await pass('second pass (cached)', 1);
  driver.send({ type: 'measure', settleMs: INPROC_REST_MS });
  const m = await next('measured');
  driver.send({ type: 'stop' });
  await exited.catch(() => undefined);
  const r: InProcessResult = {
    pass1,
    pass2,
    rssLoadEndMb: m.series[0]!.rssKb / 1024,
    rssMb: m.rssKb / 1024,
    heapUsedMb: m.heapUsed / 1048576,
    heapTotalMb: m.heapTotal / 1048576,
    externalMb: m.external / 1048576,
    cacheSize: m.cacheSize,
    trackedWindows: m.trackedWindows,
  };
  console.log(
    `in-process memory run: ${fmt(r.cacheSize)} keys cached, ${fmt(r.trackedWindows)} windows tracked; RSS at rest, every 5 s: ${m.series.map((x) => `${(x.rssKb / 1024).toFixed(0)} MB (heap ${(x.heapUsed / 1048576).toFixed(0)}/${(x.heapTotal / 1048576).toFixed(0)})`).join(', ')}`,
  );
  return r;
}

function limiterBytesPerWindow(): number | undefined {
  const r = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', __filename], {
    cwd: ROOT,
    env: { ...process.env, BENCH_COLD_ROLE: 'limiter-heap' },
    encoding: 'utf8',
    timeout: 120_000,
  });
  try {
    return (JSON.parse(r.stdout.trim()) as { bytesPerWindow: number }).bytesPerWindow;
  } catch {
    console.log(`  (limiter heap measurement failed: ${r.stderr.slice(-300)})`);
    return undefined;
  }
}

function table(head: string[], rows: string[][]): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => `| ${r.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join(' | ')} |`;
  return [
    line(head),
    `|${w.map((x, i) => (i === 0 ? ':' : '-') + '-'.repeat(x) + (i === 0 ? '-' : ':')).join('|')}|`,
    ...rows.map(line),
  ].join('\n');
}

async function main(): Promise<void> {
  if (!(KEYS > 0) || !(INFLIGHT > 0) || !(GENERATORS > 0) || !(SECONDS >= 0)) throw new Error('bad BENCH_COLD_* value');
  const t0 = Date.now();
  const pgAdmin = new PgClient({ connectionString: PG_ADMIN_URL });
  await pgAdmin.connect();
  const pgVersion = (await pgAdmin.query<{ v: string }>(`select current_setting('server_version') as v`)).rows[0]!.v;
  const cpuModel = /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? cpus()[0]?.model ?? '?';
  console.log('# keyward cold-path benchmark (PostgreSQL)');
  console.log(
    `machine: ${cpus().length} CPUs, ${cpuModel}; node ${process.version}; PostgreSQL ${pgVersion}; date ${new Date().toISOString()}`,
  );
  console.log(`keyward under test: ${buildInfo()}`);
  console.log(
    `keys ${fmt(KEYS)}, time limit ${SECONDS > 0 ? `${SECONDS}s` : 'none'}, ${INFLIGHT} in flight over ${GENERATORS} generator(s); keyward, PostgreSQL and the generators share the CPUs`,
  );
  const settings = Object.entries(KEYWARD_SETTINGS)
    .map(([k, v]) => `${k}=${/URL|TOKEN|SECRET|PASSWORD/.test(k) ? '<set>' : v}`)
    .join(' ');
  console.log(`keyward settings: ${settings}${NODE_ARGS.length ? `; node ${NODE_ARGS.join(' ')}` : ''}`);
  console.log(
    'load: a Node load generator (gRPC framed by hand over node:http2, pre-built request bytes), since h2load repeats one request body and each Check here needs a new key',
  );
  console.log('');

  // 1. A fresh database, keyward on it (migrations), the organizations.
  await pgAdmin.query(`drop database if exists ${DB_NAME} with (force)`);
  await pgAdmin.query(`create database ${DB_NAME}`);
  dbCreated = true;
  const secret = randomBytes(32);
  const hasher = createHasher(secret);
  keyward = await startKeyward(secret.toString('hex'));
  console.log(`database ${DB_NAME} created; keyward started (migrations applied), authz 127.0.0.1:${keyward.authzPort}`);
  const admin = new KeyAdminClient(`127.0.0.1:${keyward.adminPort}`, credentials.createInsecure());
  const orgCount = Math.ceil(KEYS / LIMITS.maxKeys.max);
  const perOrg = Math.ceil(KEYS / orgCount);
  const orgIds: string[] = [];
  for (let o = 0; o < orgCount; o++) {
    const org = await unary(admin.createOrganization.bind(admin), {
      name: `cold-${o}`,
      maxKeys: perOrg,
      rateLimitPerMinute: RATE_LIMIT,
      monthlyQuota: 0,
    });
    orgIds.push(org.id);
  }
  console.log(
    `${orgCount} organization(s) through KeyAdmin: rate limit ${RATE_LIMIT}/min, monthly quota 0 (unlimited), max_keys ${fmt(perOrg)} (KeyAdmin allows at most ${fmt(LIMITS.maxKeys.max)})`,
  );

  // 2. The keys, straight into api_keys. Generating the next batch overlaps the insert of the last.
  const keyLen = generateKey('live').length;
  const keys = Buffer.alloc(KEYS * keyLen); // every secret, packed; never printed
  const db = new PgClient({ connectionString: dbUrl(DB_NAME) });
  await db.connect();
  const insertSql = `
    insert into api_keys (id, organization_id, name, environment, scopes, prefix, hint, key_hash, created_at, updated_at, metadata)
    select id, org, name, 'live', '[]'::jsonb, prefix, hint, hash, $7, $7, '{}'::jsonb
      from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[]) as t(id, org, name, prefix, hint, hash)`;
  const tIns = Date.now();
  let pending: Promise<unknown> = Promise.resolve();
  let genMs = 0;
  for (let start = 0; start < KEYS; start += INSERT_BATCH) {
    const tg = performance.now();
    const end = Math.min(KEYS, start + INSERT_BATCH);
    const cols: string[][] = [[], [], [], [], [], []];
    const now = new Date();
    for (let i = start; i < end; i++) {
      const key = generateKey('live');
      if (key.length !== keyLen) throw new Error('key length varies');
      keys.write(key, i * keyLen, 'latin1');
      const { prefix, hint } = displayParts(key);
      cols[0]!.push(newId('key', now.getTime()));
      cols[1]!.push(orgIds[Math.floor(i / perOrg)]!);
      cols[2]!.push(`cold-${i}`);
      cols[3]!.push(prefix);
      cols[4]!.push(hint);
      cols[5]!.push(hasher.hash(key));
    }
    genMs += performance.now() - tg;
    await pending;
    pending = db.query(insertSql, [...cols, now]);
    if (end % 100_000 === 0 && end < KEYS) console.log(`  ${fmt(end)} keys inserted (${((Date.now() - tIns) / 1000).toFixed(1)}s)`);
  }
  await pending;
  const insertSeconds = (Date.now() - tIns) / 1000;
  // VACUUM too, as a long-lived table would be: else autovacuum's insert-triggered
  // vacuum of api_keys may run during the load.
  const tA = Date.now();
  await db.query('vacuum (analyze) api_keys');
  await db.query('analyze organizations');
  const analyzeSeconds = (Date.now() - tA) / 1000;
  const tableMb = Number((await db.query<{ b: string }>(`select pg_total_relation_size('api_keys') as b`)).rows[0]!.b) / 1048576;
  await db.end();
  console.log(
    `inserted ${fmt(KEYS)} keys with SQL in ${insertSeconds.toFixed(1)}s (${fmt(KEYS / insertSeconds)} rows/s; ${(genMs / 1000).toFixed(1)}s of it generating and hashing, overlapped with the inserts); VACUUM ANALYZE ${analyzeSeconds.toFixed(1)}s; api_keys with its indexes: ${tableMb.toFixed(0)} MB`,
  );

  // The load generators build their requests meanwhile.
  const slices = Array.from({ length: GENERATORS }, (_, g) => {
    const from = Math.floor((KEYS * g) / GENERATORS);
    return { from, to: Math.floor((KEYS * (g + 1)) / GENERATORS) };
  });
  const gensReady = Promise.all(slices.map((s) => startGenerator(keys.subarray(s.from * keyLen, s.to * keyLen), keyLen)));

  // A sample of the inserted keys must be allowed (and the templated bytes must be the real encoding).
  const { bytes: tpl, offset: tplOffset } = requestTemplate(keyLen);
  const kwClient = new Client(`127.0.0.1:${keyward.authzPort}`, credentials.createInsecure());
  const sample = Array.from({ length: Math.min(SAMPLE, KEYS) }, () => randomInt(KEYS));
  let sampleAllowed = 0;
  for (const i of sample) {
    const key = keys.toString('latin1', i * keyLen, (i + 1) * keyLen);
    const payload = Buffer.from(tpl);
    payload.write(key, tplOffset, 'latin1');
    if (!payload.equals(checkRequestBytes(key))) throw new Error('templated request bytes differ from the encoded CheckRequest');
    const r = await rawCheck(kwClient, payload);
    if (r.okResponse) sampleAllowed++;
    else throw new Error(`key #${i} inserted with SQL was not allowed: ${describe(r)}`);
  }
  kwClient.close();
  console.log(`sample: ${sampleAllowed}/${sample.length} keys inserted with SQL allowed by a grpc-js Check`);
  admin.close();

  // 3. Restart: the measured keyward starts with an empty cache.
  await keyward.stop('SIGTERM');
  if (CPU_PROF) mkdirSync(CPU_PROF, { recursive: true });
  keyward = await startKeyward(secret.toString('hex'), CPU_PROF);
  const pid = keyward.proc.pid!;
  const measuredBuild = distBuilt();
  const gens = await gensReady;
  console.log(
    `keyward restarted (empty cache), pid ${pid}, authz 127.0.0.1:${keyward.authzPort}; ${GENERATORS} load generator(s) ready with ${fmt(gens.reduce((a, g) => a + g.count, 0))} requests`,
  );

  const monitorPg = new PgClient({ connectionString: dbUrl(DB_NAME) });
  await monitorPg.connect();
  const monitor = new StatsMonitor(monitorPg);
  process.stdout.write('waiting for PostgreSQL statistics to settle before the run ...');
  const statsBefore = await monitor.settle();
  console.log(' done');
  const memBefore = memoryOf(pid);
  const backends = new Set(await keywardBackends(monitorPg));
  const cpuKwBefore = cpuMsOf(pid);
  const sysKwBefore = cpuOf(pid).sys;
  const cpuPgBefore = postgresCpuMs();
  console.log(`keyward RSS before the load: ${mb(memBefore.rssKb).toFixed(0)} MB`);
  console.log('');

  // The load.
  const perGen = Math.ceil(INFLIGHT / GENERATORS);
  const progress = gens.map(() => 0);
  gens.forEach((g, k) =>
    g.onMessage((m) => {
      if (m.type === 'progress') progress[k] = m.done;
    }),
  );
  const results = Promise.all(
    gens.map(
      (g) =>
        new Promise<GenResult>((resolve, reject) => {
          g.onMessage((m) => m.type === 'result' && resolve(m.result));
          g.proc.on('exit', () => reject(new Error('load generator exited before its result')));
        }),
    ),
  );
  const tLoad = Date.now();
  for (const g of gens) g.proc.send({ type: 'start', port: keyward.authzPort, inflight: perGen, seconds: SECONDS } satisfies ToGen);
  let lastDone = 0;
  let lastT = tLoad;
  let lastKwCpu = cpuKwBefore;
  let lastPgCpu = cpuPgBefore;
  // A progress line every 5 s for the first 30 s, then every 30 s; CPU in % of one core.
  const ticker = setInterval(() => {
    const done = progress.reduce((a, b) => a + b, 0);
    const now = Date.now();
    if (now - tLoad > 32_000 && now - lastT < 29_000) return;
    const kwCpu = cpuMsOf(pid);
    const pgCpu = postgresCpuMs();
    const pctOf = (ms: number) => `${((100 * ms) / (now - lastT)).toFixed(0)}%`;
    console.log(
      `  ${((now - tLoad) / 1000).toFixed(0).padStart(4)}s  checked ${fmt(done).padStart(9)}  ${fmt(((done - lastDone) * 1000) / (now - lastT)).padStart(6)} req/s (last ${((now - lastT) / 1000).toFixed(0)}s)` +
        `  CPU keyward ${pctOf(kwCpu - lastKwCpu)}, all postgres ${pctOf(postgresCpuDelta(lastPgCpu, pgCpu))}  keyward RSS ${mb(memoryOf(pid).rssKb).toFixed(0)} MB`,
    );
    lastDone = done;
    lastT = now;
    lastKwCpu = kwCpu;
    lastPgCpu = pgCpu;
  }, 5000);
  const res = await results;
  clearInterval(ticker);
  const cpuKw = cpuMsOf(pid) - cpuKwBefore;
  const sysKw = cpuOf(pid).sys - sysKwBefore;
  const cpuPgAfter = postgresCpuMs();
  for (const b of await keywardBackends(monitorPg)) backends.add(b);
  const cpuPgBackends = postgresCpuDelta(cpuPgBefore, cpuPgAfter, backends);
  const cpuPgOther = postgresCpuDelta(cpuPgBefore, cpuPgAfter) - cpuPgBackends;
  const memAfterLoad = memoryOf(pid);

  const checked = res.reduce((a, r) => a + r.done, 0);
  const allowed = res.reduce((a, r) => a + r.allowed, 0);
  const sum = (f: (r: GenResult) => Record<string, number>) => {
    const out: Record<string, number> = {};
    for (const r of res) for (const [k, v] of Object.entries(f(r))) out[k] = (out[k] ?? 0) + v;
    return out;
  };
  const denied = sum((r) => r.denied);
  const errors = sum((r) => r.errors);
  const deniedN = Object.values(denied).reduce((a, b) => a + b, 0);
  const errorsN = Object.values(errors).reduce((a, b) => a + b, 0);
  const elapsed = (Math.max(...res.map((r) => r.endMs)) - Math.min(...res.map((r) => r.startMs))) / 1000;
  const lat = new Float64Array(checked);
  let off = 0;
  for (const r of res) {
    lat.set(r.latencies, off);
    off += r.latencies.length;
  }
  lat.sort();
  const pct = (p: number) => (checked ? lat[Math.min(checked - 1, Math.floor(p * checked))]! : NaN);
  const meanMs = checked ? lat.reduce((a, b) => a + b, 0) / checked : NaN;
  const genCpu = res.reduce((a, r) => a + r.cpuMs, 0);
  const reqPerSec = checked / elapsed;
  const allChecked = checked === KEYS;
  console.log('');
  console.log(
    `load done: ${fmt(checked)} of ${fmt(KEYS)} keys checked once each (${allChecked ? 'all of them' : `time limit ${SECONDS}s reached`}) in ${elapsed.toFixed(1)}s: ${fmt(reqPerSec)} req/s, mean ${meanMs.toFixed(2)} ms, p50 ${pct(0.5).toFixed(2)} ms, p99 ${pct(0.99).toFixed(2)} ms`,
  );
  console.log(`answers: ${fmt(allowed)} allowed, ${fmt(deniedN)} denied, ${fmt(errorsN)} errors`);
  for (const [k, v] of Object.entries(denied)) console.log(`  denied ${fmt(v)}: ${k}`);
  for (const [k, v] of Object.entries(errors)) console.log(`  error ${fmt(v)}: ${k}`);

  // 4. Database work per Check.
  process.stdout.write("waiting for keyward's batched writes and PostgreSQL statistics to settle ...");
  const statsAfter = await monitor.settle();
  console.log(' done');
  const d = delta(statsBefore, statsAfter);
  const per = (n: number) => (checked ? n / checked : NaN);

  // 5. Memory, with the limiter's count from keyward itself.
  const mem = memoryOf(pid);
  const admin2 = new KeyAdminClient(`127.0.0.1:${keyward.adminPort}`, credentials.createInsecure());
  const limiter = await unary(admin2.getRateLimiterStats.bind(admin2), {});
  admin2.close();
  const tracked = Number(limiter.trackedKeys);
  // keyward does not expose its cache size: every checked key was loaded once (the key_hash
  // index scans show it) and none evicted (the cap is above BENCH_COLD_KEYS). A re-check of
  // a sample of them must make no lookup at all.
  const checkedIdx: number[] = [];
  res.forEach((r, g) => {
    for (let i = 0; i < r.done; i++) checkedIdx.push(slices[g]!.from + i);
  });
  const recheck = Array.from({ length: Math.min(RECHECK, checked) }, () => checkedIdx[randomInt(checkedIdx.length)]!);
  const rc = new Client(`127.0.0.1:${keyward.authzPort}`, credentials.createInsecure());
  const statsR0 = await monitor.read();
  let recheckAllowed = 0;
  await pool(recheck, 16, async (i) => {
    const payload = Buffer.from(tpl);
    keys.copy(payload, tplOffset, i * keyLen, (i + 1) * keyLen);
    if ((await rawCheck(rc, payload)).okResponse) recheckAllowed++;
  });
  rc.close();
  process.stdout.write(`re-check of ${recheck.length} random checked keys: ${recheckAllowed} allowed; waiting for the statistics ...`);
  const statsR1 = await monitor.settle();
  const recheckLookups = delta(statsR0, statsR1).keyHashScans;
  console.log(` ${recheckLookups} key lookups reached PostgreSQL`);
  // Every allowed key was loaded into the cache (each Check a distinct key) and none can
  // have been evicted (the cap is above the key count): the re-check confirms they are there.
  const cachedKeys = recheckLookups === 0 ? allowed : NaN;
  process.stdout.write(
    "measuring the in-memory limiter's memory per window (src/limits/sliding-window.ts, 1,000,000 windows, separate process) ...",
  );
  const bytesPerWindow = limiterBytesPerWindow();
  console.log(bytesPerWindow === undefined ? ' failed' : ` ${bytesPerWindow.toFixed(0)} bytes`);
  const missingWindows = Math.max(0, KEYS - tracked);
  const projectedRssMb =
    bytesPerWindow !== undefined && allChecked ? mb(mem.rssKb) + (missingWindows * bytesPerWindow) / 1048576 : undefined;

  // 6. A second pass, every key again (all cached now) as fast as the generators go, so
  // that every key's rate-limit window is live at once (windows idle for 2 minutes are
  // dropped): RSS with all keys cached and all windows tracked, measured, not projected.
  let pass2: { seconds: number; reqPerSec: number; allowed: number; tracked: number; rssMb: number } | undefined;
  if (allChecked && PASS2_GENERATORS > 0) {
    const pslices = Array.from({ length: PASS2_GENERATORS }, (_, g) => ({
      from: Math.floor((KEYS * g) / PASS2_GENERATORS),
      to: Math.floor((KEYS * (g + 1)) / PASS2_GENERATORS),
    }));
    const pgens = await Promise.all(pslices.map((sl) => startGenerator(keys.subarray(sl.from * keyLen, sl.to * keyLen), keyLen)));
    process.stdout.write(`second pass: every key again (cached), ${PASS2_GENERATORS} generators x ${INFLIGHT} in flight ...`);
    const t2 = Date.now();
    const r2 = await Promise.all(
      pgens.map(
        (g) =>
          new Promise<GenResult>((resolve, reject) => {
            g.onMessage((m) => m.type === 'result' && resolve(m.result));
            g.proc.on('exit', () => reject(new Error('load generator exited before its result')));
            g.proc.send({ type: 'start', port: keyward!.authzPort, inflight: INFLIGHT, seconds: 0 } satisfies ToGen);
          }),
      ),
    );
    const seconds = (Date.now() - t2) / 1000;
    const admin3 = new KeyAdminClient(`127.0.0.1:${keyward.adminPort}`, credentials.createInsecure());
    const tracked2 = Number((await unary(admin3.getRateLimiterStats.bind(admin3), {})).trackedKeys);
    admin3.close();
    const done2 = r2.reduce((a, r) => a + r.done, 0);
    pass2 = {
      seconds,
      reqPerSec: done2 / seconds,
      allowed: r2.reduce((a, r) => a + r.allowed, 0),
      tracked: tracked2,
      rssMb: mb(memoryOf(pid).rssKb),
    };
    console.log(
      ` ${fmt(done2)} Checks in ${seconds.toFixed(1)}s (${fmt(pass2.reqPerSec)} req/s), ${fmt(pass2.allowed)} allowed; windows tracked ${fmt(tracked2)}; RSS ${pass2.rssMb.toFixed(0)} MB`,
    );
  }

  // keyward's own complaints (failed background flushes would skew the figures above).
  const logLines = keyward
    .stdout()
    .split('\n')
    .filter((l) => l.startsWith('{'));
  const warnings = logLines.filter((l) => /"level":(40|50|60)/.test(l));
  const warningSummary = [
    ...new Set(
      warnings.map((l) => {
        const j = JSON.parse(l) as { msg?: string; err?: unknown };
        return `${j.msg ?? '?'}${j.err ? ` ${JSON.stringify(j.err).slice(0, 160)}` : ''}`;
      }),
    ),
  ];

  await monitorPg.end();
  await keyward.stop('SIGTERM');
  for (const g of gens) if (g.proc.connected) g.proc.disconnect();

  // 7. Memory with every key cached and every window live, in-process (see memory-driver.cjs).
  let inproc: InProcessResult | undefined;
  if (INPROC) inproc = await inProcessMemory(secret.toString('hex'), keys, keyLen);
  if (!KEEP_DB) {
    await pgAdmin.query(`drop database if exists ${DB_NAME} with (force)`);
    dbCreated = false;
  }
  await pgAdmin.end();

  // 7. Report.
  const f2 = (n: number) => (Number.isFinite(n) ? n.toFixed(3) : 'n/a');
  console.log('');
  console.log(`## Cold path: ${fmt(checked)} Checks, each with a key never checked before (cache miss), ${fmt(KEYS)} keys in PostgreSQL`);
  console.log(
    table(
      ['figure', 'value'],
      [
        [
          'keys inserted with SQL (10k-row unnest batches)',
          `${fmt(KEYS)} in ${insertSeconds.toFixed(1)} s (${fmt(KEYS / insertSeconds)} rows/s)`,
        ],
        ['keys checked (each once)', `${fmt(checked)}${allChecked ? ' (all)' : ` (time limit ${SECONDS} s)`}`],
        ['throughput', `${fmt(reqPerSec)} req/s (${INFLIGHT} in flight, ${elapsed.toFixed(1)} s)`],
        ['latency mean / p50 / p99', `${meanMs.toFixed(2)} / ${pct(0.5).toFixed(2)} / ${pct(0.99).toFixed(2)} ms`],
        ['answers', `${fmt(allowed)} allow, ${fmt(deniedN)} deny, ${fmt(errorsN)} error`],
        ['key lookups per Check (api_keys key_hash index scans)', `${f2(per(d.keyHashScans))} (${fmt(d.keyHashScans)})`],
        ['organizations seq scans per Check (the join in the lookup)', `${f2(per(d.organizations.seq))} (${fmt(d.organizations.seq)})`],
        [
          'organizations index scans per Check (planner probes, see notes)',
          `${f2(per(d.organizations.idx))} (${fmt(d.organizations.idx)})`,
        ],
        ['last_used_at updates per Check (api_keys pkey scans / rows updated)', `${f2(per(d.keyPkeyScans))} / ${f2(per(d.apiKeys.upd))}`],
        [
          'usage rows per Check (events inserted / daily + monthly upserted)',
          `${f2(per(d.usageEvents.ins))} / ${f2(per(d.usageDaily.ins + d.usageDaily.upd))} + ${f2(per(d.usageMonthly.ins + d.usageMonthly.upd))}`,
        ],
        ['transactions committed per Check', f2(per(d.commits))],
        [
          'CPU per Check: keyward / its PostgreSQL backends / other postgres processes / load generator',
          `${f2(per(cpuKw))} / ${f2(per(cpuPgBackends))} / ${f2(per(cpuPgOther))} / ${f2(per(genCpu))} ms`,
        ],
        ['keyward CPU per Check in the kernel (system time)', `${f2(per(sysKw))} ms`],
      ],
    ),
  );
  console.log('');
  console.log('## Memory (keyward process, /proc/<pid>/status)');
  console.log(
    table(
      ['figure', 'value'],
      [
        [
          'keys cached',
          Number.isFinite(cachedKeys)
            ? fmt(cachedKeys)
            : `unconfirmed (${fmt(recheckLookups)} of ${recheck.length} re-checks reached the store)`,
        ],
        ['rate-limit windows tracked (GetRateLimiterStats)', fmt(tracked)],
        ['VmRSS before the load', `${mb(memBefore.rssKb).toFixed(0)} MB`],
        ['VmRSS at the end of the load', `${mb(memAfterLoad.rssKb).toFixed(0)} MB`],
        ['VmRSS after the batched writes settled', `${mb(mem.rssKb).toFixed(0)} MB`],
        ['VmHWM (peak RSS)', `${mb(mem.hwmKb).toFixed(0)} MB`],
        [
          'limiter memory per window (heap + array buffers, separate process)',
          bytesPerWindow === undefined ? 'n/a' : `${bytesPerWindow.toFixed(0)} bytes`,
        ],
        ...(pass2
          ? [
              [`second pass (every key again, cached): windows tracked`, fmt(pass2.tracked)],
              [`VmRSS after the second pass (${fmt(KEYS)} keys cached, ${fmt(pass2.tracked)} windows)`, `${pass2.rssMb.toFixed(0)} MB`],
            ]
          : []),
        ...(projectedRssMb !== undefined && missingWindows > 0
          ? [[`projection, not measured: + ${fmt(missingWindows)} windows to reach ${fmt(KEYS)}`, `${projectedRssMb.toFixed(0)} MB`]]
          : []),
        ...(inproc
          ? [
              [
                'in-process run: first pass from the store / second pass cached',
                `${inproc.pass1.seconds.toFixed(0)} s / ${inproc.pass2.seconds.toFixed(1)} s (not allowed: ${inproc.pass1.other} / ${inproc.pass2.other})`,
              ],
              ['in-process run: keys cached / windows tracked', `${fmt(inproc.cacheSize)} / ${fmt(inproc.trackedWindows)}`],
              [
                `in-process run: VmRSS with ${fmt(inproc.cacheSize)} keys cached and ${fmt(inproc.trackedWindows)} windows, at the end of the load`,
                `${inproc.rssLoadEndMb.toFixed(0)} MB`,
              ],
              [`in-process run: the same after ${INPROC_REST_MS / 1000} s at rest`, `${inproc.rssMb.toFixed(0)} MB`],
              [
                'in-process run: V8 heap used / heap total / external',
                `${inproc.heapUsedMb.toFixed(0)} / ${inproc.heapTotalMb.toFixed(0)} / ${inproc.externalMb.toFixed(0)} MB`,
              ],
            ]
          : []),
      ],
    ),
  );
  console.log('');
  console.log('notes:');
  console.log(
    ' - every Check used a key of its own; keyward kept every loaded key (cache cap above the key count, TTL 1 day for the re-check);',
  );
  console.log(
    '   "keys cached" = keys allowed, confirmed by a re-check of random checked keys that made 0 lookups (PostgreSQL index-scan counters).',
  );
  console.log(
    " - per-Check database figures are deltas of pg_stat_user_indexes/_tables and pg_stat_database (xact_commit, less the monitor's own readings)",
  );
  console.log(
    "   from just before the load to after keyward's background writes settled. The key lookup (api_keys joined with organizations)",
  );
  console.log(
    '   runs outside a transaction block, so it commits one transaction; last_used_at and usage are written in batches, in transactions',
  );
  console.log(
    '   of many rows each (src/authz/last-used.ts, src/usage/): transactions per Check = 1 per lookup + a small share for those batches.',
  );
  if (d.organizations.idx > 0) {
    console.log(
      ' - organizations index scans: PostgreSQL plans the lookup at every Check, and while costing a merge join the planner reads the ends',
    );
    console.log(
      '   of organizations_pkey (get_actual_variable_range), which pg_stat counts as index scans: a bare EXPLAIN of the lookup adds them',
    );
    console.log(
      '   too; none are made with enable_mergejoin off, or with one organization (no histogram). A prepared statement would plan once.',
    );
  }
  console.log(" - CPU per Check from /proc/<pid>/stat (keyward; the postgres backends connected to the bench database, i.e. keyward's;");
  console.log("   every other postgres process: WAL writer, checkpointer, autovacuum, and any other database's load) and process.cpuUsage");
  console.log(`   (generators); the machine has ${cpus().length} CPUs, shared by all of them.`);
  if (tracked < checked) {
    console.log(
      ` - the in-memory limiter drops windows idle for 2 windows (120-180 s; src/limits/sliding-window.ts), so at ${fmt(reqPerSec)} req/s it holds`,
    );
    console.log('   only the keys checked in the last few minutes; 1,000,000 windows at once need about 1,000,000 keys within 2 minutes.');
  }
  if (distBuilt() !== measuredBuild)
    console.log(` - NOTE: dist/ was rebuilt during the run; the measured keyward runs the build of ${measuredBuild}`);
  console.log(
    ` - the measured keyward wrote ${logLines.length} log lines, ${warnings.length} at warn or above${warnings.length ? ':' : ''}`,
  );
  for (const w of warningSummary.slice(0, 5)) console.log(`     ${w}`);
  if (CPU_PROF) console.log(` - keyward's CPU profile (whole process life) is in ${CPU_PROF}`);
  console.log(`total ${((Date.now() - t0) / 1000).toFixed(0)}s`);

  const result = {
    keys: KEYS,
    organizations: orgCount,
    insertSeconds: +insertSeconds.toFixed(2),
    insertRowsPerSec: Math.round(KEYS / insertSeconds),
    checked,
    allChecked,
    timeLimitSeconds: SECONDS,
    inflight: INFLIGHT,
    generators: GENERATORS,
    loadSeconds: +elapsed.toFixed(2),
    reqPerSec: Math.round(reqPerSec),
    meanMs: +meanMs.toFixed(3),
    p50Ms: +pct(0.5).toFixed(3),
    p99Ms: +pct(0.99).toFixed(3),
    allowed,
    denied: deniedN,
    errors: errorsN,
    keyLookupsPerCheck: +per(d.keyHashScans).toFixed(4),
    orgSeqScansPerCheck: +per(d.organizations.seq).toFixed(4),
    orgIndexScansPerCheck: +per(d.organizations.idx).toFixed(4),
    lastUsedUpdatesPerCheck: +per(d.apiKeys.upd).toFixed(4),
    usageEventsPerCheck: +per(d.usageEvents.ins).toFixed(4),
    transactionsPerCheck: +per(d.commits).toFixed(4),
    cpuMsPerCheck: {
      keyward: +per(cpuKw).toFixed(4),
      keywardSystem: +per(sysKw).toFixed(4),
      keywardBackends: +per(cpuPgBackends).toFixed(4),
      otherPostgres: +per(cpuPgOther).toFixed(4),
      loadgen: +per(genCpu).toFixed(4),
    },
    cachedKeys: Number.isFinite(cachedKeys) ? cachedKeys : null,
    recheckLookups,
    limiterTrackedKeys: tracked,
    keywardWarnings: warnings.length,
    rssMb: Math.round(mb(mem.rssKb)),
    rssAtLoadEndMb: Math.round(mb(memAfterLoad.rssKb)),
    rssBeforeMb: Math.round(mb(memBefore.rssKb)),
    hwmMb: Math.round(mb(mem.hwmKb)),
    limiterBytesPerWindow: bytesPerWindow === undefined ? null : Math.round(bytesPerWindow),
    projectedRssMbAllWindows: projectedRssMb === undefined ? null : Math.round(projectedRssMb),
    inProcess: inproc
      ? {
          pass1Seconds: +inproc.pass1.seconds.toFixed(1),
          pass2Seconds: +inproc.pass2.seconds.toFixed(1),
          cachedKeys: inproc.cacheSize,
          trackedWindows: inproc.trackedWindows,
          rssLoadEndMb: Math.round(inproc.rssLoadEndMb),
          rssRestMb: Math.round(inproc.rssMb),
          heapUsedMb: Math.round(inproc.heapUsedMb),
        }
      : null,
    secondPass: pass2
      ? {
          seconds: +pass2.seconds.toFixed(1),
          reqPerSec: Math.round(pass2.reqPerSec),
          allowed: pass2.allowed,
          trackedWindows: pass2.tracked,
          rssMb: Math.round(pass2.rssMb),
        }
      : null,
    node: process.version,
    postgres: pgVersion,
    cpus: cpus().length,
    date: new Date().toISOString(),
  };
  console.log(`BENCH_RESULT ${JSON.stringify(result)}`);
}

if (process.env.BENCH_COLD_ROLE === 'loadgen') {
  loadGenerator();
} else if (process.env.BENCH_COLD_ROLE === 'limiter-heap') {
  limiterHeap();
} else {
  process.on('exit', cleanup);
  for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const)
    process.on(s, () => {
      cleanup();
      process.exit(130);
    });
  main().then(
    () => {
      cleanup();
      process.exit(0);
    },
    (e) => {
      console.error(`bench failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
      if (keyward) console.error(keyward.stderr().slice(-2000));
      cleanup();
      process.exit(1);
    },
  );
}
