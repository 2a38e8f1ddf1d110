/**
 * The rate limiter's cost on the hot path (issue 13 §1: strict must not move the
 * keyward/no-op ratio by more than 5 %). Two keyward processes, one per
 * KEYWARD_RATE_LIMIT_MODE (strict, approximate), each on its own SQLite, and the no-op
 * server; h2load sends one cached key's Check to each, in rounds:
 *  - strict:      a key whose organization has a rate limit (never reached), strict process;
 *  - approximate: the same, approximate process;
 *  - none:        a key whose organization has no rate limit (the limiter is not consulted).
 * Each figure is keyward's req/s over the no-op's in the same round (the order rotates from
 * round to round), so the rounds can be compared although the machine is shared; the
 * medians over the rounds are compared, and the verdict is "inconclusive" when the
 * per-round differences between strict and approximate have both signs and exceed 5 %
 * (with fewer than 4 rounds: "too few rounds to tell"). An unrecorded run per keyward
 * target warms both processes up first.
 * Knobs: BENCH_RL_ROUNDS (8: each case twice in each place of the order), BENCH_RL_LEVEL ("16x16": -c16 -m16), BENCH_DURATION, BENCH_WARMUP.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, credentials } from '@grpc/grpc-js';
import { CreateOrganizationRequest, Environment, KeyAdminClient } from '../src/gen/keyward/admin/v1/key_admin';
import { LIMITS } from '../src/admin/validate';
import { startServerProcess, type ServerProcess } from '../test/support/server-process';
import { checkRequestBytes, grpcFrame } from './support/check-request';
import { CHECK_PATH } from './support/keyward';
import { table } from './support/table';
import { ADMIN_TOKEN, DURATION, WARMUP } from './run/settings';
import { cleanup, state, track } from './run/processes';
import { type H2Result, describe, fmtMs, fmtRps, h2load, rawCheck, sh, startBaseline, unary } from './run/helpers';
import { median } from './support/stats';
import { runMain } from './support/run-main';

const ROUNDS = Number(process.env.BENCH_RL_ROUNDS ?? 8);
const [C, M] = (process.env.BENCH_RL_LEVEL ?? '16x16').split('x').map(Number) as [number, number];
/** The limited organizations' limit: as high as KeyAdmin allows, so no Check is refused. */
const LIMIT = LIMITS.rateLimitMax;
type Mode = 'strict' | 'approximate';
type Case = 'strict' | 'approximate' | 'none';

