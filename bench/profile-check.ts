/**
 * In-process cost of one hot Check, by phase, without gRPC transport:
 * request decode (the method's deserializer), Authorizer.authorize, response encode
 * (the method's serializer), and usage flushing (the batcher's writes, which run
 * on the same event loop). Prints µs per Check for each.
 *
 *   node --import tsx bench/profile-check.ts            # SQLite in a temp dir
 *   BENCH_DB=postgres://127.0.0.1:5432/test node --import tsx bench/profile-check.ts
 *   node --cpu-prof --cpu-prof-dir=/tmp/prof --import tsx bench/profile-check.ts
 *
 * Knobs: BENCH_OPS (200000), BENCH_KEYS (1000), BENCH_RATE_LIMIT (0 = unlimited;
 * set it to include the limiter and its headers).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseDatabaseUrl } from '../src/config';
import { ROOT } from '../src/admin/principal';
import { SafeAuthorizationService } from '../src/grpc/authz-server';
import { decoded } from '../src/grpc/decode';
import { startInProcessApp, type InProcessApp } from './support/in-process-app';
import { checkRequestBytes } from './support/check-request';

const OPS = Number(process.env.BENCH_OPS ?? 200_000);
const KEYS = Number(process.env.BENCH_KEYS ?? 1000);
const RATE = Number(process.env.BENCH_RATE_LIMIT ?? 0);

async function main(): Promise<void> {
  const tmp = mkdtempSync(join(tmpdir(), 'keyward-prof-'));
  const url = process.env.BENCH_DB ?? `sqlite:${join(tmp, 'kw.db')}`;
  const app = await startInProcessApp(url);
  const ctx = { principal: ROOT, peer: 'profile' };
  const org = await app.admin.organizations.create(ctx, {
    name: `profile-${Date.now()}`,
    maxKeys: KEYS + 10,
    rateLimitPerMinute: RATE,
    monthlyQuota: 0,
    billingAnchorDay: 1,
  });
  const bodies: Buffer[] = [];
  for (let i = 0; i < KEYS; i++) {
    const k = await app.admin.keys.create(ctx, {
      organizationId: org.id,
      name: `k${i}`,
      environment: 'live',
      scopes: [],
      metadata: {},
    });
    bodies.push(checkRequestBytes(k.secret));
  }
  const m = SafeAuthorizationService.check;
  // Warm the cache and the JIT.
  for (let i = 0; i < Math.min(OPS, 20_000); i++)
    m.responseSerialize((await app.authorizer.authorize(decoded(m.requestDeserialize(bodies[i % KEYS]!)))).response);
  await app.usage.flush();

  let decode = 0;
  let check = 0;
  let encode = 0;
  let bytes = 0;
  const flushedBefore = app.usage.stats().flushed;
  const t0 = performance.now();
  for (let i = 0; i < OPS; i++) {
    const a = performance.now();
    const req = decoded(m.requestDeserialize(bodies[i % KEYS]!));
    const b = performance.now();
    const res = (await app.authorizer.authorize(req)).response;
    const c = performance.now();
    bytes += m.responseSerialize(res).length;
    const d = performance.now();
    decode += b - a;
    check += c - b;
    encode += d - c;
  }
  const tf = performance.now();
  await app.usage.flush();
  const total = performance.now() - t0;
  const flushMs = total - (tf - t0);
  const us = (ms: number) => ((ms * 1000) / OPS).toFixed(2);
  console.log(
    `ops ${OPS}, keys ${KEYS}, rate limit ${RATE || 'unlimited'}, db ${parseDatabaseUrl(url).kind}, response ${Math.round(bytes / OPS)} B`,
  );
  console.log(
    `per Check: decode ${us(decode)} µs, check ${us(check)} µs, encode ${us(encode)} µs; loop total ${us(tf - t0)} µs (incl. usage writes that ran during it); final flush ${us(flushMs)} µs`,
  );
  console.log(`usage events flushed: ${app.usage.stats().flushed - flushedBefore}`);
  console.log(garbagePerCheck(app, bodies));
  const sampleFile = process.env.BENCH_HEAP_SAMPLE;
  if (sampleFile) await sampleAllocations(sampleFile, () => garbagePerCheck(app, bodies));
  await app.close(1000);
  rmSync(tmp, { recursive: true, force: true });
}

/**
 * Bytes allocated on the JS heap per Check (decode, authorize, encode; no transport):
 * the heap's growth over chunks of 500 Checks, counting only chunks in which no
 * collection ran (the heap did not shrink).
 */
function garbagePerCheck(app: InProcessApp, bodies: Buffer[]): string {
  const m = SafeAuthorizationService.check;
  const chunks = Number(process.env.BENCH_GARBAGE_CHUNKS ?? 100);
  const grown: number[] = [];
  for (let c = 0; c < chunks; c++) {
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < 500; i++) {
      const answer = app.authorizer.authorize(decoded(m.requestDeserialize(bodies[(c * 500 + i) % bodies.length]!)));
      if (answer instanceof Promise) throw new Error('a cached Check returned a promise');
      m.responseSerialize(answer.response);
    }
    const delta = process.memoryUsage().heapUsed - before;
    if (delta > 0) grown.push(delta / 500);
  }
  grown.sort((a, b) => a - b);
  const median = grown[Math.floor(grown.length / 2)] ?? NaN;
  return `garbage per Check (decode, authorize, encode): ${Math.round(median)} B (median of ${grown.length} chunks of 500 without a collection)`;
}

/**
 * BENCH_HEAP_SAMPLE=<file>: a sampling heap profile of `run` that keeps the objects
 * collected since (every allocation, not only what survives), for where the garbage
 * comes from. Read it with /tmp-style tools or Chrome DevTools.
 */
async function sampleAllocations(file: string, run: () => unknown): Promise<void> {
  const session = new Session();
  session.connect();
  const post = (method: string, params?: object) =>
    new Promise<unknown>((resolve, reject) => session.post(method, params, (e, r) => (e ? reject(e) : resolve(r))));
  await post('HeapProfiler.startSampling', {
    samplingInterval: 512,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: true,
  });
  run();
  const { profile } = (await post('HeapProfiler.stopSampling')) as { profile: unknown };
  writeFileSync(file, JSON.stringify(profile));
  session.disconnect();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
