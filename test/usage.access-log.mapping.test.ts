/** entryToUsage, unit by unit: how one Envoy access-log entry becomes a usage event, or none. */
import { entryToUsage, parseCost, parseTokens } from '../src/usage/access-log';
import { HTTPAccessLogEntry } from '../src/gen/envoy/data/accesslog/v3/accesslog';
import { RequestMethod } from '../src/gen/envoy/config/core/v3/base';
import { newId } from '../src/util/ids';

const OPTS = { tokensHeader: 'x-usage-tokens', costHeader: 'x-usage-cost-usd' };
const START = Date.UTC(2026, 5, 30, 23, 59, 58, 250); // 2026-06-30
const NOW = Date.UTC(2026, 6, 1, 0, 0, 5); // 2026-07-01, the clock

describe('entryToUsage', () => {
  const org = newId('org', START);
  const key = newId('key', START);
  const entry = (over: {
    method?: RequestMethod;
    path?: string;
    originalPath?: string;
    headers?: Record<string, string>;
    responseHeaders?: Record<string, string>;
    md?: Record<string, unknown> | undefined;
    start?: Date;
    code?: number;
  }) =>
    HTTPAccessLogEntry.fromPartial({
      commonProperties: {
        metadata: { filterMetadata: { 'envoy.filters.http.ext_authz': 'md' in over ? over.md : { key_id: key, org_id: org } } },
        startTime: over.start,
      },
      request: {
        requestMethod: over.method ?? RequestMethod.GET,
        path: over.path ?? '/p',
        originalPath: over.originalPath ?? '',
        requestHeaders: over.headers ?? {},
      },
      response: { responseCode: over.code, responseHeaders: over.responseHeaders ?? {} },
    });
  const usage = (o: Parameters<typeof entry>[0]) => entryToUsage(entry(o), OPTS, NOW);

  it('maps an entry to a detail-only accesslog event', () => {
    expect(usage({ code: 201, start: new Date(START) })).toEqual({
      at: START,
      organizationId: org,
      keyId: key,
      endpoint: '/p',
      method: 'GET',
      requests: 0,
      statusCode: 201,
      source: 'accesslog',
    });
    expect(usage({})?.at).toBe(NOW);
    expect(usage({ code: 0 })).not.toHaveProperty('statusCode');
  });

  it('needs keyward metadata: key_id and org_id ids', () => {
    expect(usage({ md: undefined })).toBeUndefined();
    expect(usage({ md: { key_id: key } })).toBeUndefined();
    expect(usage({ md: { key_id: key, org_id: 5 } })).toBeUndefined();
    expect(usage({ md: { key_id: org, org_id: key } })).toBeUndefined();
    expect(usage({ md: { key_id: 'key_short', org_id: org } })).toBeUndefined();
    expect(entryToUsage(HTTPAccessLogEntry.fromPartial({}), OPTS, NOW)).toBeUndefined();
  });

  it('strips the query and fragment; falls back to original_path, then /', () => {
    expect(usage({ path: '/v1/chat?model=x&y=1' })?.endpoint).toBe('/v1/chat');
    expect(usage({ path: '/a#frag?no' })?.endpoint).toBe('/a');
    expect(usage({ path: '', originalPath: '/orig?q' })?.endpoint).toBe('/orig');
    expect(usage({ path: '', originalPath: '' })?.endpoint).toBe('/');
    expect(usage({ path: '?only=query' })?.endpoint).toBe('/');
    expect(usage({ path: '/' + 'a'.repeat(600) })?.endpoint).toHaveLength(512);
  });

  it('maps request methods; unspecified uses :method, else UNKNOWN', () => {
    const names: [RequestMethod, string][] = [
      [RequestMethod.GET, 'GET'],
      [RequestMethod.HEAD, 'HEAD'],
      [RequestMethod.POST, 'POST'],
      [RequestMethod.PUT, 'PUT'],
      [RequestMethod.DELETE, 'DELETE'],
      [RequestMethod.CONNECT, 'CONNECT'],
      [RequestMethod.OPTIONS, 'OPTIONS'],
      [RequestMethod.TRACE, 'TRACE'],
      [RequestMethod.PATCH, 'PATCH'],
    ];
    for (const [m, name] of names) expect(usage({ method: m })?.method).toBe(name);
    expect(usage({ method: RequestMethod.METHOD_UNSPECIFIED, headers: { ':method': 'purge' } })?.method).toBe('PURGE');
    expect(usage({ method: RequestMethod.METHOD_UNSPECIFIED })?.method).toBe('UNKNOWN');
    expect(usage({ method: RequestMethod.METHOD_UNSPECIFIED, headers: { ':method': 'BAD METHOD' } })?.method).toBe('UNKNOWN');
    expect(usage({ method: RequestMethod.UNRECOGNIZED, headers: { ':method': 'X'.repeat(17) } })?.method).toBe('UNKNOWN');
  });

  it('reads tokens and cost from the configured headers, case-insensitively, ignoring bad numbers', () => {
    const with_ = (tokens: string, cost: string) => usage({ responseHeaders: { 'x-usage-tokens': tokens, 'X-Usage-Cost-USD': cost } });
    expect(with_('42', '0.5')).toMatchObject({ tokens: 42, costUsd: 0.5 });
    expect(with_(' 7 ', '2E-3')).toMatchObject({ tokens: 7, costUsd: 0.002 });
    expect(with_('0', '0')).toMatchObject({ tokens: 0, costUsd: 0 });
    for (const [t, c] of [
      ['-1', '-0.5'],
      ['1.5', 'NaN'],
      ['12abc', 'Infinity'],
      ['', ''],
      ['9007199254740993', '1e999'],
      ['0x10', '0x10'],
      ['1e3', '1,5'],
    ]) {
      const e = with_(t!, c!)!;
      expect(e).not.toHaveProperty('tokens');
      expect(e).not.toHaveProperty('costUsd');
    }
    expect(usage({ responseHeaders: {} })).not.toHaveProperty('tokens');
    expect(parseTokens('1000000000')).toBe(1_000_000_000);
    expect(parseTokens('1000000001')).toBeUndefined();
    expect(parseTokens('9007199254740991')).toBeUndefined();
    expect(parseCost('1000000')).toBe(1_000_000);
    expect(parseCost('1000000.01')).toBeUndefined();
    expect(parseCost('.25')).toBe(0.25);
    expect(parseCost('+3')).toBe(3);
  });

  it('takes the duration, else the time to the last byte sent, in ms', () => {
    const d = (common: Record<string, unknown>) =>
      entryToUsage(
        HTTPAccessLogEntry.fromPartial({
          commonProperties: { metadata: { filterMetadata: { 'envoy.filters.http.ext_authz': { key_id: key, org_id: org } } }, ...common },
          request: { path: '/' },
        }),
        OPTS,
        NOW,
      )?.durationMs;
    expect(d({ duration: { seconds: 1, nanos: 250_000_000 } })).toBe(1250);
    expect(d({ duration: { seconds: 1, nanos: 0 }, timeToLastDownstreamTxByte: { seconds: 5, nanos: 0 } })).toBe(1000);
    expect(d({ timeToLastDownstreamTxByte: { seconds: 0, nanos: 1_500_000 } })).toBe(1.5);
    expect(d({ duration: { seconds: -1, nanos: 0 } })).toBeUndefined();
    expect(d({})).toBeUndefined();
  });
});

describe('entries of denied requests', () => {
  it('are not usage, even when the key was known', async () => {
    const { entryToUsage } = await import('../src/usage/access-log');
    const { HTTPAccessLogEntry } = await import('../src/gen/envoy/data/accesslog/v3/accesslog');
    const { newId } = await import('../src/util/ids');
    const md = { key_id: newId('key', 1), org_id: newId('org', 1), environment: 'live' };
    const entry = (extra: Record<string, string>) =>
      HTTPAccessLogEntry.fromPartial({
        commonProperties: { metadata: { filterMetadata: { 'envoy.filters.http.ext_authz': { ...md, ...extra } } } },
        request: { path: '/v1/x', requestMethod: 3 },
        response: { responseCode: 429 },
      });
    const opts = { tokensHeader: 'x-usage-tokens', costHeader: 'x-usage-cost-usd' };
    expect(entryToUsage(entry({ error_code: 'rate_limit_exceeded' }), opts, 0)).toBeUndefined();
    expect(entryToUsage(entry({}), opts, 0)).toMatchObject({ keyId: md.key_id, statusCode: 429, requests: 0 });
  });
});
