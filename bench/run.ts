/**
 * keyward hot-path benchmark (first version). Run through `npm run bench`
 * (bench/bench.sh installs h2load if needed and builds dist/ first).
 *
 * Starts a real `keyward serve` (dist/, temp SQLite), the no-op ext_authz server
 * (bench/noop-server.ts) and the floor server (bench/floor-server.ts: grpc-js plus the
 * work no implementation of keyward's contract can skip), all on 127.0.0.1, creates an
 * unlimited organization and BENCH_KEYS keys through KeyAdmin, warms the key cache,
 * checks that the request bytes get the expected answers, then drives the servers
 * with h2load using the same data file and prints req/s and mean latency side by side.
 *
 * Knobs (environment): BENCH_KEYS (1000), BENCH_DURATION seconds (8),
 * BENCH_WARMUP seconds (2), BENCH_CPU_PROF_DIR (run keyward under `node --cpu-prof`
 * and write its profile there; summarize it with bench/cpuprofile-top.ts),
 * BENCH_KEYWARD_NODE_ARGS (more node options for keyward, space-separated).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, credentials, type ServiceError } from '@grpc/grpc-js';
import { CheckResponse } from '../src/gen/envoy/service/auth/v3/external_auth';
import { Environment, KeyAdminClient } from '../src/gen/keyward/admin/v1/key_admin';
import { generateKey } from '../src/keys/format';
import { startServerProcess, type ServerProcess } from '../test/support/server-process';
import { checkRequestBytes, grpcFrame } from './support/check-request';
import { CHECK_PATH, adminUnary, identity } from './support/keyward';

const KEYS = Number(process.env.BENCH_KEYS ?? 1000);
const DURATION = Number(process.env.BENCH_DURATION ?? 8);
const WARMUP = Number(process.env.BENCH_WARMUP ?? 2);
const ADMIN_TOKEN = 'bench-admin-token-0123456789abcdef';
const LEVELS: [number, number][] = [
  [16, 16],
  [4, 8],
  [1, 1],
];

// ---------- process bookkeeping: everything spawned is killed on exit ----------
const children = new Set<ChildProcess>();
let keyward: ServerProcess | undefined;
let tmp: string | undefined;
function cleanup(): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  if (keyward && keyward.proc.exitCode === null) keyward.proc.kill('SIGKILL');
  if (tmp) rmSync(tmp, { recursive: true, force: true });
  tmp = undefined;
}
process.on('exit', cleanup);
for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const)
  process.on(s, () => {
    cleanup();
    process.exit(130);
  });

function track(c: ChildProcess): ChildProcess {
  children.add(c);
  c.on('exit', () => children.delete(c));
  return c;
}

// ---------- helpers ----------
function sh(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return (r.stdout ?? '').trim();
}

/** Starts bench/<name>-server.ts (the no-op or the floor), which prints `<name> listening on 127.0.0.1:<port>`. */
async function startBaseline(name: 'noop' | 'floor', env: Record<string, string> = {}): Promise<{ port: number; proc: ChildProcess }> {
  const proc = track(
    spawn(process.execPath, ['--import', 'tsx', join(__dirname, `${name}-server.ts`)], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
    }),
  );
  let out = '';
  let err = '';
  proc.stdout!.on('data', (d) => (out += String(d)));
  proc.stderr!.on('data', (d) => (err += String(d)));
  const deadline = Date.now() + 20_000;
  for (;;) {
    const m = new RegExp(`${name} listening on 127\\.0\\.0\\.1:(\\d+)`).exec(out);
    if (m) return { port: Number(m[1]), proc };
    if (Date.now() > deadline || proc.exitCode !== null) throw new Error(`${name} server did not start:\n${out}\n${err}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const unary = adminUnary(ADMIN_TOKEN);

const payloadLen = (key: string): number => checkRequestBytes(key).length + 5;
/** Sends exactly `payload` as the Check request; the CheckResponse's bytes. */
function rawCheckBytes(client: Client, payload: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    client.makeUnaryRequest(
      CHECK_PATH,
      identity,
      identity,
      payload,
      { deadline: Date.now() + 10_000 },
      (e: ServiceError | null, r?: Buffer) => (e ? reject(e) : resolve(r!)),
    ),
  );
}

/** Sends exactly `payload` as the Check request and decodes the CheckResponse. */
async function rawCheck(client: Client, payload: Buffer): Promise<CheckResponse> {
  return CheckResponse.decode(await rawCheckBytes(client, payload));
}

async function pool<T>(items: T[], width: number, fn: (t: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) {
        const i = next++;
        await fn(items[i]!, i);
      }
    }),
  );
}

interface H2Result {
  reqPerSec: number;
  meanMs: number;
  done: number;
  non2xx: number;
  failed: number;
  errored: number;
}

function toMs(v: string): number {
  const m = /^([\d.]+)(us|ms|s)$/.exec(v);
  if (!m) return NaN;
  const n = Number(m[1]);
  return m[2] === 'us' ? n / 1000 : m[2] === 's' ? n * 1000 : n;
}

function h2load(port: number, dataFile: string, c: number, m: number): Promise<H2Result> {
  const args = [
    '-D',
    String(DURATION),
    '--warm-up-time',
    String(WARMUP),
    '-t',
    '1',
    '-c',
    String(c),
    '-m',
    String(m),
    '-d',
    dataFile,
    '-H',
    'content-type: application/grpc',
    '-H',
    'te: trailers',
    `http://127.0.0.1:${port}${CHECK_PATH}`,
  ];
  return new Promise((resolve, reject) => {
    const p = track(spawn('h2load', args, { stdio: ['ignore', 'pipe', 'pipe'] }));
    let out = '';
    p.stdout!.on('data', (d) => (out += String(d)));
    p.stderr!.on('data', (d) => (out += String(d)));
    const timer = setTimeout(() => p.kill('SIGKILL'), (DURATION + WARMUP + 30) * 1000);
    p.on('exit', (code) => {
      clearTimeout(timer);
      const rps = /finished in [\d.]+\w+, ([\d.]+) req\/s/.exec(out);
      const reqs = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored/.exec(out);
      const codes = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(out);
      const time = /time for request:\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)/.exec(out);
      if (code !== 0 || !rps || !reqs || !codes || !time) return reject(new Error(`h2load failed (exit ${code}):\n${out}`));
      resolve({
        reqPerSec: Number(rps[1]),
        meanMs: toMs(time[3]!),
        done: Number(reqs[3]),
        non2xx: Number(codes[2]) + Number(codes[3]) + Number(codes[4]),
        failed: Number(reqs[5]),
        errored: Number(reqs[6]),
      });
    });
  });
}

