/**
 * gRPC health (grpc.health.v1 Check) on both ports follows readiness: a real keyward on
 * PostgreSQL behind a TCP proxy the test controls. When the store goes away, the next
 * readiness probe turns every health status NOT_SERVING; when it is back, SERVING again,
 * without a restart. The harness holds the probe's timer, so the test runs the probe.
 */
import { credentials, loadPackageDefinition, type Client, type GrpcObject, type ServiceClientConstructor } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { adminPgUrl, createTestDatabase, type TestDatabase } from './support/databases';
import { startHarness, type Harness } from './support/harness';
import { TcpProxy } from './support/tcp-proxy';

const healthProto = require.resolve('grpc-health-check/proto/health/v1/health.proto');

function healthClient(port: number): Client {
  let o: GrpcObject = loadPackageDefinition(loadSync(healthProto, { keepCase: true, enums: String }));
  for (const p of ['grpc', 'health', 'v1']) o = o[p] as GrpcObject;
  const Health = o.Health as ServiceClientConstructor;
  return new Health(`127.0.0.1:${port}`, credentials.createInsecure());
}

function status(client: Client, service: string): Promise<string> {
  return new Promise((resolve, reject) =>
    (client as unknown as { Check: (...args: unknown[]) => void }).Check(
      { service },
      { deadline: Date.now() + 5000 },
      (e: Error | null, r: { status: string }) => (e ? reject(e) : resolve(r.status)),
    ),
  );
}

describe('gRPC health follows readiness', () => {
  let proxy: TcpProxy;
  let db: TestDatabase;
  let h: Harness;
  let admin: Client;
  let authz: Client;

  /** Every status both ports report: overall and per service. */
  const statuses = async () => ({
    admin: await status(admin, ''),
    keyAdmin: await status(admin, 'keyward.admin.v1.KeyAdmin'),
    authz: await status(authz, ''),
    authorization: await status(authz, 'envoy.service.auth.v3.Authorization'),
  });
  const all = (s: string) => ({ admin: s, keyAdmin: s, authz: s, authorization: s });

  /** Runs the readiness probe (as its timer would) until health reports `want`; readiness caches an outcome for 1 s. */
  async function probeUntil(want: string): Promise<void> {
    const deadline = Date.now() + 20_000;
    for (;;) {
      h.timers.run('readiness');
      if ((await status(admin, '')) === want) return;
      if (Date.now() > deadline) throw new Error(`health did not turn ${want}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  beforeAll(async () => {
    const pg = new URL(adminPgUrl());
    proxy = await TcpProxy.start(pg.hostname, Number(pg.port || 5432));
    db = await createTestDatabase('postgres');
    const viaProxy = new URL(db.config.url);
    viaProxy.hostname = '127.0.0.1';
    viaProxy.port = String(proxy.port);
    h = await startHarness('postgres', { reuseDatabase: db, database: { ...db.config, url: viaProxy.toString() } });
    admin = healthClient(h.app.adminPort);
    authz = healthClient(h.app.authzPort);
  });
  afterAll(async () => {
    admin?.close();
    authz?.close();
    await proxy?.forward();
    await h?.stop();
    await proxy?.close();
    await db?.dispose();
  });

  it('is SERVING, turns NOT_SERVING on both ports when the store is unreachable, and SERVING again when it is back', async () => {
    expect(await statuses()).toEqual(all('SERVING'));

    await proxy.down();
    // Only the probe changes health: until it runs, the last outcome stands.
    expect(await statuses()).toEqual(all('SERVING'));
    await probeUntil('NOT_SERVING');
    expect(await statuses()).toEqual(all('NOT_SERVING'));
    expect((await h.app.readiness.check()).checks.store).toMatch(/^(unreachable|timeout)$/);

    await proxy.forward();
    await probeUntil('SERVING');
    expect(await statuses()).toEqual(all('SERVING'));
    expect(await h.app.readiness.check()).toEqual({ ready: true, checks: { store: 'ok', migrations: 'ok' } });
  });
});
