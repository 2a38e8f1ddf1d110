/**
 * A Check carrying a great many distinct x-keyward-* headers is answered in time
 * linear in their number: each is listed once in headers_to_remove. The duplicate
 * test used to scan the list found so far for every header (quadratic): 50,000 such
 * headers, 1 MB of request, held the event loop for about 25 s. Here 100,000 (2 MB,
 * under the 4 MiB limit), in `headers` and in `header_map`, must be answered within
 * a gRPC deadline of 30 s, which the quadratic scan overran several times over.
 */
import { startHarness, type Harness } from './support/harness';
import { checkRequest, RawClient } from './support/raw-grpc';
import { CheckResponse } from '../src/gen/envoy/service/auth/v3/external_auth';
import { readAttributes } from '../src/authz/request';
import { RouteTable } from '../src/authz/routes';

const CHECK = '/envoy.service.auth.v3.Authorization/Check';
const N = 100_000;

describe('Check with many x-keyward-* headers', () => {
  let h: Harness;
  let client: RawClient;
  let secret: string;
  beforeAll(async () => {
    h = await startHarness('sqlite');
    client = new RawClient(h.app.authzPort);
    const org = await h.root.createOrganization({ name: 'Spoof', rateLimitPerMinute: 0 });
    secret = (await h.root.createKey({ organizationId: org.id, name: 'k', scopes: ['chat'] })).secret;
  });
  afterAll(async () => {
    client?.close();
    await h?.stop();
  });

  const names = Array.from({ length: N }, (_, i) => `x-keyward-s${i}`);

  it.each(['headers', 'header_map'] as const)('removes each of 100,000 spoofed headers once (%s)', async (form) => {
    const bytes =
      form === 'headers'
        ? checkRequest({ headers: [...names.map((n): [string, string] => [n, 'v']), ['x-api-key', secret]] })
        : checkRequest({
            headerMap: [
              ...names.map((n) => ({ key: n, raw: 'v' })),
              ...names.slice(0, 1000).map((n) => ({ key: n.toUpperCase(), raw: 'again' })),
              { key: 'x-api-key', raw: secret },
            ],
          });
    expect(bytes.length).toBeLessThan(4 * 1024 * 1024);
    const r = await client.unary(CHECK, bytes, undefined, 30_000);
    expect(r.status).toBe(0);
    const res = CheckResponse.decode(r.response!);
    expect(res.status?.code).toBe(0);
    const removed = res.okResponse!.headersToRemove;
    expect(removed.filter((n) => n.startsWith('x-keyward-s'))).toEqual(names);
    expect(removed).toContain('x-api-key');
  });

  it('readAttributes lists a repeated spoofed header once, in first-seen order', () => {
    const input = readAttributes(
      {
        method: 'GET',
        path: '/',
        host: 'h',
        sourceAddress: '',
        contextExtensions: {},
        headers: [
          ['x-keyward-b', '1'],
          ['x-keyward-a', '2'],
          ['x-keyward-b', '3'],
          ['x-other', '4'],
          ['x-keyward-a', '5'],
        ],
      },
      { credentialHeaders: ['x-api-key'], routes: RouteTable.empty() },
    );
    expect(input.spoofed).toEqual(['x-keyward-b', 'x-keyward-a']);
  });
});
