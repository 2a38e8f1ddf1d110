/**
 * Where a hot Check's CPU goes, keyward against the no-op ext_authz server: each runs
 * under `node --cpu-prof` while h2load drives the same allowed-key CheckRequest at
 * -c16 -m16 (BENCH_C, BENCH_M) for BENCH_DURATION seconds (10), no warm-up. Prints busy CPU per request
 * by owner (keyward, @grpc/grpc-js, Node's http2, GC, ...) side by side, and the
 * difference. Busy time includes each process's start-up and, for keyward, creating
 * one organization and key (well under a second of CPU); the request counts are
 * h2load's.
 *
 *   node --import tsx bench/profile-server.ts      (after npm run build)
 *   BENCH_PROFILE_KEEP=/tmp/prof ...               keeps the three profiles
 */
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, credentials, Metadata, type ServiceError } from '@grpc/grpc-js';
import {
  CreateKeyRequest,
  CreateOrganizationRequest,
  Environment,
  KeyAdminClient,
  type CreateKeyResponse,
  type Organization,
} from '../src/gen/keyward/admin/v1/key_admin';
import { startServerProcess } from '../test/support/server-process';
import { busyByOwner, loadProfile } from './cpuprofile';
import { checkRequestBytes, grpcFrame } from './support/check-request';

const TOKEN = 'bench-admin-token-0123456789abcdef';
const DURATION = Number(process.env.BENCH_DURATION ?? 10);
/** h2load's connections and streams per connection (BENCH_C, BENCH_M: 16, 16). */
const C = Number(process.env.BENCH_C ?? 16);
const M = Number(process.env.BENCH_M ?? 16);

function h2load(port: number, file: string): number {
  const r = spawnSync(
    'h2load',
    [
      '-D',
      String(DURATION),
      '-t',
      '1',
      '-c',
      String(C),
      '-m',
      String(M),
      '-d',
      file,
      '-H',
      'content-type: application/grpc',
      '-H',
      'te: trailers',
      `http://127.0.0.1:${port}/envoy.service.auth.v3.Authorization/Check`,
    ],
    { encoding: 'utf8' },
  );
  const m = /requests: \d+ total, \d+ started, (\d+) done/.exec(r.stdout ?? '');
  if (!m) throw new Error(`h2load failed: ${r.stdout}${r.stderr}`);
  return Number(m[1]);
}

/** The main thread's profile: the largest file (a loader thread may write a small one too). */
const mainProfile = (dir: string) =>
  readdirSync(dir)
    .filter((f) => f.endsWith('.cpuprofile'))
    .map((f) => join(dir, f))
    .sort((a, b) => statSync(b).size - statSync(a).size)[0]!;

