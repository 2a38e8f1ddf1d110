/**
 * The Redis limiter and quota on the hot path: two keyward processes, one in memory (no
 * KEYWARD_REDIS_URL) and one with KEYWARD_REDIS_URL, each on its own SQLite, each with one
 * cached key whose organization has a rate limit and a monthly quota never reached; h2load
 * sends that key's Check to each, in rounds (order alternating), and the figure is redis
 * req/s over memory req/s within each round (target: at least 0.7 at -c16 -m16).
 * Around each redis run, Redis's INFO (commandstats, stats, cpu) is read: commands,
 * socket reads (total_reads_processed: one per batch of commands read from a connection,
 * so the round trips as Redis sees them) and Redis CPU per Check, the Checks counted from
 * keyward's keyward_check_decisions_total. INFO is server-wide: anything else using the
 * same Redis during the run is counted too.
 * Redis: BENCH_REDIS_URL (default redis://127.0.0.1:6379/9: its own db, and every run's
 * key and organization ids are new, so runs do not collide); skipped when it does not answer.
 * Knobs: BENCH_REDIS_ROUNDS (4), BENCH_REDIS_LEVEL ("16x16"), BENCH_REDIS_MODE (strict),
 * BENCH_DURATION, BENCH_WARMUP.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, credentials } from '@grpc/grpc-js';
import Redis from 'ioredis';
import { CreateOrganizationRequest, Environment, KeyAdminClient } from '../src/gen/keyward/admin/v1/key_admin';
import { UNREACHED_QUOTA as QUOTA, UNREACHED_RATE_LIMIT as RATE_LIMIT } from './support/limits';
import { startServerProcess, type ServerProcess } from '../test/support/server-process';
import { checkRequestBytes, grpcFrame } from './support/check-request';
import { table } from './support/table';
import { ADMIN_TOKEN, DURATION, WARMUP } from './run/settings';
import { cleanup, state, track } from './run/processes';
import { type H2Result, describe, fmtMs, fmtRps, h2load, rawCheck, sh, unary } from './run/helpers';
import { median } from './support/stats';
import { runMain } from './support/run-main';

const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379/9';
const ROUNDS = Number(process.env.BENCH_REDIS_ROUNDS ?? 4);
const [C, M] = (process.env.BENCH_REDIS_LEVEL ?? '16x16').split('x').map(Number) as [number, number];
const MODE = process.env.BENCH_REDIS_MODE ?? 'strict';
const TARGET = 0.7;
type Backend = 'memory' | 'redis';

/** A keyward with or without Redis, one organization (rate limit and quota never reached) and one key; its request file. */
async function startKeyward(backend: Backend): Promise<{ kw: ServerProcess; file: string }> {
  const kw = await startServerProcess(
    {
      KEYWARD_DATABASE_URL: `sqlite:${join(state.tmp!, `${backend}.db`)}`,
      KEYWARD_ADMIN_TOKEN: ADMIN_TOKEN,
      KEYWARD_LOG_LEVEL: 'info',
      KEYWARD_RATE_LIMIT_MODE: MODE,
      KEYWARD_USAGE_JOURNAL_DIR: join(state.tmp!, `journal-${backend}`),
      HOME: state.tmp!,
      ...(backend === 'redis' && { KEYWARD_REDIS_URL: REDIS_URL }),
    },
    state.tmp,
    [
      ...(process.env.BENCH_KEYWARD_NODE_ARGS ?? '').split(' ').filter(Boolean),
      ...(process.env.BENCH_CPU_PROF_DIR ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF_DIR}/${backend}`] : []),
    ],
  );
  track(kw.proc);
  const admin = new KeyAdminClient(`127.0.0.1:${kw.adminPort}`, credentials.createInsecure());
  const org = await unary(
    admin.createOrganization.bind(admin),
    CreateOrganizationRequest.fromPartial({
      name: `redis-bench-${backend}`,
      maxKeys: 10,
      rateLimitPerMinute: RATE_LIMIT,
      monthlyQuota: QUOTA,
    }),
  );
  const key = await unary(admin.createKey.bind(admin), {
    requestId: '',
    organizationId: org.id,
    name: 'redis-bench',
    environment: Environment.ENVIRONMENT_LIVE,
    scopes: [],
    metadata: {},
  });
  admin.close();
  // Cache it, and check the answer: allowed, with rate-limit headers.
  const client = new Client(`127.0.0.1:${kw.authzPort}`, credentials.createInsecure());
  const r = await rawCheck(client, checkRequestBytes(key.secret));
  client.close();
  const headers = r.okResponse?.responseHeadersToAdd.some((h) => h.header?.key === 'x-ratelimit-limit') ?? false;
  console.log(`  ${backend} process (organization ${org.id}): ${describe(r)}, rate-limit headers ${headers ? 'present' : 'absent'}`);
  if (!r.okResponse || !headers) throw new Error(`${backend}: the key was not allowed with rate-limit headers`);
  const file = join(state.tmp!, `${backend}.bin`);
  writeFileSync(file, grpcFrame(checkRequestBytes(key.secret)));
  return { kw, file };
}

/** keyward_check_decisions_total{code="ok"} of a process. */
async function checksOk(kw: ServerProcess): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${kw.httpPort}/metrics`)).text();
  const m = /^keyward_check_decisions_total\{code="ok"\} (\d+)/m.exec(text);
  return m ? Number(m[1]) : 0;
}

