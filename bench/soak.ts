/**
 * keyward soak: a real keyward under steady mixed traffic (Checks, KeyAdmin, access logs,
 * operations probes) for a while, to show that its memory and event loop stay flat and that
 * every answer stays right. `npm run soak -- --minutes 10` (--help for the options); the
 * last line is `SOAK_RESULT {json}`, and the exit status is 1 on any error or RSS drift.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { redisAvailable, testRedisUrl } from '../test/support/redis';
import { startServerProcess } from '../test/support/server-process';
import { logLines, memoryOf, redact, withDatabase } from './support/keyward';
import {
  ADMIN_TOKEN,
  CHECK_MIX,
  CHECK_TIMEOUT_MS,
  CONNECTIONS,
  DB_NAME,
  DURATION_MS,
  HASH_SECRET,
  INTERVAL_MS,
  LIMIT_PER_MINUTE,
  OPT,
  PG_URL,
  RSS_LIMIT_PERCENT,
  RSS_SAMPLE_MS,
  SECRETS,
  WARMUP_MS,
} from './soak/options';
import {
  CHECK_KINDS,
  KINDS,
  Kind,
  LimitedKey,
  adminCalls,
  afterInterrupt,
  fail,
  interruptedPromise,
  limitedKeys,
  run,
  sinceLoad,
  sleep,
  tally,
} from './soak/state';
import { CheckConnections, startChecks, warmCache } from './soak/checks';
import { adminLoop, setUpKeys } from './soak/admin';
import { alsLoop } from './soak/access-log';
import { scrape } from './soak/ops';
import { buildInfo, cleanRedis, dropDatabase, pgAdminQuery, pgReachable, stopServer, onSignals } from './soak/lifecycle';
import { COLUMNS, Sample, int, mb, mmss, pad } from './soak/output';
import { median } from './support/stats';

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
  run.tmp = mkdtempSync(join(tmpdir(), 'keyward-soak-'));
  let store: string;
  const env: Record<string, string> = { KEYWARD_LOG_LEVEL: 'info', KEYWARD_HASH_SECRET: HASH_SECRET, KEYWARD_ADMIN_TOKEN: ADMIN_TOKEN };
  if (!OPT.sqlite && (await pgReachable())) {
    await pgAdminQuery(`create database ${DB_NAME}`);
    run.dbCreated = true;
    env.KEYWARD_DATABASE_URL = withDatabase(PG_URL, DB_NAME);
    store = `PostgreSQL (a fresh database ${DB_NAME} at ${redact(new URL(PG_URL).host)}, dropped at the end)`;
  } else {
    env.KEYWARD_DATABASE_URL = `sqlite:${join(run.tmp, 'keyward.db')}`;
    store = `SQLite in ${run.tmp}${OPT.sqlite ? ' (--sqlite)' : ' (PostgreSQL not reachable)'}`;
  }
  const redisUrl = testRedisUrl();
  let limiter: string;
  if (OPT.redis && (await redisAvailable(redisUrl))) {
    env.KEYWARD_REDIS_URL = redisUrl;
    run.limiterBackend = 'redis';
    limiter = `Redis at ${new URL(redisUrl).host} (KEYWARD_REDIS_URL)`;
  } else {
    limiter = `in memory${OPT.redis ? ' (Redis not reachable)' : ' (--no-redis)'}`;
  }
  console.log(`store: ${store}`);
  console.log(`rate limits and quotas: ${limiter}`);

  run.server = await startServerProcess(env, run.tmp);
  const serving = JSON.parse(
    run.server
      .stdout()
      .split('\n')
      .find((l) => l.includes('"keyward serving"'))!,
  ) as { http?: string };
  const httpPort = Number(serving.http?.split(':').pop());
  if (!Number.isInteger(httpPort)) throw new Error('keyward did not report its operations HTTP port');
  const pid = run.server.proc.pid!;
  console.log(
    `keyward pid ${pid}, cwd ${run.tmp}: authz 127.0.0.1:${run.server.authzPort}, admin 127.0.0.1:${run.server.adminPort}, http 127.0.0.1:${httpPort}`,
  );

  await setUpKeys(run.server.adminPort);

  run.conns = new CheckConnections(run.server.authzPort, CONNECTIONS);
  await run.conns.ready();
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
  run.loadStart = performance.now();
  const rss: { atMs: number; kb: number }[] = [];
  const sampleRss = () => rss.push({ atMs: sinceLoad(), kb: memoryOf(pid).rssKb });
  const rssTimer = setInterval(sampleRss, RSS_SAMPLE_MS);
  const checkTimer = startChecks();
  const adminDone = adminLoop();
  const alsDone = alsLoop(run.server.authzPort);
  const samples: Sample[] = [];
  const countsNow = () => KINDS.map((k) => (k === 'als' ? tally[k].sent : tally[k].ok + tally[k].errors));
  const cpuStart = process.cpuUsage();
  let last = { atMs: 0, counts: countsNow(), limited429: run.limited429 };
  for (let tick = 1; ; tick++) {
    const at = Math.min(tick * INTERVAL_MS, DURATION_MS);
    await Promise.race([sleep(at - sinceLoad()), interruptedPromise]);
    if (run.interrupted) break;
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
        `${pad(((run.limited429 - last.limited429) / secs).toFixed(1), 6)} | ${pad(rate('admin').toFixed(1), 7)} ${pad(rate('als').toFixed(0), 6)} | ${errors}`,
    );
    last = { atMs: now, counts, limited429: run.limited429 };
    if (at >= DURATION_MS) break;
  }

  // Drain: no new requests; those in flight finish; the access-log stream ends and is answered.
  sampleRss();
  const lastRssKb = rss[rss.length - 1]!.kb;
  const hwmKb = memoryOf(pid).hwmKb;
  const loadMs = sinceLoad();
  const cpu = process.cpuUsage(cpuStart);
  run.stopping = true;
  clearInterval(checkTimer);
  clearInterval(rssTimer);
  await Promise.all([adminDone, alsDone]);
  const drainUntil = performance.now() + CHECK_TIMEOUT_MS + 1000;
  while (run.inFlight > 0 && performance.now() < drainUntil) await sleep(20);
  run.conns.close();
  run.admin.close();
  // keyward's counters, unless a Ctrl-C in the terminal reached keyward too and it is stopping.
  if (run.interrupted) await sleep(500);
  const finalMetrics = run.server.stdout().includes('"msg":"shutting down"') ? undefined : await scrape(httpPort);

  // keyward stops; its log is read; everything is removed.
  const stop = await stopServer(run.server);
  const { lines, warnings } = logLines(run.server.stdout());
  const stderrLines = run.server
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
  rmSync(run.tmp, { recursive: true, force: true });
  cleanup.push(`${run.tmp} removed`);
  run.tmp = undefined;

  // ---------- the summary ----------
  console.log('');
  console.log(`## summary${run.interrupted ? ' (interrupted)' : ''}`);
  console.log(`ran ${mmss(loadMs)} of traffic; store: ${store}; limits: ${limiter}`);
  const problems: string[] = [];

  // RSS.
  const afterWarmup = rss.filter((r) => r.atMs >= WARMUP_MS);
  let rssResult: Record<string, number> | null = null;
  if (afterWarmup.length >= 2) {
    // RSS moves in a garbage-collection sawtooth, so single samples are compared by the
    // median of each minute after the warm-up: the first minute's is the baseline, and
    // every later minute's must stay within ±RSS_LIMIT_PERCENT of it.
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
    const note = k === 'limited' ? ` (${int(run.limited429)} of them 429)` : k === 'als' ? ' entries (in streams answered OK)' : '';
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
  if (run.failuresAfterInterrupt) {
    console.log(
      `(${run.failuresAfterInterrupt} request(s) failed after the interrupt, while the run and keyward were stopping; not counted as errors:`,
    );
    for (const [what, n] of [...afterInterrupt].slice(0, 5)) console.log(`  ${n} × ${redact(what, SECRETS)}`);
    console.log(')');
  }
  const verdict = problems.length
    ? `FAIL: ${problems.join('; ')}`
    : `PASS: no errors, ${rssResult ? `RSS within ±${RSS_LIMIT_PERCENT} % after the warm-up` : 'RSS not judged (the run was shorter than the warm-up)'}, clean stop`;
  console.log(run.interrupted ? `INTERRUPTED after ${mmss(loadMs)} (${verdict})` : verdict);

  const result = {
    date: new Date().toISOString(),
    minutes: +(loadMs / 60_000).toFixed(3),
    interrupted: run.interrupted,
    store: store.startsWith('PostgreSQL') ? 'postgres' : 'sqlite',
    limiter: run.limiterBackend,
    rate: OPT.rate,
    adminRate: OPT.adminRate,
    alsRate: OPT.alsRate,
    rss: rssResult,
    lagMaxMs: worst ? +worst.lagMaxMs.toFixed(1) : null,
    lagP99MaxMs: Number.isFinite(worstP99) ? +worstP99.toFixed(1) : null,
    requests: Object.fromEntries(KINDS.map((k) => [k, tally[k].sent])),
    limited429: run.limited429,
    errors: Object.fromEntries(KINDS.map((k) => [k, tally[k].errors])),
    keywardWarnings: warnings.length,
    keywardExit: stop.code,
    cpus: cpus().length,
    node: process.version,
    pass: problems.length === 0,
  };
  console.log(`SOAK_RESULT ${JSON.stringify(result)}`);
  return run.interrupted ? 130 : problems.length ? 1 : 0;
}

onSignals();
main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(`soak failed: ${redact(e instanceof Error ? (e.stack ?? e.message) : String(e), SECRETS)}`);
    if (run.server) console.error(redact(run.server.stderr().slice(-2000), SECRETS));
    process.exit(1);
  },
);
