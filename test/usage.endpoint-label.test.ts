/** The endpoint label (src/usage/endpoint.ts): precedence, id-like segments, and its properties. */
import fc from 'fast-check';
import { parseRouteRules } from '../src/authz/routes';
import { HTTPAccessLogEntry } from '../src/gen/envoy/data/accesslog/v3/accesslog';
import { entryToUsage } from '../src/usage/access-log';
import { endpointLabel, endpointPath, isIdSegment } from '../src/usage/endpoint';
import { validateRecordUsage } from '../src/usage/record-usage';
import { newId } from '../src/util/ids';

const UUID = '550e8400-e29b-41d4-a716-446655440000';

describe('endpointPath', () => {
  it.each([
    ['/v1/users/12345/orders/' + UUID, '/v1/users/{id}/orders/{id}'],
    ['/v1/users/12345?expand=1#top', '/v1/users/{id}'],
    ['/v1/users/0', '/v1/users/{id}'],
    ['/v1/items/' + UUID.toUpperCase(), '/v1/items/{id}'],
    ['/v1/commits/0123456789abcdef', '/v1/commits/{id}'],
    ['/v1/commits/0123456789abcde', '/v1/commits/0123456789abcde'], // 15 hex: kept
    ['/v1/objects/a1B2c3D4e5F6g7H8i9J0', '/v1/objects/{id}'], // 20 base62, mixed
    ['/v1/objects/a1B2c3D4e5F6g7H8i9J', '/v1/objects/a1B2c3D4e5F6g7H8i9J'], // 19: kept
    ['/v1/objects/abcdefghijklmnopqrstuvwxyz', '/v1/objects/abcdefghijklmnopqrstuvwxyz'], // letters only: kept
    ['/v1/chat/completions', '/v1/chat/completions'],
    ['/v2/users/me', '/v2/users/me'],
    ['//v1//users/./42/../43/', '/v1/users/{id}/'],
    ['/v1/users/%31%32', '/v1/users/{id}'], // unreserved escapes decoded first
    ['/v1/users/{id}', '/v1/users/{id}'],
    ['', '/'],
    ['v1/42', '/v1/{id}'],
  ])('%s → %s', (path, label) => {
    expect(endpointPath(path)).toBe(label);
  });

  it('cuts labels to 512 characters', () => {
    expect(endpointPath('/' + 'a'.repeat(600))).toHaveLength(512);
  });

  it('isIdSegment: numbers, UUIDs, long hex, long mixed base62 only', () => {
    for (const s of ['1', '007', UUID, 'DEADBEEF0DEADBEEF', 'abc123abc123abc123ab']) expect(isIdSegment(s)).toBe(true);
    for (const s of [
      '',
      'v1',
      'users',
      '{id}',
      '12a',
      'deadbeef',
      '550e8400-e29b-41d4-a716',
      'a'.repeat(30),
      'deadbeefdeadbeefdead',
      '1.5',
      '-1',
    ])
      expect(isIdSegment(s)).toBe(false);
  });

  const segment = fc.oneof(
    fc.constantFrom('v1', 'users', 'orders', '.', '..', '', 'me', '{id}', '%2F', '%41', 'a-b'),
    fc.nat().map(String),
    fc.uuid(),
    fc.stringMatching(/^[0-9a-f]{12,24}$/),
    fc.stringMatching(/^[A-Za-z0-9]{1,30}$/),
  );
  const path = fc
    .tuple(fc.array(segment, { maxLength: 10 }), fc.constantFrom('', '?q=1', '#f'), fc.boolean())
    .map(([segments, tail, lead]) => (lead ? '/' : '') + segments.join('/') + tail);

  it('is idempotent, starts with /, never has // and never keeps a UUID or number segment', () => {
    fc.assert(
      fc.property(path, (p) => {
        const label = endpointPath(p);
        expect(endpointPath(label)).toBe(label);
        expect(label.startsWith('/')).toBe(true);
        expect(label).not.toContain('//');
        for (const s of label.split('/')) {
          expect(s).not.toMatch(/^[0-9]+$/);
          expect(s).not.toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i);
        }
      }),
      { numRuns: 2000 },
    );
  });
});

describe('endpointLabel', () => {
  it('prefers the route template, then keyward_endpoint, then the path', () => {
    const path = '/v1/users/12345';
    expect(endpointLabel({ path, routeTemplate: '/v1/users/**', extensionEndpoint: 'users' })).toBe('/v1/users/**');
    expect(endpointLabel({ path, extensionEndpoint: 'GET users' })).toBe('GET users');
    expect(endpointLabel({ path, routeTemplate: '', extensionEndpoint: '' })).toBe('/v1/users/{id}');
    expect(endpointLabel({ path })).toBe('/v1/users/{id}');
  });
});

describe('the access log and RecordUsage use the same label', () => {
  const org = newId('org', 0);
  const key = newId('key', 0);
  const routes = parseRouteRules('rules:\n  - path: /v1/agents/**\n', 'test');
  const entry = (path: string, md: Record<string, string> = {}) =>
    HTTPAccessLogEntry.fromPartial({
      commonProperties: { metadata: { filterMetadata: { 'envoy.filters.http.ext_authz': { key_id: key, org_id: org, ...md } } } },
      request: { path, authority: 'api.example.com' },
    });
  const opts = { tokensHeader: 'x-usage-tokens', costHeader: 'x-usage-cost-usd', routes };

  it('takes the Check’s endpoint metadata, else labels the path with the same route rules', () => {
    expect(entryToUsage(entry('/v1/x/1', { endpoint: 'POST /v1/exports' }), opts, 0)?.endpoint).toBe('POST /v1/exports');
    expect(entryToUsage(entry('/v1/agents/a/42'), opts, 0)?.endpoint).toBe('/v1/agents/**');
    expect(entryToUsage(entry('/v1/users/7/orders/' + UUID + '?x=1'), opts, 0)?.endpoint).toBe('/v1/users/{id}/orders/{id}');
    expect(entryToUsage(entry(''), opts, 0)?.endpoint).toBe('/');
  });

  it('RecordUsage labels its endpoint path; an explicit template stays', () => {
    const records = [
      { keyId: key, endpoint: '/v1/users/12345?x=1' },
      { keyId: key, endpoint: '/v1/users/{id}' },
    ];
    const [a, b] = validateRecordUsage({ records: records as never }, 0);
    expect([a!.endpoint, b!.endpoint]).toEqual(['/v1/users/{id}', '/v1/users/{id}']);
  });
});
