/**
 * A real store outage (PostgreSQL only; no mocks): the test database stops
 * accepting connections and its existing connections are terminated. Then
 *  - deny mode (default): an uncached key gets 503 service_unavailable with
 *    retry-after, never an allow; a key cached before the outage is still allowed;
 *  - error mode: the Check RPC itself fails with gRPC UNAVAILABLE (14).
 */
import { status as grpcStatus, type ServiceError } from '@grpc/grpc-js';
import { Client } from 'pg';
import { adminPgUrl } from './support/databases';
import { startHarness, type Harness } from './support/harness';
import { EnvoyClient, metadataOf, type WireCheckResponse, type WireHeaderOption } from './support/envoy-client';
import { ErrorInfo } from '../src/gen/google/rpc/error_details';
import { generateKey } from '../src/keys/format';
import { parseDenyBody } from './support/deny-body';

function headerTriples(opts: WireHeaderOption[] | undefined): [string, string, boolean | 'unset'][] {
  return (opts ?? [])
    .map((o): [string, string, boolean | 'unset'] => [
      o.header.key,
      o.header.value ?? '',
      o.append === undefined ? 'unset' : (o.append.value ?? false),
    ])
    .sort((a, b) => a[0].localeCompare(b[0]));
}

function dbName(h: Harness): string {
  const name = decodeURIComponent(new URL(h.db.config.url).pathname.slice(1));
  expect(name).toMatch(/^keyward_test_[0-9a-f]+$/);
  return name;
}

