/**
 * Check denials with HTTP 401 (google.rpc UNAUTHENTICATED): missing, malformed,
 * unknown, ambiguous, revoked and expired keys — each response asserted in full:
 * status, ErrorInfo, HTTP status, every header option and the JSON body.
 */
import { DIALECTS } from './support/databases';
import { startHarness, type Harness } from './support/harness';
import { EnvoyClient, metadataOf, type WireCheckResponse, type WireHeaderOption } from './support/envoy-client';
import { ErrorInfo } from '../src/gen/google/rpc/error_details';
import { generateAdminToken, generateKey } from '../src/keys/format';

const DAY = 86_400_000;
const CHALLENGE = 'Bearer realm="keyward", error="invalid_token"';
/** RFC 6750 §3.1: a request without credentials gets a challenge without an error code. */
const CHALLENGE_MISSING = 'Bearer realm="keyward"';

const MESSAGES = {
  missing_api_key: 'an API key is required',
  invalid_api_key: 'the API key is not valid',
  ambiguous_credentials: 'the request carries more than one different API key',
  revoked_api_key: 'the API key has been revoked',
  expired_api_key: 'the API key has expired',
} as const;
type Code401 = keyof typeof MESSAGES;

/** Header options as sorted [name, value, append] triples; append 'unset' when absent on the wire. */
function headerTriples(opts: WireHeaderOption[] | undefined): [string, string, boolean | 'unset'][] {
  return (opts ?? [])
    .map((o): [string, string, boolean | 'unset'] => [
      o.header.key,
      o.header.value ?? '',
      o.append === undefined ? 'unset' : (o.append.value ?? false),
    ])
    .sort((a, b) => a[0].localeCompare(b[0]));
}

/** Asserts a complete 401 denial. */
function expect401(r: WireCheckResponse, code: Code401, details: Record<string, unknown> = {}): void {
  expect(r.http_response).toBe('denied_response');
  expect(r.ok_response).toBeUndefined();
  expect(r.status?.code).toBe(16);
  expect(r.status?.message).toBe(MESSAGES[code]);
  expect(r.status?.details?.map((d) => d.type_url)).toEqual(['type.googleapis.com/google.rpc.ErrorInfo']);
  expect(ErrorInfo.decode(r.status!.details![0]!.value)).toEqual({ reason: code, domain: 'keyward', metadata: {} });
  expect(r.denied_response?.status?.code).toBe(401);
  expect(headerTriples(r.denied_response?.headers)).toEqual([
    ['content-type', 'application/json', false],
    ['www-authenticate', code === 'missing_api_key' ? CHALLENGE_MISSING : CHALLENGE, false],
    ['x-keyward-error-code', code, false],
  ]);
  expect(JSON.parse(r.denied_response!.body!)).toEqual({ error: { code, message: MESSAGES[code], ...details } });
}

/** Replaces the last character (part of the checksum) with another base62 character. */
function badChecksum(key: string): string {
  const last = key[key.length - 1];
  return key.slice(0, -1) + (last === 'A' ? 'B' : 'A');
}

