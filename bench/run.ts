/**
 * keyward hot-path benchmark: keyward, the no-op ext_authz server and the floor server
 * driven by h2load with the same request bytes, req/s and mean latency side by side. Run
 * through `npm run bench` (bench/bench.sh); knobs are BENCH_* variables (bench/run/settings.ts).
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, credentials } from '@grpc/grpc-js';
import { CheckResponse } from '../src/gen/envoy/service/auth/v3/external_auth';
import { CreateOrganizationRequest, Environment, KeyAdminClient } from '../src/gen/keyward/admin/v1/key_admin';
import { generateKey } from '../src/keys/format';
import { startServerProcess } from '../test/support/server-process';
import { checkRequestBytes, grpcFrame } from './support/check-request';
import { CHECK_PATH } from './support/keyward';
import { ADMIN_TOKEN, DURATION, KEYS, LEVELS, ROUNDS, WARMUP } from './run/settings';
import { cleanup, state } from './run/processes';
import {
  H2Result,
  createLiveKeys,
  describe,
  fmtMs,
  fmtRps,
  h2load,
  nghttpStatus,
  payloadLen,
  pool,
  rawCheck,
  rawCheckBytes,
  sh,
  startBaseline,
  unary,
} from './run/helpers';
import { table } from './support/table';
import { median } from './support/stats';
import { UNREACHED_QUOTA, UNREACHED_RATE_LIMIT } from './support/limits';
import { runMain } from './support/run-main';

/** BENCH_LIMITS=off: the organization has no rate limit and no quota (the limiter is then skipped). */
const LIMITED = process.env.BENCH_LIMITS !== 'off';