async function asAdmin<T>(fn: (c: Client) => Promise<T>): Promise<T> {
  const c = new Client({ connectionString: adminPgUrl() });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

/** Makes the database refuse new connections and ends the ones it has. */
async function cutOff(name: string): Promise<void> {
  await asAdmin(async (c) => {
    await c.query(`ALTER DATABASE ${name} ALLOW_CONNECTIONS false`);
    await c.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`, [name]);
  });
}

async function restore(name: string): Promise<void> {
  await asAdmin((c) => c.query(`ALTER DATABASE ${name} ALLOW_CONNECTIONS true`));
}

function expect503(r: WireCheckResponse): void {
  const message = 'the key store is unavailable; retry later';
  expect(r.http_response).toBe('denied_response');
  expect(r.ok_response).toBeUndefined();
  expect(r.status?.code).toBe(14);
  expect(r.status?.message).toBe(message);
  expect(r.status?.details?.map((d) => d.type_url)).toEqual(['type.googleapis.com/google.rpc.ErrorInfo']);
  expect(ErrorInfo.decode(r.status!.details![0]!.value)).toEqual({ reason: 'service_unavailable', domain: 'keyward', metadata: {} });
  expect(r.denied_response?.status?.code).toBe(503);
  expect(headerTriples(r.denied_response?.headers)).toEqual([
    ['content-type', 'application/json', false],
    ['retry-after', '1', false],
    ['x-keyward-error-code', 'service_unavailable', false],
  ]);
  expect(JSON.parse(r.denied_response!.body!)).toEqual({ error: { code: 'service_unavailable', message } });
  expect(metadataOf(r)).toEqual({ error_code: 'service_unavailable' });
}

async function rpcError(p: Promise<unknown>): Promise<ServiceError> {
  try {
    await p;
  } catch (e) {
    return e as ServiceError;
  }
  throw new Error('expected the Check RPC to fail, but it succeeded');
}

describe('Check while the store is down (postgres)', () => {
  describe('KEYWARD_ON_STORE_ERROR=deny (default)', () => {
    let h: Harness;
    let envoy: EnvoyClient;
    beforeAll(async () => {
      h = await startHarness('postgres');
      envoy = new EnvoyClient(h.app.authzPort);
    });
    afterAll(async () => {
      envoy.close();
      await h.stop();
    });

    it('an uncached key gets 503 service_unavailable; a cached key is still allowed; keys are checked again once the store is back', async () => {
      const org = await h.root.createOrganization({ name: 'Acme' });
      const cached = await h.root.createKey({ organizationId: org.id, name: 'cached', scopes: ['chat'] });
      const uncached = await h.root.createKey({ organizationId: org.id, name: 'uncached', scopes: ['chat'] });
      const before = await envoy.check({ headers: { authorization: `Bearer ${cached.secret}` } });
      expect(before.http_response).toBe('ok_response');

      const name = dbName(h);
      const latencies: number[] = [];
      await cutOff(name);
      try {
        const errors0 = h.app.cache.stats.storeErrors;
        let t = Date.now();
        const r = await envoy.check({ headers: { authorization: `Bearer ${uncached.secret}` } });
        latencies.push(Date.now() - t);
        expect503(r);
        expect(h.app.cache.stats.storeErrors).toBe(errors0 + 1);

        // An unknown well-formed key cannot be told from a valid one: also 503, not 401.
        t = Date.now();
        expect503(await envoy.check({ headers: { 'x-api-key': generateKey('live') } }));
        latencies.push(Date.now() - t);

        // A second try of the uncached key is not remembered as anything: 503 again.
        expect503(await envoy.check({ headers: { authorization: `Bearer ${uncached.secret}` } }));

        const ok = await envoy.check({ headers: { authorization: `Bearer ${cached.secret}` } });
        expect(ok.http_response).toBe('ok_response');
        expect(ok.status).toBeDefined();
        expect(ok.status?.code ?? 0).toBe(0);
        expect(metadataOf(ok)).toEqual({ key_id: cached.key!.id, org_id: org.id, environment: 'live', endpoint: '/v1/things' });

        // Denials that need no lookup are unaffected.
        const missing = await envoy.check({});
        expect(parseDenyBody(missing.denied_response!.body!).error.code).toBe('missing_api_key');
        expect(h.app.cache.stats.storeErrors).toBe(errors0 + 3);
        // Report the time a denial took while the pool could not connect.
        process.stdout.write(`[store-error] deny-mode 503 latencies (ms): ${latencies.join(', ')}\n`);
        for (const ms of latencies) expect(ms).toBeLessThan(5000);
      } finally {
        await restore(name);
      }

      const after = await envoy.check({ headers: { authorization: `Bearer ${uncached.secret}` } });
      expect(after.http_response).toBe('ok_response');
      expect(metadataOf(after).key_id).toBe(uncached.key!.id);
    });
  });

  describe('KEYWARD_ON_STORE_ERROR=error', () => {
    let h: Harness;
    let envoy: EnvoyClient;
    beforeAll(async () => {
      h = await startHarness('postgres', { authz: { onStoreError: 'error' } });
      envoy = new EnvoyClient(h.app.authzPort);
    });
    afterAll(async () => {
      envoy.close();
      await h.stop();
    });

    it('the Check RPC fails with UNAVAILABLE for an uncached key; a cached key is still allowed', async () => {
      const org = await h.root.createOrganization({ name: 'Acme' });
      const cached = await h.root.createKey({ organizationId: org.id, name: 'cached', scopes: ['chat'] });
      const uncached = await h.root.createKey({ organizationId: org.id, name: 'uncached', scopes: ['chat'] });
      expect((await envoy.check({ headers: { 'x-api-key': cached.secret } })).http_response).toBe('ok_response');

      const name = dbName(h);
      await cutOff(name);
      try {
        const e = await rpcError(envoy.check({ headers: { 'x-api-key': uncached.secret } }));
        expect(e.code).toBe(grpcStatus.UNAVAILABLE);
        expect(e.code).toBe(14);
        expect(e.metadata.get('x-error-code')).toEqual(['store_unavailable']);

        const ok = await envoy.check({ headers: { 'x-api-key': cached.secret } });
        expect(ok.http_response).toBe('ok_response');
        expect(metadataOf(ok).key_id).toBe(cached.key!.id);

        // Requests decided without the store are answered normally.
        const missing = await envoy.check({});
        expect(missing.status?.code).toBe(16);
      } finally {
        await restore(name);
      }
      expect((await envoy.check({ headers: { 'x-api-key': uncached.secret } })).http_response).toBe('ok_response');
    });
  });
});
