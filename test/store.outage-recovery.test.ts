/**
 * A real PostgreSQL outage under load, on a PostgreSQL this test owns and stops:
 *  - a key cached before the outage is still decided (allowed) past its TTL, up to
 *    KEYWARD_CACHE_MAX_STALE_SECONDS, and then gets 503;
 *  - an uncached key follows KEYWARD_ON_STORE_ERROR (deny: 503 service_unavailable);
 *  - KeyAdmin answers UNAVAILABLE with store_unavailable;
 *  - usage goes to the journal on local disk while the store is down, and is replayed
 *    once it is back: the stored request count equals the allowed Checks exactly;
 *  - recovery needs no restart: readiness, the uncached key and KeyAdmin come back.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { startApp, type App } from '../src/app';
import { defaultAuthzConfig, type Config } from '../src/config';
import { createLogger } from '../src/util/logger';
import { ManualClock } from '../src/util/clock';
import { OwnPostgres } from './support/own-postgres';
import { adminClient, failure, secretsIn, type AdminClient } from './support/harness';
import { EnvoyClient, type WireCheckResponse } from './support/envoy-client';
import { parseDenyBody } from './support/deny-body';

const TOKEN = `outage-admin-token-${randomBytes(8).toString('hex')}`;

async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const allowed = (r: WireCheckResponse) => r.http_response === 'ok_response';

/** Segment files anywhere under the journal directory (the process writes in its own subdirectory). */
function segmentsUnder(root: string): string[] {
  return readdirSync(root, { recursive: true })
    .map(String)
    .filter((n) => n.endsWith('.jsonl'));
}

describe('store outage on an owned PostgreSQL', () => {
  let own: OwnPostgres;
  let dir: string;
  let app: App | undefined;
  let root: AdminClient | undefined;
  let envoy: EnvoyClient | undefined;
  const logs: string[] = [];
  let config: Config;

  beforeAll(async () => {
    own = await OwnPostgres.create();
    await own.createDatabase('keyward');
    dir = mkdtempSync(join(tmpdir(), 'keyward-outage-'));
  }, 120_000);

  afterAll(async () => {
    root?.close();
    envoy?.close();
    if (app) await app.close(1000);
    await own?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  it('decides cached keys, fails closed for the rest, journals usage and recovers by itself', async () => {
    const clock = new ManualClock();
    const sink = new Writable({
      write(chunk, _enc, cb) {
        logs.push(String(chunk));
        cb();
      },
    });
    config = {
      database: { kind: 'postgres', url: own.url('keyward') },
      authzListen: '127.0.0.1:0',
      adminListen: '127.0.0.1:0',
      hashSecret: randomBytes(32),
      hashSecretSource: 'env',
      adminToken: TOKEN,
      logLevel: 'debug',
      autoMigrate: true,
      rotationGraceSeconds: 86400,
      heapGrowingPercent: 20,
      authz: {
        ...defaultAuthzConfig(),
        cacheMaxStaleSeconds: 300,
        usageFlushSeconds: 1,
        usageJournalDir: join(dir, 'journal'),
        onStoreError: 'deny',
      },
    };
    app = await startApp({ config, logger: createLogger('debug', sink), clock, onGeneratedAdminToken: () => undefined });
    root = adminClient(app.adminPort, TOKEN);
    envoy = new EnvoyClient(app.authzPort);
    const e = envoy;

    const org = await root.createOrganization({ name: 'outage', rateLimitPerMinute: 1_000_000, monthlyQuota: 0 });
    const cached = (await root.createKey({ organizationId: org.id, name: 'cached' })).secret;
    const uncached = (await root.createKey({ organizationId: org.id, name: 'uncached' })).secret;
    const check = (key: string) => e.check({ headers: { 'x-api-key': key }, path: '/v1/things', method: 'GET' });
    expect(allowed(await check(cached))).toBe(true);

    // Load: four callers checking the cached key until told to stop.
    let allowedCount = 1;
    let other = 0;
    let running = true;
    const callers = Array.from({ length: 4 }, async () => {
      while (running) {
        const r = await check(cached);
        if (allowed(r)) allowedCount++;
        else other++;
      }
    });
    await until('load before the outage', () => allowedCount > 50);

    await own.stop('fast');
    await until('readiness to notice', async () => !(await app!.readiness.check()).ready);

    // Uncached key: deny mode answers 503 service_unavailable, never an allow.
    const u = await check(uncached);
    expect(u.denied_response?.status?.code).toBe(503);
    expect(parseDenyBody(u.denied_response!.body!).error.code).toBe('service_unavailable');

    // KeyAdmin: UNAVAILABLE with store_unavailable.
    const f = await failure(root.createOrganization({ name: 'during-outage', rateLimitPerMinute: 10, monthlyQuota: 0 }));
    expect(f.grpc).toBe(14);
    expect(f.code).toBe('store_unavailable');
    expect(f.trailerCode).toBe('store_unavailable');

    // Usage recorded during the outage reaches the journal on disk.
    const atOutage = allowedCount;
    await until(
      'usage spilled to the journal',
      () => allowedCount > atOutage + 100 && (app!.usage.stats().journal?.pendingEvents ?? 0) > 0,
    );
    expect(segmentsUnder(join(dir, 'journal')).length).toBeGreaterThan(0);

    // Past its TTL (and past the unnotified TTL), the cached key is still decided...
    clock.advance(120_000);
    const stale = await check(cached);
    expect(allowed(stale)).toBe(true);
    allowedCount++;

    running = false;
    await Promise.all(callers);
    expect(other).toBe(0);

    // ...but not beyond KEYWARD_CACHE_MAX_STALE_SECONDS.
    clock.advance(300_000);
    const tooStale = await check(cached);
    expect(tooStale.denied_response?.status?.code).toBe(503);

    // Recovery: no restart.
    await own.start();
    await until('readiness back', async () => (await app!.readiness.check()).ready);
    await until(
      'the journal replayed and the buffer written',
      () => {
        const s = app!.usage.stats();
        return s.buffered === 0 && s.inFlight === 0 && (s.journal?.pendingEvents ?? -1) === 0;
      },
      60_000,
    );
    expect(app.usage.stats().journal!.replayed).toBeGreaterThan(0);
    expect(segmentsUnder(join(dir, 'journal'))).toEqual([]);

    const month = clock.now().toISOString().slice(0, 7);
    const before = new Date(clock.now().getTime() - 420_000).toISOString().slice(0, 7);
    let total = 0;
    for (const m of new Set([before, month]))
      total += (await root.getUsageStats({ organizationId: org.id, month: m })).totals?.requests ?? 0;
    expect(total).toBe(allowedCount);

    expect(allowed(await check(uncached))).toBe(true);
    expect((await root.createOrganization({ name: 'after-outage', rateLimitPerMinute: 10, monthlyQuota: 0 })).name).toBe('after-outage');
    expect(secretsIn(logs.join(''), config)).toEqual([]);
  }, 180_000);
});