/** One nghttp request with the data file: the gRPC status in the trailers. */
function nghttpStatus(port: number, dataFile: string): string {
  const out = sh('nghttp', [
    '-v',
    '-n',
    '-d',
    dataFile,
    '-H',
    'content-type: application/grpc',
    '-H',
    'te: trailers',
    `http://127.0.0.1:${port}${CHECK_PATH}`,
  ]);
  const m = /grpc-status: (\d+)/.exec(out);
  return m ? m[1]! : 'absent';
}

const fmtRps = (n: number) => Math.round(n).toLocaleString('en-US');
const fmtMs = (n: number) => `${n.toFixed(3)} ms`;
function table(head: string[], rows: string[][]): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => `| ${r.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join(' | ')} |`;
  return [
    line(head),
    `|${w.map((x, i) => (i === 0 ? ':' : '-') + '-'.repeat(x) + (i === 0 ? '-' : ':')).join('|')}|`,
    ...rows.map(line),
  ].join('\n');
}

function describe(r: CheckResponse): string {
  if (r.okResponse) return `allow (status ${r.status?.code ?? 0})`;
  if (r.deniedResponse)
    return `deny HTTP ${r.deniedResponse.status?.code} (status ${r.status?.code}${r.status?.message ? `: ${r.status.message}` : ''})`;
  return `status ${r.status?.code}`;
}

