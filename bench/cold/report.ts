/** The cold bench's report: two tables, the notes, and the `BENCH_RESULT {json}` line. */
import { cpus } from 'node:os';
import { memoryOf } from '../support/keyward';
import { CPU_PROF, GENERATORS, INFLIGHT, INPROC_REST_MS, KEYS, SECONDS } from './settings';
import { distBuilt, fmt, mb } from './system';
import type { delta } from './pg-stats';
import type { InProcessResult } from './in-process';
import { table } from '../support/table';

/** What main measured, as the report reads it. */
export interface ColdRun {
  t0: number;
  pgVersion: string;
  orgCount: number;
  insertSeconds: number;
  checked: number;
  allChecked: boolean;
  allowed: number;
  deniedN: number;
  errorsN: number;
  elapsed: number;
  reqPerSec: number;
  meanMs: number;
  /** Latency at a quantile, ms. */
  pct: (p: number) => number;
  /** A total per Check. */
  per: (n: number) => number;
  d: ReturnType<typeof delta>;
  cpuKw: number;
  cpuPgBackends: number;
  cpuPgOther: number;
  genCpu: number;
  sysKw: number;
  cachedKeys: number;
  recheck: number[];
  recheckLookups: number;
  tracked: number;
  memBefore: ReturnType<typeof memoryOf>;
  memAfterLoad: ReturnType<typeof memoryOf>;
  mem: ReturnType<typeof memoryOf>;
  bytesPerWindow: number | undefined;
  missingWindows: number;
  projectedRssMb: number | undefined;
  pass2: { seconds: number; reqPerSec: number; allowed: number; tracked: number; rssMb: number } | undefined;
  inproc: InProcessResult | undefined;
  measuredBuild: string;
  logLines: string[];
  warnings: string[];
  warningSummary: string[];
}

export function printReport(run: ColdRun): void {
  const {
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
  } = run;
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
