import { DIALECTS } from './support/databases';
import { startHarness, type Harness } from './support/harness';
import { EnvoyClient, headerMap, metadataOf } from './support/envoy-client';

describe.each(DIALECTS)('Check smoke on %s', (dialect) => {
  let h: Harness;
  let envoy: EnvoyClient;
  beforeAll(async () => {
    h = await startHarness(dialect);
    envoy = new EnvoyClient(h.app.authzPort);
  });
  afterAll(async () => {
    envoy.close();
    await h.stop();
  });

  it('allows a created key and denies a missing one', async () => {
    const org = await h.root.createOrganization({ name: 'Acme' });
    const { key, secret } = await h.root.createKey({ organizationId: org.id, name: 'k', scopes: ['chat'] });
    const ok = await envoy.check({ headers: { authorization: `Bearer ${secret}` } });
    expect(ok.status?.code ?? 0).toBe(0);
    expect(ok.http_response).toBe('ok_response');
    expect(headerMap(ok.ok_response?.headers)['x-keyward-key-id']).toEqual({ value: key!.id, append: false });
    expect(ok.ok_response?.headers_to_remove).toEqual(['authorization']);
    expect(metadataOf(ok)).toEqual({ key_id: key!.id, org_id: org.id, environment: 'live', endpoint: '/v1/things' });
    const denied = await envoy.check({});
    expect(denied.status?.code).toBe(16);
    expect(denied.denied_response?.status?.code).toBe(401);
    expect(JSON.parse(denied.denied_response!.body!)).toEqual({ error: { code: 'missing_api_key', message: 'an API key is required' } });
  });
});