describe.each(DIALECTS)('Check 401 denials on %s', (dialect) => {
  let h: Harness;
  let envoy: EnvoyClient;
  let orgId: string;
  let n = 0;

  beforeAll(async () => {
    h = await startHarness(dialect);
    envoy = new EnvoyClient(h.app.authzPort);
    orgId = (await h.root.createOrganization({ name: 'Acme' })).id;
  });
  afterAll(async () => {
    envoy.close();
    await h.stop();
  });

  const newKey = (extra: { expiresInDays?: number } = {}) =>
    h.root.createKey({ organizationId: orgId, name: `k${++n}`, scopes: ['chat'], ...extra });
  const stats = () => ({ ...h.app.cache.stats });

  describe('missing_api_key', () => {
    it.each<[string, Record<string, string>]>([
      ['no headers at all', {}],
      ['an empty x-api-key', { 'x-api-key': '' }],
      ['a blank x-api-key', { 'x-api-key': '   ' }],
      ['"Bearer" without a key', { authorization: 'Bearer ' }],
      ['a Basic authorization', { authorization: 'Basic dXNlcjpwYXNz' }],
      ['only unrelated headers', { 'x-other': 'kw_live_x', cookie: 'a=b' }],
    ])('%s', async (_name, headers) => {
      const before = stats();
      const r = await envoy.check({ headers });
      expect401(r, 'missing_api_key');
      expect(metadataOf(r)).toEqual({ error_code: 'missing_api_key' });
      expect(stats()).toEqual(before);
    });
  });

  describe('invalid_api_key for a malformed key, without asking the store', () => {
    const valid = () => generateKey('live');
    it.each<[string, () => Record<string, string>]>([
      ['an arbitrary word', () => ({ authorization: 'Bearer not-a-key' })],
      ['a truncated key', () => ({ authorization: `Bearer ${valid().slice(0, -1)}` })],
      ['a key with an extra character', () => ({ authorization: `Bearer ${valid()}A` })],
      ['an unknown environment', () => ({ authorization: `Bearer kw_prod_${valid().slice('kw_live_'.length)}` })],
      ['a bad checksum', () => ({ authorization: `Bearer ${badChecksum(valid())}` })],
      ['a bad checksum in x-api-key', () => ({ 'x-api-key': badChecksum(generateKey('test')) })],
      ['a non-base62 character', () => ({ 'x-api-key': `${valid().slice(0, 20)}-${valid().slice(21)}` })],
      ['a well-formed admin token', () => ({ authorization: `Bearer ${generateAdminToken()}` })],
    ])('%s', async (_name, headers) => {
      const before = stats();
      const r = await envoy.check({ headers: headers() });
      expect401(r, 'invalid_api_key');
      expect(metadataOf(r)).toEqual({ error_code: 'invalid_api_key' });
      expect(stats()).toEqual(before);
    });

    it('a stored key with one checksum character changed is not looked up either', async () => {
      const { secret } = await newKey();
      const before = stats();
      expect401(await envoy.check({ headers: { authorization: `Bearer ${badChecksum(secret)}` } }), 'invalid_api_key');
      expect(stats()).toEqual(before);
    });
  });

  it('invalid_api_key for an unknown well-formed key; the second Check is a negative-cache hit', async () => {
    const unknown = generateKey('live');
    const s0 = stats();
    const first = await envoy.check({ headers: { authorization: `Bearer ${unknown}` } });
    expect401(first, 'invalid_api_key');
    expect(metadataOf(first)).toEqual({ error_code: 'invalid_api_key' });
    const s1 = stats();
    expect(s1.misses).toBe(s0.misses + 1);
    expect(s1.negativeHits).toBe(s0.negativeHits);

    const second = await envoy.check({ headers: { 'x-api-key': unknown } });
    expect401(second, 'invalid_api_key');
    const s2 = stats();
    expect(s2.misses).toBe(s1.misses);
    expect(s2.negativeHits).toBe(s1.negativeHits + 1);
    expect(s2.hits).toBe(s1.hits);
  });

  describe('ambiguous_credentials', () => {
    let a: string;
    let b: string;
    beforeAll(async () => {
      a = (await newKey()).secret;
      b = (await newKey()).secret;
    });

    it.each<[string, () => { headers?: Record<string, string>; rawHeaders?: [string, string][] }]>([
      ['authorization and x-api-key differ', () => ({ headers: { authorization: `Bearer ${a}`, 'x-api-key': b } })],
      [
        'two x-api-key headers (header_map)',
        () => ({
          rawHeaders: [
            ['x-api-key', a],
            ['x-api-key', b],
          ],
        }),
      ],
      ['x-api-key joined as "k1, k2"', () => ({ headers: { 'x-api-key': `${a}, ${b}` } })],
      ['a valid key and a malformed one', () => ({ headers: { authorization: `Bearer ${a}`, 'x-api-key': 'garbage' } })],
    ])('%s: denied, and neither key is tried', async (_name, opts) => {
      const before = stats();
      const r = await envoy.check(opts());
      expect401(r, 'ambiguous_credentials');
      expect(metadataOf(r)).toEqual({ error_code: 'ambiguous_credentials' });
      expect(stats()).toEqual(before);
    });

    it.each<[string, () => { headers?: Record<string, string>; rawHeaders?: [string, string][] }]>([
      ['in authorization and x-api-key', () => ({ headers: { authorization: `Bearer ${a}`, 'x-api-key': a } })],
      [
        'twice in header_map',
        () => ({
          rawHeaders: [
            ['x-api-key', a],
            ['X-Api-Key', a],
          ],
        }),
      ],
      ['joined with itself', () => ({ headers: { 'x-api-key': `${a}, ${a}` } })],
    ])('the same key %s is one credential and is allowed', async (_name, opts) => {
      const r = await envoy.check(opts());
      expect(r.http_response).toBe('ok_response');
      expect(r.status).toBeDefined();
      expect(r.status?.code ?? 0).toBe(0);
    });
  });

  it('revoked_api_key, also for a key that was cached as valid', async () => {
    const { key, secret } = await newKey();
    const ok = await envoy.check({ headers: { authorization: `Bearer ${secret}` } });
    expect(ok.http_response).toBe('ok_response');
    await h.root.revokeKey({ id: key!.id, reason: 'leaked' });
    const r = await envoy.check({ headers: { authorization: `Bearer ${secret}` } });
    expect401(r, 'revoked_api_key');
    expect(metadataOf(r)).toEqual({ error_code: 'revoked_api_key', key_id: key!.id, org_id: orgId, environment: 'live' });
  });

  it('expired_api_key with expired_at, exactly at the expiry and not a millisecond before', async () => {
    const t0 = h.clock.now().getTime();
    const { key, secret } = await newKey({ expiresInDays: 1 });
    const expiresAt = new Date(t0 + DAY).toISOString();
    expect(key!.expiresAt?.toISOString()).toBe(expiresAt);

    h.clock.advance(DAY - 1);
    const before = await envoy.check({ headers: { 'x-api-key': secret } });
    expect(before.http_response).toBe('ok_response');

    h.clock.advance(1);
    const r = await envoy.check({ headers: { 'x-api-key': secret } });
    expect401(r, 'expired_api_key', { expired_at: expiresAt });
    expect(metadataOf(r)).toEqual({ error_code: 'expired_api_key', key_id: key!.id, org_id: orgId, environment: 'live' });
  });
});