/** A keyward in `mode` with a limited and an unlimited key; their request files. */
async function startKeyward(mode: Mode): Promise<{ kw: ServerProcess; limited: string; unlimited: string }> {
  const dir = join(state.tmp!, mode);
  const kw = await startServerProcess(
    {
      KEYWARD_DATABASE_URL: `sqlite:${join(state.tmp!, `${mode}.db`)}`,
      KEYWARD_ADMIN_TOKEN: ADMIN_TOKEN,
      KEYWARD_LOG_LEVEL: 'info',
      KEYWARD_RATE_LIMIT_MODE: mode,
      KEYWARD_USAGE_JOURNAL_DIR: join(state.tmp!, `journal-${mode}`),
      HOME: state.tmp!,
    },
    state.tmp,
  );
  track(kw.proc);
  const admin = new KeyAdminClient(`127.0.0.1:${kw.adminPort}`, credentials.createInsecure());
  const files: string[] = [];
  for (const rate of [LIMIT, 0]) {
    const org = await unary(
      admin.createOrganization.bind(admin),
      CreateOrganizationRequest.fromPartial({
        name: `rl-${rate}`,
        maxKeys: 10,
        rateLimitPerMinute: rate,
        monthlyQuota: 0,
      }),
    );
    const key = await unary(admin.createKey.bind(admin), {
      requestId: '',
      organizationId: org.id,
      name: 'rl',
      environment: Environment.ENVIRONMENT_LIVE,
      scopes: [],
      metadata: {},
    });
    // Cache it, and check the answer: allowed, with rate-limit headers iff limited.
    const client = new Client(`127.0.0.1:${kw.authzPort}`, credentials.createInsecure());
    const r = await rawCheck(client, checkRequestBytes(key.secret));
    client.close();
    const headers = r.okResponse?.responseHeadersToAdd.some((h) => h.header?.key === 'x-ratelimit-limit') ?? false;
    console.log(
      `  ${mode} process, ${rate ? `limit ${rate}/min` : 'no limit'}: ${describe(r)}, rate-limit headers ${headers ? 'present' : 'absent'}`,
    );
    if (!r.okResponse || headers !== rate > 0) throw new Error(`${mode}: unexpected answer for the ${rate ? 'limited' : 'unlimited'} key`);
    const file = join(dir + (rate ? '-limited' : '-unlimited') + '.bin');
    writeFileSync(file, grpcFrame(checkRequestBytes(key.secret)));
    files.push(file);
  }
  admin.close();
  return { kw, limited: files[0]!, unlimited: files[1]! };
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const pct = (x: number) => `${x >= 0 ? '+' : ''}${(x * 100).toFixed(1)} %`;

async function main(): Promise<void> {
  console.log('# rate limiter on the hot path: strict vs approximate vs no limit (keyward/no-op req/s)');
  console.log(
    `machine: ${sh('nproc', [])} CPUs; node ${process.version}, ${sh('h2load', ['--version'])}, date ${new Date().toISOString()}`,
  );
  console.log(
    `h2load -D ${DURATION} --warm-up-time ${WARMUP} -t 1 -c ${C} -m ${M} (one cached key per run); ${ROUNDS} rounds of noop, strict, approximate, none, order rotating`,
  );
  state.tmp = mkdtempSync(join(tmpdir(), 'keyward-bench-rl-'));
  const t0 = Date.now();
  const noop = await startBaseline('noop');
  const kws = { strict: await startKeyward('strict'), approximate: await startKeyward('approximate') };
  const targets: Record<Case | 'noop', { port: number; file: string }> = {
    noop: { port: noop.port, file: kws.strict.unlimited },
    strict: { port: kws.strict.kw.authzPort, file: kws.strict.limited },
    approximate: { port: kws.approximate.kw.authzPort, file: kws.approximate.limited },
    none: { port: kws.strict.kw.authzPort, file: kws.strict.unlimited },
  };
  const order = ['noop', 'strict', 'approximate', 'none'] as const;
  const runs: Record<(typeof order)[number], H2Result[]> = { noop: [], strict: [], approximate: [], none: [] };
  const ratios: Record<Case, number[]> = { strict: [], approximate: [], none: [] };
  // One unrecorded run per keyward target first, so no round meets a process not yet warmed up.
  process.stdout.write('warm-up (not recorded):');
  for (const what of ['strict', 'approximate', 'none'] as const) {
    const res = await h2load(targets[what].port, targets[what].file, C, M);
    process.stdout.write(` ${what} ${fmtRps(res.reqPerSec)}`);
  }
  console.log(' req/s');
  for (let r = 0; r < ROUNDS; r++) {
    const rotated = [...order.slice(r % order.length), ...order.slice(0, r % order.length)];
    process.stdout.write(`round ${r + 1}:`);
    const got: Partial<Record<(typeof order)[number], H2Result>> = {};
    for (const what of rotated) {
      const res = await h2load(targets[what].port, targets[what].file, C, M);
      if (res.failed || res.errored || res.non2xx)
        console.log(` WARNING ${what}: ${res.non2xx} non-2xx, ${res.failed} failed, ${res.errored} errored`);
      got[what] = res;
      runs[what].push(res);
      process.stdout.write(` ${what} ${fmtRps(res.reqPerSec)}`);
    }
    for (const c of ['strict', 'approximate', 'none'] as const) ratios[c].push(got[c]!.reqPerSec / got.noop!.reqPerSec);
    console.log(` req/s; ratios ${(['strict', 'approximate', 'none'] as const).map((c) => `${c} ${ratios[c][r]!.toFixed(3)}`).join(', ')}`);
  }

  const approx = median(ratios.approximate);
  const rows = (['strict', 'approximate', 'none'] as const).map((c) => [
    c === 'none' ? 'no rate limit' : `${c} (limit ${LIMIT.toLocaleString('en-US')}/min)`,
    median(ratios[c]).toFixed(3),
    mean(ratios[c]).toFixed(3),
    `${Math.min(...ratios[c]).toFixed(3)}–${Math.max(...ratios[c]).toFixed(3)}`,
    pct((median(ratios[c]) - approx) / approx),
    fmtRps(median(runs[c].map((x) => x.reqPerSec))),
    fmtMs(median(runs[c].map((x) => x.meanMs))),
  ]);
  rows.push(['noop', '1', '1', '', '', fmtRps(median(runs.noop.map((x) => x.reqPerSec))), fmtMs(median(runs.noop.map((x) => x.meanMs)))]);
  console.log('');
  console.log(`## keyward/no-op req/s at -c${C} -m${M} over ${ROUNDS} rounds (each ratio within one round)`);
  console.log(table(['case', 'median ratio', 'mean ratio', 'range', 'vs approximate', 'median req/s', 'median latency'], rows));
  // Per round, strict against approximate of the same round.
  const perRound = ratios.strict.map((s, r) => (s - ratios.approximate[r]!) / ratios.approximate[r]!);
  const moved = (median(ratios.strict) - approx) / approx;
  const strictVsNone = (median(ratios.strict) - median(ratios.none)) / median(ratios.none);
  const straddles = Math.min(...perRound) < -0.05 && Math.max(...perRound) > 0.05;
  const verdict =
    ROUNDS < 4
      ? 'too few rounds to tell'
      : Math.abs(moved) <= 0.05
        ? 'met'
        : straddles
          ? 'inconclusive: the rounds disagree by more than the target'
          : 'NOT met';
  console.log('');
  console.log(
    `summary: strict moves the median keyward/noop ratio by ${pct(moved)} against approximate (per round ${perRound.map(pct).join(', ')}; median ${pct(median(perRound))}) and by ${pct(strictVsNone)} against no rate limit; target within 5 %: ${verdict}.`,
  );
  console.log(
    `BENCH_RESULT ${JSON.stringify({
      ratelimit: {
        level: `-c${C} -m${M}`,
        rounds: ROUNDS,
        ratio: Object.fromEntries((['strict', 'approximate', 'none'] as const).map((c) => [c, ratios[c].map((x) => +x.toFixed(4))])),
        rps: Object.fromEntries(order.map((c) => [c, runs[c].map((x) => Math.round(x.reqPerSec))])),
        strictVsApproximatePercent: +(moved * 100).toFixed(2),
        strictVsNonePercent: +(strictVsNone * 100).toFixed(2),
        verdict,
      },
    })}`,
  );
  console.log(`path ${CHECK_PATH}; total ${((Date.now() - t0) / 1000).toFixed(0)}s`);
  for (const k of Object.values(kws)) await k.kw.stop('SIGTERM');
  noop.proc.kill('SIGTERM');
}

runMain(main, cleanup);
