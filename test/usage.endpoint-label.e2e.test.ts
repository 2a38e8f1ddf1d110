/**
 * Endpoint labels end to end on a real server: the Check counts a request under the route
 * rule's template, else keyward_endpoint, else the path with ids as `{id}`; the
 * access-log entry of the same request (streamed to the same server) lands on the same row.
 */
import { credentials, type Client } from '@grpc/grpc-js';
import { parseRouteRules } from '../src/authz/routes';
import { startHarness, type Harness } from './support/harness';
import { EnvoyClient, type WireCheckResponse } from './support/envoy-client';
import { DIALECTS } from './support/databases';
import { AccessLogServiceCtor, stream, wireEntry } from './support/access-log-wire';

const UUID = '550e8400-e29b-41d4-a716-446655440000';

describe.each(DIALECTS)('endpoint labels end to end (%s)', (dialect) => {
  let h: Harness;
  let envoy: EnvoyClient;
  let als: Client;
  let orgId: string;
  let keyId: string;
  let secret: string;
  beforeAll(async () => {
    h = await startHarness(dialect, { routes: parseRouteRules('rules:\n  - name: agents\n    path: /v1/agents/**\n', 'test') });
    const org = await h.root.createOrganization({ name: 'Labels', rateLimitPerMinute: 0 });
    orgId = org.id;
    const k = await h.root.createKey({ organizationId: org.id, name: 'k', scopes: ['chat'] });
    keyId = k.key!.id;
    secret = k.secret;
    envoy = new EnvoyClient(h.app.authzPort);
    als = new AccessLogServiceCtor(`127.0.0.1:${h.app.authzPort}`, credentials.createInsecure());
  });
  afterAll(async () => {
    envoy?.close();
    als?.close();
    await h?.stop();
  });

  const metadataEndpoint = (r: WireCheckResponse) => r.dynamic_metadata?.fields?.endpoint?.stringValue;

  /** One request: its Check, then its access-log entry carrying the Check's metadata as Envoy copies it. */
  async function request(method: string, path: string, contextExtensions?: Record<string, string>, withMetadata = true) {
    const r = await envoy.check({ method, path, headers: { 'x-api-key': secret }, ...(contextExtensions && { contextExtensions }) });
    expect(r.status?.code ?? 0).toBe(0);
    const md: Record<string, string> = { key_id: keyId, org_id: orgId, environment: 'live' };
    const endpoint = metadataEndpoint(r);
    if (withMetadata && endpoint !== undefined) md.endpoint = endpoint;
    await stream(als, [
      { identifier: { node: { id: 'envoy-1' }, log_name: 'keyward' } },
      {
        http_logs: {
          log_entry: [
            wireEntry({
              md: { 'envoy.filters.http.ext_authz': md },
              method,
              path,
              code: 200,
              responseHeaders: { 'x-usage-tokens': '7' },
              start: h.clock.now().getTime(),
            }),
          ],
        },
      },
    ]);
    return endpoint;
  }

  it('counts the Check and its access-log entry under the same label', async () => {
    expect(await request('GET', `/v1/users/12345/orders/${UUID}?page=2`)).toBe('/v1/users/{id}/orders/{id}');
    expect(await request('GET', '/v1/agents/a1/runs/99')).toBe('/v1/agents/**');
    // A rule match wins over keyward_endpoint.
    expect(await request('POST', '/v1/agents/7', { keyward_endpoint: 'agents' })).toBe('/v1/agents/**');
    expect(await request('POST', '/v1/exports/2026', { keyward_endpoint: 'POST /v1/exports' })).toBe('POST /v1/exports');
    // An entry without the endpoint metadata (an older keyward answered): re-matched and normalised.
    await request('GET', '/v1/users/777/orders/12', undefined, false);
    await request('DELETE', '/v1/agents/x/1', undefined, false);

    await h.app.usage.flush();
    const month = h.clock.now().toISOString().slice(0, 7);
    const stats = await h.root.getUsageStats({ organizationId: orgId, month });
    const rows = stats.byEndpoint
      .map((e) => [e.endpoint, e.method, e.totals?.requests, e.totals?.tokens])
      .sort((a, b) => String(a[0]).localeCompare(String(b[0])) || String(a[1]).localeCompare(String(b[1])));
    expect(rows).toEqual([
      ['/v1/agents/**', 'DELETE', 1, 7],
      ['/v1/agents/**', 'GET', 1, 7],
      ['/v1/agents/**', 'POST', 1, 7],
      ['/v1/users/{id}/orders/{id}', 'GET', 2, 14],
      ['POST /v1/exports', 'POST', 1, 7],
    ]);
  });
});