interface RedisSnapshot {
  commands: number;
  reads: number;
  cpu: number;
  calls: Map<string, number>;
  /** Microseconds Redis spent in each command (its own execution time, commandstats usec). */
  usec: Map<string, number>;
}

async function snapshot(redis: Redis): Promise<RedisSnapshot> {
  const info = await redis.info('all');
  const num = (name: string) => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info)?.[1] ?? NaN);
  const calls = new Map<string, number>();
  const usec = new Map<string, number>();
  for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/gm)) {
    calls.set(m[1]!, Number(m[2]));
    usec.set(m[1]!, Number(m[3]));
  }
  return {
    commands: num('total_commands_processed'),
    reads: num('total_reads_processed'),
    cpu: num('used_cpu_sys') + num('used_cpu_user'),
    calls,
    usec,
  };
}

interface RedisTotals {
  checks: number;
  commands: number;
  reads: number;
  cpuSeconds: number;
  wallSeconds: number;
  calls: Map<string, number>;
  usec: Map<string, number>;
}

async function main(): Promise<void> {
  console.log('# Redis limiter and quota on the hot path: redis vs memory (req/s within each round)');
  console.log(
    `machine: ${sh('nproc', [])} CPUs; node ${process.version}, ${sh('h2load', ['--version'])}, date ${new Date().toISOString()}`,
  );
  const probe = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 1000 });
  probe.on('error', () => undefined);
  try {
    await probe.connect();
    await probe.ping();
  } catch {
    console.log(`skipped: Redis is not reachable at ${REDIS_URL.replace(/\/\/[^@]*@/, '//***@')}`);
    probe.disconnect();
    return;
  }
  const redis = probe;
  console.log(
    `redis ${/redis_version:(\S+)/.exec(await redis.info('server'))?.[1] ?? '?'} at ${REDIS_URL.replace(/\/\/[^@]*@/, '//***@')}`,
  );
  console.log(
    `h2load -D ${DURATION} --warm-up-time ${WARMUP} -t 1 -c ${C} -m ${M} (one cached key per run); ${ROUNDS} rounds of memory and redis, order alternating`,
  );
  console.log(
    `both: KEYWARD_RATE_LIMIT_MODE=${MODE}, organization rate limit ${RATE_LIMIT.toLocaleString('en-US')}/min and monthly quota ${QUOTA.toLocaleString('en-US')} (never reached)`,
  );
  state.tmp = mkdtempSync(join(tmpdir(), 'keyward-bench-redis-'));
  const t0 = Date.now();
  const kws: Record<Backend, { kw: ServerProcess; file: string }> = {
    memory: await startKeyward('memory'),
    redis: await startKeyward('redis'),
  };
  const runs: Record<Backend, H2Result[]> = { memory: [], redis: [] };
  const ratios: number[] = [];
  const totals: RedisTotals = { checks: 0, commands: 0, reads: 0, cpuSeconds: 0, wallSeconds: 0, calls: new Map(), usec: new Map() };
  const run = async (b: Backend): Promise<H2Result> => {
    const { kw, file } = kws[b];
    if (b === 'memory') return h2load(kw.authzPort, file, C, M);
    const [c0, s0, w0] = [await checksOk(kw), await snapshot(redis), Date.now()];
    const res = await h2load(kw.authzPort, file, C, M);
    const [s1, c1, w1] = [await snapshot(redis), await checksOk(kw), Date.now()];
    totals.checks += c1 - c0;
    // The INFO call that took s1 is counted in s1, one read and one command.
    totals.commands += s1.commands - s0.commands - 1;
    totals.reads += s1.reads - s0.reads - 1;
    totals.cpuSeconds += s1.cpu - s0.cpu;
    totals.wallSeconds += (w1 - w0) / 1000;
    for (const [cmd, n] of s1.calls) totals.calls.set(cmd, (totals.calls.get(cmd) ?? 0) + n - (s0.calls.get(cmd) ?? 0));
    for (const [cmd, n] of s1.usec) totals.usec.set(cmd, (totals.usec.get(cmd) ?? 0) + n - (s0.usec.get(cmd) ?? 0));
    return res;
  };
  process.stdout.write('warm-up (not recorded):');
  for (const b of ['memory', 'redis'] as const) {
    const { kw, file } = kws[b];
    process.stdout.write(` ${b} ${fmtRps((await h2load(kw.authzPort, file, C, M)).reqPerSec)}`);
  }
  console.log(' req/s');
  for (let r = 0; r < ROUNDS; r++) {
    const order: Backend[] = r % 2 ? ['redis', 'memory'] : ['memory', 'redis'];
    process.stdout.write(`round ${r + 1}:`);
    const got: Partial<Record<Backend, H2Result>> = {};
    for (const b of order) {
      const res = await run(b);
      if (res.failed || res.errored || res.non2xx)
        console.log(` WARNING ${b}: ${res.non2xx} non-2xx, ${res.failed} failed, ${res.errored} errored`);
      got[b] = res;
      runs[b].push(res);
      process.stdout.write(` ${b} ${fmtRps(res.reqPerSec)}`);
    }
    ratios.push(got.redis!.reqPerSec / got.memory!.reqPerSec);
    console.log(` req/s; redis/memory ${ratios[r]!.toFixed(3)}`);
  }

  const perCheck = (n: number) => (n / totals.checks).toFixed(3);
  const ratio = median(ratios);
  console.log('');
  console.log(`## redis vs memory at -c${C} -m${M} over ${ROUNDS} rounds (ratio within each round)`);
  console.log(
    table(
      ['backend', 'median req/s', 'median latency', 'req/s per round'],
      (['memory', 'redis'] as const).map((b) => [
        b,
        fmtRps(median(runs[b].map((x) => x.reqPerSec))),
        fmtMs(median(runs[b].map((x) => x.meanMs))),
        runs[b].map((x) => fmtRps(x.reqPerSec)).join(', '),
      ]),
    ),
  );
  console.log('');
  console.log(`## Redis per allowed Check (${totals.checks.toLocaleString('en-US')} Checks in the redis runs, warm-up included)`);
  const scriptCalls = (totals.calls.get('evalsha') ?? 0) + (totals.calls.get('eval') ?? 0);
  const scriptUsec = (totals.usec.get('evalsha') ?? 0) + (totals.usec.get('eval') ?? 0);
  const calls = [...totals.calls].filter(([, n]) => n > 0).sort((a, b) => b[1] - a[1]);
  console.log(
    table(
      ['what', 'per Check', 'total'],
      [
        [
          'script calls (evalsha + eval): commands keyward sends',
          perCheck(scriptCalls),
          `${scriptCalls.toLocaleString('en-US')} (a call carries ${((2 * totals.checks) / scriptCalls).toFixed(1)} Checks: each Check is in one limiter and one quota call)`,
        ],
        [
          'Redis time per script call µs (commandstats usec: Redis blocked)',
          (scriptUsec / scriptCalls).toFixed(1),
          `${(scriptUsec / 1e6).toFixed(2)} s; ${(scriptUsec / totals.checks).toFixed(2)} µs per Check`,
        ],
        [
          'commands (total_commands_processed; with those the scripts run)',
          perCheck(totals.commands),
          totals.commands.toLocaleString('en-US'),
        ],
        ...calls.map(([cmd, n]) => [`  ${cmd}`, perCheck(n), n.toLocaleString('en-US')]),
        ['socket reads (total_reads_processed)', perCheck(totals.reads), totals.reads.toLocaleString('en-US')],
        [
          'Redis CPU µs (used_cpu_sys + used_cpu_user)',
          ((totals.cpuSeconds * 1e6) / totals.checks).toFixed(2),
          `${totals.cpuSeconds.toFixed(2)} s`,
        ],
      ],
    ),
  );
  const cpuPerCommandUs = (totals.cpuSeconds * 1e6) / totals.commands;
  const redisCore = totals.cpuSeconds / totals.wallSeconds;
  const checksPerRedisCore = totals.checks / totals.cpuSeconds;
  const replica = median(runs.redis.map((x) => x.reqPerSec));
  console.log('');
  console.log(
    `Redis CPU ${cpuPerCommandUs.toFixed(2)} µs per command, ${((totals.cpuSeconds * 1e6) / totals.checks).toFixed(2)} µs per Check; busy ${(redisCore * 100).toFixed(0)} % of a core during the redis runs;` +
      ` one Redis core would serve about ${fmtRps(checksPerRedisCore)} Checks/s, i.e. about ${(checksPerRedisCore / replica).toFixed(1)} replicas at ${fmtRps(replica)} req/s each.`,
  );
  const verdict = ROUNDS < 2 ? 'too few rounds to tell' : ratio >= TARGET ? 'met' : 'NOT met';
  console.log(
    `summary: at -c${C} -m${M} redis serves ${ratio.toFixed(3)}x memory's req/s (median; per round ${ratios.map((x) => x.toFixed(3)).join(', ')}); target >= ${TARGET}: ${verdict}.`,
  );
  console.log(
    `BENCH_RESULT ${JSON.stringify({
      redis: {
        level: `-c${C} -m${M}`,
        rounds: ROUNDS,
        mode: MODE,
        rps: { memory: runs.memory.map((x) => Math.round(x.reqPerSec)), redis: runs.redis.map((x) => Math.round(x.reqPerSec)) },
        ratio: ratios.map((x) => +x.toFixed(4)),
        medianRatio: +ratio.toFixed(4),
        scriptCallsPerCheck: +(scriptCalls / totals.checks).toFixed(4),
        scriptUsecPerCall: +(scriptUsec / scriptCalls).toFixed(2),
        scriptUsecPerCheck: +(scriptUsec / totals.checks).toFixed(3),
        commandsPerCheck: +(totals.commands / totals.checks).toFixed(4),
        readsPerCheck: +(totals.reads / totals.checks).toFixed(4),
        redisCpuUsPerCommand: +cpuPerCommandUs.toFixed(3),
        redisCpuUsPerCheck: +((totals.cpuSeconds * 1e6) / totals.checks).toFixed(3),
        verdict,
      },
    })}`,
  );
  for (const b of ['memory', 'redis'] as const) {
    const bad = kws[b].kw
      .stdout()
      .split('\n')
      .filter((l) => /"level":(40|50|60)/.test(l));
    if (bad.length) console.log(`${b} keyward wrote ${bad.length} log lines at warn or above: ${bad.slice(0, 3).join(' ')}`);
  }
  console.log(`total ${((Date.now() - t0) / 1000).toFixed(0)}s`);
  for (const k of Object.values(kws)) await k.kw.stop('SIGTERM');
  redis.disconnect();
}

runMain(main, cleanup);