async function main(): Promise<void> {
  const cpuModel = /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? cpus()[0]?.model ?? '?';
  console.log('# keyward hot-path benchmark');
  console.log(`machine: ${sh('nproc', [])} CPUs, ${cpuModel}`);
  console.log(`node ${process.version}, ${sh('h2load', ['--version'])}, date ${new Date().toISOString()}`);
  console.log(
    `h2load: -t1, warm-up ${WARMUP}s then ${DURATION}s measured per run; all on 127.0.0.1; h2load shares the CPUs with the server under test`,
  );
  console.log(
    `h2load -D ${DURATION} --warm-up-time ${WARMUP} -t 1 -c <c> -m <m> -d <file> -H 'content-type: application/grpc' -H 'te: trailers' http://127.0.0.1:<port>${CHECK_PATH}`,
  );
  console.log('');

  state.tmp = mkdtempSync(join(tmpdir(), 'keyward-bench-'));
  const t0 = Date.now();
  state.keyward = await startServerProcess(
    {
      KEYWARD_DATABASE_URL: `sqlite:${join(state.tmp, 'kw.db')}`,
      KEYWARD_ADMIN_TOKEN: ADMIN_TOKEN,
      KEYWARD_LOG_LEVEL: 'info',
      HOME: state.tmp,
    },
    state.tmp,
    [
      ...(process.env.BENCH_KEYWARD_NODE_ARGS ?? '').split(' ').filter(Boolean),
      ...(process.env.BENCH_CPU_PROF_DIR ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF_DIR}`] : []),
    ],
  );
  const noop = await startBaseline('noop');
  console.log(
    `keyward: authz 127.0.0.1:${state.keyward.authzPort}, admin 127.0.0.1:${state.keyward.adminPort} (SQLite in ${state.tmp}); noop: 127.0.0.1:${noop.port}`,
  );

  // Organization and keys through KeyAdmin.
  const admin = new KeyAdminClient(`127.0.0.1:${state.keyward.adminPort}`, credentials.createInsecure());
  const org = await unary(
    admin.createOrganization.bind(admin),
    CreateOrganizationRequest.fromPartial({
      name: 'bench',
      maxKeys: KEYS + 10,
      rateLimitPerMinute: LIMITED ? UNREACHED_RATE_LIMIT : 0,
      monthlyQuota: LIMITED ? UNREACHED_QUOTA : 0,
    }),
  );
  const tk = Date.now();
  const secrets = await createLiveKeys(admin, org.id, KEYS, 'bench');
  const revokedKey = await unary(admin.createKey.bind(admin), {
    requestId: '',
    organizationId: org.id,
    name: 'bench-revoked',
    environment: Environment.ENVIRONMENT_LIVE,
    scopes: [],
    metadata: {},
  });
  await unary(admin.revokeKey.bind(admin), { requestId: '', id: revokedKey.key!.id, reason: 'benchmark deny path' });
  console.log(
    `organization ${org.id} (${LIMITED ? `rate limit ${UNREACHED_RATE_LIMIT.toLocaleString('en-US')}/min and monthly quota ${UNREACHED_QUOTA.toLocaleString('en-US')}: both consulted, never reached` : 'rate limit 0, monthly quota 0 = unlimited (BENCH_LIMITS=off)'}): ${KEYS} keys + 1 revoked created in ${((Date.now() - tk) / 1000).toFixed(1)}s`,
  );
  admin.close();

  // Warm the cache with every key, and check each is allowed.
  const kwClient = new Client(`127.0.0.1:${state.keyward.authzPort}`, credentials.createInsecure());
  const noopClient = new Client(`127.0.0.1:${noop.port}`, credentials.createInsecure());
  let allowed = 0;
  const tw = Date.now();
  await pool(secrets, 32, async (s) => {
    if ((await rawCheck(kwClient, checkRequestBytes(s))).okResponse) allowed++;
  });
  console.log(`cache warm-up: ${allowed}/${KEYS} keys allowed by a grpc-js Check in ${((Date.now() - tw) / 1000).toFixed(1)}s`);
  if (allowed !== KEYS) throw new Error('not every key was allowed');

  // The request bodies: one key per run (h2load repeats one data file).
  const cases: { name: string; key: string; expect: 'allow' | 'deny' }[] = [
    { name: 'allow (cached key)', key: secrets[0]!, expect: 'allow' },
    { name: 'deny: malformed key', key: 'kw_live_not-a-key', expect: 'deny' },
    { name: 'deny: unknown key (negative cache)', key: generateKey('live'), expect: 'deny' },
    { name: 'deny: revoked key', key: revokedKey.secret, expect: 'deny' },
  ];
  const files = new Map<string, string>();
  console.log('');
  console.log('request check (same bytes as the h2load data file; decision via grpc-js, gRPC status via nghttp):');
  for (const c of cases) {
    const payload = checkRequestBytes(c.key);
    const file = join(state.tmp, `${files.size}.bin`);
    writeFileSync(file, grpcFrame(payload));
    files.set(c.name, file);
    const kw = await rawCheck(kwClient, payload);
    const ok = c.expect === 'allow' ? !!kw.okResponse : !!kw.deniedResponse;
    console.log(
      `  ${c.name.padEnd(36)} ${payload.length + 5} B  keyward: ${describe(kw)}, grpc-status ${nghttpStatus(state.keyward.authzPort, file)}${ok ? '' : '  <-- UNEXPECTED'}`,
    );
    if (!ok) throw new Error(`${c.name}: expected ${c.expect}`);
  }
  // The floor server (bench/floor-server.ts): the same keys, keyward's own allow response.
  const floorFile = join(state.tmp, 'floor.json');
  const allowBytes = await rawCheckBytes(kwClient, checkRequestBytes(secrets[0]!));
  writeFileSync(floorFile, JSON.stringify({ keys: secrets, allowBase64: allowBytes.toString('base64') }));
  const floor = await startBaseline('floor', { FLOOR_FILE: floorFile });
  const floorClient = new Client(`127.0.0.1:${floor.port}`, credentials.createInsecure());
  const fr = await rawCheckBytes(floorClient, checkRequestBytes(secrets[0]!));
  console.log(
    `  ${'floor (same allow bytes)'.padEnd(36)} ${String(payloadLen(secrets[0]!)).padStart(3)} B  floor: ${describe(CheckResponse.decode(fr))}, ${fr.equals(allowBytes) ? "keyward's allow response" : 'a DIFFERENT response'}`,
  );
  if (!fr.equals(allowBytes)) throw new Error("floor did not answer with keyward's allow response");
  floorClient.close();
  const nr = await rawCheck(noopClient, checkRequestBytes(secrets[0]!));
  console.log(
    `  ${'noop (same allow bytes)'.padEnd(36)} ${String(payloadLen(secrets[0]!)).padStart(3)} B  noop: ${describe(nr)}, grpc-status ${nghttpStatus(noop.port, files.get(cases[0]!.name)!)}`,
  );
  if (!nr.okResponse) throw new Error('noop did not answer OK');
  kwClient.close();
  noopClient.close();

  // Measured runs.
  const check = (what: string, r: H2Result) => {
    if (r.failed || r.errored || r.non2xx)
      console.log(`  WARNING ${what}: ${r.done} done, ${r.non2xx} non-2xx, ${r.failed} failed, ${r.errored} errored`);
  };
  const rowsAllow: string[][] = [];
  const result: Record<string, unknown> = {};
  const noopAt: Record<string, H2Result> = {};
  console.log('');
  const ratioRows: string[][] = [];
  for (const [c, m] of LEVELS) {
    const level = `-c${c} -m${m}`;
    // ROUNDS > 1: the three servers in rotating order each round; the ratios are taken within a round.
    const runs: { k: H2Result; f: H2Result; n: H2Result }[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      process.stdout.write(`running ${level}${ROUNDS > 1 ? ` round ${r + 1}/${ROUNDS}` : ''} ...`);
      const got: Partial<Record<'k' | 'f' | 'n', H2Result>> = {};
      const order = (['k', 'f', 'n'] as const).map((_, i, all) => all[(i + r) % 3]!);
      for (const who of order) {
        const port = who === 'k' ? state.keyward.authzPort : who === 'f' ? floor.port : noop.port;
        got[who] = await h2load(port, files.get(cases[0]!.name)!, c, m);
      }
      const run = { k: got.k!, f: got.f!, n: got.n! };
      runs.push(run);
      console.log(
        ` keyward ${fmtRps(run.k.reqPerSec)} req/s, floor ${fmtRps(run.f.reqPerSec)} req/s, noop ${fmtRps(run.n.reqPerSec)} req/s`,
      );
      check(`keyward ${level}`, run.k);
      check(`floor ${level}`, run.f);
      check(`noop ${level}`, run.n);
    }
    const k = { reqPerSec: median(runs.map((x) => x.k.reqPerSec)), meanMs: median(runs.map((x) => x.k.meanMs)) };
    const f = { reqPerSec: median(runs.map((x) => x.f.reqPerSec)), meanMs: median(runs.map((x) => x.f.meanMs)) };
    const n = { reqPerSec: median(runs.map((x) => x.n.reqPerSec)), meanMs: median(runs.map((x) => x.n.meanMs)) };
    const overFloor = runs.map((x) => x.k.reqPerSec / x.f.reqPerSec);
    const overNoop = runs.map((x) => x.k.reqPerSec / x.n.reqPerSec);
    noopAt[level] = runs[0]!.n;
    result[`allow ${level}`] = {
      keywardRps: k.reqPerSec,
      floorRps: f.reqPerSec,
      noopRps: n.reqPerSec,
      keywardMeanMs: k.meanMs,
      floorMeanMs: f.meanMs,
      noopMeanMs: n.meanMs,
      rounds: ROUNDS,
      keywardOverFloor: { median: median(overFloor), min: Math.min(...overFloor), max: Math.max(...overFloor) },
      keywardOverNoop: { median: median(overNoop), min: Math.min(...overNoop), max: Math.max(...overNoop) },
    };
    const range = (xs: number[]) => `${median(xs).toFixed(3)} (${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)})`;
    ratioRows.push([level, String(ROUNDS), range(overFloor), range(overNoop)]);
    rowsAllow.push([
      level,
      fmtRps(k.reqPerSec),
      fmtRps(f.reqPerSec),
      fmtRps(n.reqPerSec),
      (k.reqPerSec / n.reqPerSec).toFixed(2),
      (f.reqPerSec / n.reqPerSec).toFixed(2),
      fmtMs(k.meanMs),
      fmtMs(f.meanMs),
      fmtMs(n.meanMs),
      (k.meanMs / n.meanMs).toFixed(2),
      (f.meanMs / n.meanMs).toFixed(2),
    ]);
  }
  const rowsDeny: string[][] = [];
  // The deny runs compare with the no-op's -c16 -m16 allow run: without that level they are left out.
  const base = noopAt['-c16 -m16'];
  for (const c of base ? cases.slice(1) : []) {
    if (!base) break;
    process.stdout.write(`running ${c.name} at -c16 -m16 ...`);
    const k = await h2load(state.keyward.authzPort, files.get(c.name)!, 16, 16);
    console.log(` keyward ${fmtRps(k.reqPerSec)} req/s`);
    check(`keyward ${c.name}`, k);
    result[c.name] = { keywardRps: k.reqPerSec, noopRps: base.reqPerSec, keywardMeanMs: k.meanMs, noopMeanMs: base.meanMs };
    rowsDeny.push([
      c.name,
      fmtRps(k.reqPerSec),
      fmtRps(base.reqPerSec),
      (k.reqPerSec / base.reqPerSec).toFixed(2),
      fmtMs(k.meanMs),
      fmtMs(base.meanMs),
      (k.meanMs / base.meanMs).toFixed(2),
    ]);
  }

  const head = ['level', 'keyward req/s', 'noop req/s', 'ratio', 'keyward mean', 'noop mean', 'ratio'];
  console.log('');
  console.log(`## Allow path (one cached key per run; h2load repeats the same request bytes, ${KEYS} keys in the cache)`);
  console.log(
    "floor: bench/floor-server.ts, grpc-js plus only the work no implementation can skip (decode, HMAC, Map lookup, keyward's allow response)",
  );
  console.log(
    table(
      [
        'level',
        'keyward req/s',
        'floor req/s',
        'noop req/s',
        'keyward/noop',
        'floor/noop',
        'keyward mean',
        'floor mean',
        'noop mean',
        'keyward/noop',
        'floor/noop',
      ],
      rowsAllow,
    ),
  );
  if (ROUNDS > 1) {
    console.log('');
    console.log(`## Ratios within each round (${ROUNDS} rounds, servers in rotating order): median (min–max); req/s above are medians`);
    console.log(table(['level', 'rounds', 'keyward/floor', 'keyward/noop'], ratioRows));
  }
  console.log('');
  console.log('## Deny paths at -c16 -m16 (noop column: its -c16 -m16 allow run above, same request size class)');
  console.log(table(['case', ...head.slice(1)], rowsDeny));
  console.log('');
  const k16 = rowsAllow[0]!;
  console.log(
    `summary: at ${k16[0]} keyward serves ${k16[4]}x the noop's req/s (mean latency ${k16[9]}x); the floor ${k16[5]}x (latency ${k16[10]}x).`,
  );
  console.log(`BENCH_RESULT ${JSON.stringify({ hot: result })}`);
  console.log(
    'notes: req/s and mean "time for request" from h2load; h2load counts HTTP status only (none failed, none non-2xx unless a WARNING is shown), the gRPC answer was checked once per request body above;',
  );
  console.log(
    '       the noop answers a fixed OK CheckResponse without decoding (grpc-js baseline); keyward logs at info (its ports are read from the log).',
  );
  const logLines = state.keyward
    .stdout()
    .split('\n')
    .filter((l) => l.startsWith('{'));
  const bad = logLines.filter((l) => /"level":(40|50|60)/.test(l));
  console.log(
    `       keyward wrote ${logLines.length} log lines during the bench, ${bad.length} at warn or above${bad.length ? `: ${bad.slice(0, 3).join(' ')}` : ''}`,
  );
  console.log(`total ${((Date.now() - t0) / 1000).toFixed(0)}s`);

  await state.keyward.stop('SIGTERM');
  noop.proc.kill('SIGTERM');
  floor.proc.kill('SIGTERM');
}

runMain(main, cleanup, () => state.keyward?.stderr());
