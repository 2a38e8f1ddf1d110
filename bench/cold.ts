/**
 * keyward cold-path and memory benchmark on a real PostgreSQL: BENCH_COLD_KEYS keys (1,000,000)
 * inserted with SQL, then Checks that each miss the cache; database work per Check from
 * PostgreSQL's statistics, RSS with every key cached, CPU per Check. Knobs: BENCH_COLD_*
 * (bench/cold/settings.ts); needs dist/ and PostgreSQL at BENCH_PG_URL. Ends with `BENCH_RESULT {json}`.
 */
import { randomBytes, randomInt } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { Client, credentials } from '@grpc/grpc-js';
import { Client as PgClient } from 'pg';
import { LIMITS } from '../src/admin/validate';
import { CreateOrganizationRequest, KeyAdminClient } from '../src/gen/keyward/admin/v1/key_admin';
import { displayParts, generateKey } from '../src/keys/format';
import { createHasher } from '../src/keys/hash';
import { newId } from '../src/util/ids';
import { checkRequestBytes } from './support/check-request';
import { memoryOf, rawCheck } from './support/keyward';
import {
  CPU_PROF,
  DB_NAME,
  GENERATORS,
  INFLIGHT,
  INPROC,
  INSERT_BATCH,
  KEEP_DB,
  KEYS,
  PASS2_GENERATORS,
  PG_ADMIN_URL,
  RATE_LIMIT,
  RECHECK,
  SAMPLE,
  SECONDS,
} from './cold/settings';
import { describe, requestTemplate } from './cold/requests';
import type { GenResult, ToGen } from './cold/generator';
import { printReport } from './cold/report';
import { secondPass } from './cold/second-pass';
import { cleanup, state } from './cold/processes';
import { cpuMsOf, cpuOf, dbUrl, distBuilt, fmt, keywardBackends, mb, pool, postgresCpuDelta, postgresCpuMs, unary } from './cold/system';
import { StatsMonitor, delta } from './cold/pg-stats';
import { startGenerator, startKeyward, printSetup } from './cold/keyward';
import { type InProcessResult, inProcessMemory, limiterBytesPerWindow } from './cold/in-process';
import { runMain } from './support/run-main';

async function main(): Promise<void> {
  if (!(KEYS > 0) || !(INFLIGHT > 0) || !(GENERATORS > 0) || !(SECONDS >= 0)) throw new Error('bad BENCH_COLD_* value');
  const t0 = Date.now();
  const pgAdmin = new PgClient({ connectionString: PG_ADMIN_URL });
  await pgAdmin.connect();
  const pgVersion = (await pgAdmin.query<{ v: string }>(`select current_setting('server_version') as v`)).rows[0]!.v;
  printSetup(pgVersion);
  console.log('');

  // 1. A fresh database, keyward on it (migrations), the organizations.
  await pgAdmin.query(`drop database if exists ${DB_NAME} with (force)`);
  await pgAdmin.query(`create database ${DB_NAME}`);
  state.dbCreated = true;
  const secret = randomBytes(32);
  const hasher = createHasher(secret);
  state.keyward = await startKeyward(secret.toString('hex'));
  console.log(`database ${DB_NAME} created; keyward started (migrations applied), authz 127.0.0.1:${state.keyward.authzPort}`);
  const admin = new KeyAdminClient(`127.0.0.1:${state.keyward.adminPort}`, credentials.createInsecure());
  const orgCount = Math.ceil(KEYS / LIMITS.maxKeys.max);
  const perOrg = Math.ceil(KEYS / orgCount);
  const orgIds: string[] = [];
  for (let o = 0; o < orgCount; o++) {
    const org = await unary(
      admin.createOrganization.bind(admin),
      CreateOrganizationRequest.fromPartial({
        name: `cold-${o}`,
        maxKeys: perOrg,
        rateLimitPerMinute: RATE_LIMIT,
        monthlyQuota: 0,
      }),
    );
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
  const kwClient = new Client(`127.0.0.1:${state.keyward.authzPort}`, credentials.createInsecure());
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
  await state.keyward.stop('SIGTERM');
  if (CPU_PROF) mkdirSync(CPU_PROF, { recursive: true });
  state.keyward = await startKeyward(secret.toString('hex'), CPU_PROF);
  const pid = state.keyward.proc.pid!;
  const measuredBuild = distBuilt();
  const gens = await gensReady;
  console.log(
    `keyward restarted (empty cache), pid ${pid}, authz 127.0.0.1:${state.keyward.authzPort}; ${GENERATORS} load generator(s) ready with ${fmt(gens.reduce((a, g) => a + g.count, 0))} requests`,
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
  for (const g of gens) g.proc.send({ type: 'start', port: state.keyward.authzPort, inflight: perGen, seconds: SECONDS } satisfies ToGen);
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
  const admin2 = new KeyAdminClient(`127.0.0.1:${state.keyward.adminPort}`, credentials.createInsecure());
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
  const rc = new Client(`127.0.0.1:${state.keyward.authzPort}`, credentials.createInsecure());
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

  // 6. A second pass, every key again (all cached now): RSS with all keys cached and all windows tracked.
  const pass2 = allChecked && PASS2_GENERATORS > 0 ? await secondPass(keys, keyLen, pid) : undefined;

  // keyward's own complaints (failed background flushes would skew the figures above).
  const logLines = state.keyward
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
  await state.keyward.stop('SIGTERM');
  for (const g of gens) if (g.proc.connected) g.proc.disconnect();

  // 7. Memory with every key cached and every window live, in-process (see memory-driver.cjs).
  let inproc: InProcessResult | undefined;
  if (INPROC) inproc = await inProcessMemory(secret.toString('hex'), keys, keyLen);
  if (!KEEP_DB) {
    await pgAdmin.query(`drop database if exists ${DB_NAME} with (force)`);
    state.dbCreated = false;
  }
  await pgAdmin.end();

  printReport({
    t0,
    pgVersion,
    orgCount,
    insertSeconds,
    checked,
    allChecked,
    allowed,
    deniedN,
    errorsN,
    elapsed,
    reqPerSec,
    meanMs,
    pct,
    per,
    d,
    cpuKw,
    cpuPgBackends,
    cpuPgOther,
    genCpu,
    sysKw,
    cachedKeys,
    recheck,
    recheckLookups,
    tracked,
    memBefore,
    memAfterLoad,
    mem,
    bytesPerWindow,
    missingWindows,
    projectedRssMb,
    pass2,
    inproc,
    measuredBuild,
    logLines,
    warnings,
    warningSummary,
  });
}

process.on('exit', cleanup);
for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const)
  process.on(s, () => {
    cleanup();
    process.exit(130);
  });
runMain(main, cleanup, () => state.keyward?.stderr());