// ---------- main ----------
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

  tmp = mkdtempSync(join(tmpdir(), 'keyward-bench-'));
  const t0 = Date.now();
  keyward = await startServerProcess(
    {
      KEYWARD_DATABASE_URL: `sqlite:${join(tmp, 'kw.db')}`,
      KEYWARD_ADMIN_TOKEN: ADMIN_TOKEN,
      KEYWARD_LOG_LEVEL: 'info',
      HOME: tmp,
    },
    tmp,
    [
      ...(process.env.BENCH_KEYWARD_NODE_ARGS ?? '').split(' ').filter(Boolean),
      ...(process.env.BENCH_CPU_PROF_DIR ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF_DIR}`] : []),
    ],
  );
  const noop = await startBaseline('noop');
  console.log(
    `keyward: authz 127.0.0.1:${keyward.authzPort}, admin 127.0.0.1:${keyward.adminPort} (SQLite in ${tmp}); noop: 127.0.0.1:${noop.port}`,
  );

  // Organization and keys through KeyAdmin.
  const admin = new KeyAdminClient(`127.0.0.1:${keyward.adminPort}`, credentials.createInsecure());
  const org = await unary(admin.createOrganization.bind(admin), {
    name: 'bench',
    maxKeys: KEYS + 10,
    rateLimitPerMinute: 0,
    monthlyQuota: 0,
  });
  const secrets = new Array<string>(KEYS);
  const tk = Date.now();
  await pool(
    Array.from({ length: KEYS }, (_, i) => i),
    8,
    async (i) => {
      const r = await unary(admin.createKey.bind(admin), {
        organizationId: org.id,
        name: `bench-${i}`,
        environment: Environment.ENVIRONMENT_LIVE,
        scopes: [],
        metadata: {},
      });
      secrets[i] = r.secret;
    },
  );
  const revokedKey = await unary(admin.createKey.bind(admin), {
    organizationId: org.id,
    name: 'bench-revoked',
    environment: Environment.ENVIRONMENT_LIVE,
    scopes: [],
    metadata: {},
  });
  await unary(admin.revokeKey.bind(admin), { id: revokedKey.key!.id, reason: 'benchmark deny path' });
  console.log(
    `organization ${org.id} (rate limit 0, monthly quota 0 = unlimited): ${KEYS} keys + 1 revoked created in ${((Date.now() - tk) / 1000).toFixed(1)}s`,
  );
  admin.close();

  // Warm the cache with every key, and check each is allowed.
  const kwClient = new Client(`127.0.0.1:${keyward.authzPort}`, credentials.createInsecure());
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
    const file = join(tmp, `${files.size}.bin`);
    writeFileSync(file, grpcFrame(payload));
    files.set(c.name, file);
    const kw = await rawCheck(kwClient, payload);
    const ok = c.expect === 'allow' ? !!kw.okResponse : !!kw.deniedResponse;
    console.log(
      `  ${c.name.padEnd(36)} ${payload.length + 5} B  keyward: ${describe(kw)}, grpc-status ${nghttpStatus(keyward.authzPort, file)}${ok ? '' : '  <-- UNEXPECTED'}`,
    );
    if (!ok) throw new Error(`${c.name}: expected ${c.expect}`);
  }
  // The floor server (bench/floor-server.ts): the same keys, keyward's own allow response.
  const floorFile = join(tmp, 'floor.json');
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
  for (const [c, m] of LEVELS) {
    const level = `-c${c} -m${m}`;
    process.stdout.write(`running ${level} ...`);
    const k = await h2load(keyward.authzPort, files.get(cases[0]!.name)!, c, m);
    const f = await h2load(floor.port, files.get(cases[0]!.name)!, c, m);
    const n = await h2load(noop.port, files.get(cases[0]!.name)!, c, m);
    console.log(` keyward ${fmtRps(k.reqPerSec)} req/s, floor ${fmtRps(f.reqPerSec)} req/s, noop ${fmtRps(n.reqPerSec)} req/s`);
    check(`keyward ${level}`, k);
    check(`floor ${level}`, f);
    check(`noop ${level}`, n);
    noopAt[level] = n;
    result[`allow ${level}`] = {
      keywardRps: k.reqPerSec,
      floorRps: f.reqPerSec,
      noopRps: n.reqPerSec,
      keywardMeanMs: k.meanMs,
      floorMeanMs: f.meanMs,
      noopMeanMs: n.meanMs,
    };
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
  const base = noopAt['-c16 -m16']!;
  for (const c of cases.slice(1)) {
    process.stdout.write(`running ${c.name} at -c16 -m16 ...`);
    const k = await h2load(keyward.authzPort, files.get(c.name)!, 16, 16);
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
  console.log('');
  console.log('## Deny paths at -c16 -m16 (noop column: its -c16 -m16 allow run above, same request size class)');
  console.log(table(['case', ...head.slice(1)], rowsDeny));
  console.log('');
  const k16 = rowsAllow[0]!;
  console.log(
    `summary: at -c16 -m16 keyward serves ${k16[4]}x the noop's req/s (mean latency ${k16[9]}x); the floor ${k16[5]}x (latency ${k16[10]}x).`,
  );
  console.log(`BENCH_RESULT ${JSON.stringify({ hot: result })}`);
  console.log(
    'notes: req/s and mean "time for request" from h2load; h2load counts HTTP status only (none failed, none non-2xx unless a WARNING is shown), the gRPC answer was checked once per request body above;',
  );
  console.log(
    '       the noop answers a fixed OK CheckResponse without decoding (grpc-js baseline); keyward logs at info (its ports are read from the log).',
  );
  const logLines = keyward
    .stdout()
    .split('\n')
    .filter((l) => l.startsWith('{'));
  const bad = logLines.filter((l) => /"level":(40|50|60)/.test(l));
  console.log(
    `       keyward wrote ${logLines.length} log lines during the bench, ${bad.length} at warn or above${bad.length ? `: ${bad.slice(0, 3).join(' ')}` : ''}`,
  );
  console.log(`total ${((Date.now() - t0) / 1000).toFixed(0)}s`);

  await keyward.stop('SIGTERM');
  noop.proc.kill('SIGTERM');
  floor.proc.kill('SIGTERM');
}

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