async function main(): Promise<void> {
  const tmp = mkdtempSync(join(tmpdir(), 'keyward-profile-'));
  try {
    const kwDir = join(tmp, 'keyward');
    const kw = await startServerProcess(
      {
        KEYWARD_DATABASE_URL: `sqlite:${join(tmp, 'kw.db')}`,
        KEYWARD_ADMIN_TOKEN: TOKEN,
        KEYWARD_LOG_LEVEL: 'info',
        HOME: tmp,
        // Other KEYWARD_* settings pass through (e.g. KEYWARD_HEAP_GROWING_PERCENT).
        ...Object.fromEntries(
          Object.entries(process.env).filter((e): e is [string, string] => e[0].startsWith('KEYWARD_') && e[1] !== undefined),
        ),
      },
      tmp,
      ['--cpu-prof', `--cpu-prof-dir=${kwDir}`],
    );
    const admin = new KeyAdminClient(`127.0.0.1:${kw.adminPort}`, credentials.createInsecure());
    const md = new Metadata();
    md.set('authorization', `Bearer ${TOKEN}`);
    const call = <Req, Res>(f: (req: Req, md: Metadata, cb: (e: ServiceError | null, r: Res) => void) => unknown, req: Req) =>
      new Promise<Res>((res, rej) => f(req, md, (e, r) => (e ? rej(e) : res(r))));
    const org = await call<CreateOrganizationRequest, Organization>(
      admin.createOrganization.bind(admin),
      CreateOrganizationRequest.fromPartial({
        name: 'profile',
        maxKeys: 10,
        rateLimitPerMinute: 0,
        monthlyQuota: 0,
      }),
    );
    const key = await call<CreateKeyRequest, CreateKeyResponse>(
      admin.createKey.bind(admin),
      CreateKeyRequest.fromPartial({
        organizationId: org.id,
        name: 'k',
        environment: Environment.ENVIRONMENT_LIVE,
        scopes: [],
        metadata: {},
      }),
    );
    admin.close();
    const file = join(tmp, 'request.bin');
    writeFileSync(file, grpcFrame(checkRequestBytes(key.secret)));
    const kwRequests = h2load(kw.authzPort, file);
    // keyward's allow response, for the floor server.
    const raw = new Client(`127.0.0.1:${kw.authzPort}`, credentials.createInsecure());
    const id = (b: Buffer) => b;
    const allow = await new Promise<Buffer>((res, rej) =>
      raw.makeUnaryRequest(
        '/envoy.service.auth.v3.Authorization/Check',
        id,
        id,
        checkRequestBytes(key.secret),
        { deadline: Date.now() + 10_000 },
        (e, r) => (e ? rej(e) : res(r!)),
      ),
    );
    raw.close();
    await kw.stop('SIGTERM');
    const floorFile = join(tmp, 'floor.json');
    writeFileSync(floorFile, JSON.stringify({ keys: [key.secret], allowBase64: allow.toString('base64') }));

    const baseline = async (name: 'noop' | 'floor') => {
      const dir = join(tmp, name);
      const proc = spawn(
        process.execPath,
        ['--cpu-prof', `--cpu-prof-dir=${dir}`, '--import', 'tsx', join(__dirname, `${name}-server.ts`)],
        { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, FLOOR_FILE: floorFile } },
      );
      const port = await new Promise<number>((resolve) =>
        proc.stdout.on('data', (d) => {
          const m = /127\.0\.0\.1:(\d+)/.exec(String(d));
          if (m) resolve(Number(m[1]));
        }),
      );
      const requests = h2load(port, file);
      proc.kill('SIGTERM');
      await new Promise((r) => proc.on('exit', r));
      return { requests, dir };
    };
    const { requests: noopRequests, dir: noopDir } = await baseline('noop');
    const { requests: floorRequests, dir: floorDir } = await baseline('floor');

    // BENCH_PROFILE_KEEP=<dir>: the three main profiles are copied there (bench/cpuprofile-top.ts reads them).
    const keep = process.env.BENCH_PROFILE_KEEP;
    if (keep) {
      mkdirSync(keep, { recursive: true });
      for (const [name, dir] of [
        ['keyward', kwDir],
        ['floor', floorDir],
        ['noop', noopDir],
      ] as const)
        copyFileSync(mainProfile(dir), join(keep, `${name}.cpuprofile`));
    }
    const k = busyByOwner(loadProfile(mainProfile(kwDir)));
    const n = busyByOwner(loadProfile(mainProfile(noopDir)));
    const f = busyByOwner(loadProfile(mainProfile(floorDir)));
    const owners = [...new Set([...k.byOwner.keys(), ...n.byOwner.keys()])].sort(
      (a, b) => (k.byOwner.get(b) ?? 0) / kwRequests - (k.byOwner.get(a) ?? 0) / kwRequests,
    );
    const per = (m: Map<string, number>, o: string, reqs: number) => (m.get(o) ?? 0) / reqs;
    console.log(
      `# busy CPU per request at -c${C} -m${M}, ${DURATION} s: keyward ${kwRequests.toLocaleString('en-US')} requests, floor ${floorRequests.toLocaleString('en-US')}, no-op ${noopRequests.toLocaleString('en-US')}`,
    );
    console.log("(floor: bench/floor-server.ts, grpc-js plus decode, HMAC, Map lookup and keyward's allow response)");
    console.log('| owner | keyward µs/request | floor µs/request | no-op µs/request | keyward − no-op |');
    console.log('|:--|--:|--:|--:|--:|');
    for (const o of owners) {
      const a = per(k.byOwner, o, kwRequests);
      const c = per(f.byOwner, o, floorRequests);
      const b = per(n.byOwner, o, noopRequests);
      if (a < 0.05 && b < 0.05 && c < 0.05) continue;
      console.log(`| ${o} | ${a.toFixed(1)} | ${c.toFixed(1)} | ${b.toFixed(1)} | ${a - b >= 0 ? '+' : ''}${(a - b).toFixed(1)} |`);
    }
    const ta = k.busy / kwRequests;
    const tc = f.busy / floorRequests;
    const tb = n.busy / noopRequests;
    console.log(`| **total** | **${ta.toFixed(1)}** | **${tc.toFixed(1)}** | **${tb.toFixed(1)}** | **+${(ta - tb).toFixed(1)}** |`);
    console.log(`CPU-bound ceilings (no-op's CPU per request / theirs): keyward ${(tb / ta).toFixed(2)}, floor ${(tb / tc).toFixed(2)}`);
    console.log(
      `BENCH_RESULT ${JSON.stringify({ cpuPerRequestUs: { keyward: Number(ta.toFixed(2)), floor: Number(tc.toFixed(2)), noop: Number(tb.toFixed(2)) } })}`,
    );
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(`profile failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
  process.exit(1);
});
