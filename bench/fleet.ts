/**
 * keyward fleet bench (PostgreSQL): how fast a revocation on one process reaches another
 * (LISTEN/NOTIFY), and how fast access-log entries are ingested into usage. Knobs are
 * BENCH_* variables (bench/fleet/settings.ts); prints tables and one `BENCH_RESULT {json}` line.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, credentials } from '@grpc/grpc-js';
import { Client as PgClient } from 'pg';
import { KeyAdminClient } from '../src/gen/keyward/admin/v1/key_admin';
import { startServerProcess } from '../test/support/server-process';
import {
  ADMIN_TOKEN,
  ALS_BATCH,
  ALS_ENTRIES,
  ALS_STREAMS,
  DB_NAME,
  FLUSH_SECONDS,
  HASH_SECRET,
  PG_URL,
  POOL,
  REVOKES,
  USAGE_BUFFER_MAX,
} from './fleet/settings';
import { dropDatabase, killChildren, servers, state } from './fleet/processes';
import { Summary, buildInfo, fmtInt, fmtMs, loadLine, otherBusyProcesses, redact, round, summarize, unary } from './fleet/helpers';
import { table } from './support/table';
import { Barrier, RevokeRun, revocationRun } from './fleet/revocation';
import { AlsRun, alsRun, buildPool } from './fleet/access-log';

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
  state.dbCreated = true;
  await root.end();
  const dbUrl = new URL(PG_URL);
  dbUrl.pathname = `/${DB_NAME}`;

  // Two processes on it. B caches keys for 600 s: only the change notification can make it deny.
  state.tmp = mkdtempSync(join(tmpdir(), 'keyward-bench-fleet-'));
  const env: Record<string, string> = {
    KEYWARD_DATABASE_URL: dbUrl.toString(),
    KEYWARD_HASH_SECRET: HASH_SECRET,
    KEYWARD_ADMIN_TOKEN: ADMIN_TOKEN,
    KEYWARD_LOG_LEVEL: 'info',
    KEYWARD_CACHE_TTL_SECONDS: '600',
    KEYWARD_USAGE_FLUSH_SECONDS: String(FLUSH_SECONDS),
    // Each access-log entry also stored as a row: the heaviest ingestion, and countable.
    KEYWARD_USAGE_RAW_EVENTS: 'true',
    ...(USAGE_BUFFER_MAX !== undefined && { KEYWARD_USAGE_BUFFER_MAX: USAGE_BUFFER_MAX }),
    HOME: state.tmp,
  };
  const a = await startServerProcess(env, state.tmp);
  servers.push(a);
  const b = await startServerProcess(env, state.tmp);
  servers.push(b);
  console.log(
    `PostgreSQL ${pgVersion}; keyward A: authz :${a.authzPort} admin :${a.adminPort}; B: authz :${b.authzPort} admin :${b.adminPort}`,
  );
  const othersBefore = otherBusyProcesses().length;
  const loadBefore = loadavg()[0]!;
  console.log(loadLine('before'));
  console.log(
    `settings: KEYWARD_CACHE_TTL_SECONDS=600, KEYWARD_USAGE_FLUSH_SECONDS=${FLUSH_SECONDS}, KEYWARD_USAGE_RAW_EVENTS=true, KEYWARD_USAGE_BUFFER_MAX=${USAGE_BUFFER_MAX ?? '(default 200000)'}, log level info`,
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
      requestId: '',
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
      requestId: '',
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
    if (state.interrupted) return; // the signal handler cleans up and exits
    console.error(`bench failed: ${redact(e instanceof Error ? (e.stack ?? e.message) : String(e))}`);
    for (const s of servers) console.error(redact(s.stderr().slice(-2000)));
    killChildren();
    await dropDatabase();
    process.exit(1);
  },
);
