/**
 * Bounds on what one request can report (RecordUsage and the access log): at most
 * 10^9 tokens, USD 1,000,000 and 30 days of duration. Without them, 2,000 RecordUsage
 * records of 2^53-1 tokens summed past PostgreSQL's bigint in the monthly aggregate:
 * that batch failed, went back to the buffer and failed again at every flush, and
 * every later event (the Checks' request counts too) waited behind it. Now such a
 * record is refused naming its field, and the most that may be reported, 2,000
 * times over, is written with the Check after it.
 */
import { startHarness, failure, type Harness } from './support/harness';
import { EnvoyClient } from './support/envoy-client';
import { DIALECTS } from './support/databases';
import { entryToUsage } from '../src/usage/access-log';
import { USAGE_VALUE_MAX } from '../src/usage/record-usage';
import { HTTPAccessLogEntry } from '../src/gen/envoy/data/accesslog/v3/accesslog';

describe.each(DIALECTS)('usage value bounds (%s)', (dialect) => {
  let h: Harness;
  let keyId: string;
  let orgId: string;
  let secret: string;
  beforeAll(async () => {
    h = await startHarness(dialect);
    const org = await h.root.createOrganization({ name: 'Bounds', rateLimitPerMinute: 0 });
    orgId = org.id;
    const k = await h.root.createKey({ organizationId: org.id, name: 'k', scopes: ['chat'] });
    keyId = k.key!.id;
    secret = k.secret;
  });
  afterAll(async () => {
    await h?.stop();
  });

  const record = (o: { tokens?: number; costUsd?: number; durationMs?: number }) => ({
    keyId,
    requestId: '',
    endpoint: '/v1/chat',
    method: 'POST',
    statusCode: 200,
    durationMs: 0,
    tokens: 0,
    costUsd: 0,
    time: undefined,
    ...o,
  });

  it('refuses a record beyond the bounds, naming the field', async () => {
    const cases: [Record<string, number>, string][] = [
      [{ tokens: USAGE_VALUE_MAX.tokens + 1 }, 'records[0].tokens'],
      [{ tokens: Number.MAX_SAFE_INTEGER }, 'records[0].tokens'],
      [{ costUsd: USAGE_VALUE_MAX.costUsd + 0.01 }, 'records[0].cost_usd'],
      [{ costUsd: 1e308 }, 'records[0].cost_usd'],
      [{ durationMs: USAGE_VALUE_MAX.durationMs + 1 }, 'records[0].duration_ms'],
    ];
    for (const [o, field] of cases) {
      const e = await failure(h.root.recordUsage({ records: [record(o)] }));
      expect({ code: e.code, field: e.field, reason: e.info?.metadata.violation }).toEqual({
        code: 'invalid_argument',
        field,
        reason: 'out_of_range',
      });
    }
  });

  it('writes 2,000 records at the bounds and the Check after them, and reports the sums', async () => {
    const max = record({ tokens: USAGE_VALUE_MAX.tokens, costUsd: USAGE_VALUE_MAX.costUsd, durationMs: USAGE_VALUE_MAX.durationMs });
    for (let i = 0; i < 2; i++)
      expect((await h.root.recordUsage({ records: Array.from({ length: 1000 }, () => max) })).accepted).toBe(1000);
    await h.app.usage.flush();
    const envoy = new EnvoyClient(h.app.authzPort);
    try {
      expect((await envoy.check({ headers: { 'x-api-key': secret } })).status?.code ?? 0).toBe(0);
    } finally {
      envoy.close();
    }
    await h.app.usage.flush();
    expect(h.app.usage.stats()).toMatchObject({ buffered: 0, flushErrors: 0 });
    const month = h.clock.now().toISOString().slice(0, 7);
    const stats = await h.root.getUsageStats({ organizationId: orgId, month });
    expect(stats.totals).toMatchObject({ requests: 1, tokens: 2000 * USAGE_VALUE_MAX.tokens, costUsd: 2000 * USAGE_VALUE_MAX.costUsd });
  });

  it('ignores access-log tokens, cost and durations beyond the bounds', () => {
    const entry = (tokens: string, cost: string, seconds: number) =>
      entryToUsage(
        HTTPAccessLogEntry.fromPartial({
          commonProperties: {
            metadata: { filterMetadata: { 'envoy.filters.http.ext_authz': { key_id: keyId, org_id: orgId } } },
            duration: { seconds, nanos: 0 },
          },
          request: { path: '/v1/chat' },
          response: { responseHeaders: { 'x-usage-tokens': tokens, 'x-usage-cost-usd': cost } },
        }),
        { tokensHeader: 'x-usage-tokens', costHeader: 'x-usage-cost-usd' },
        h.clock.now().getTime(),
      );
    expect(entry('1000000000', '1000000', 30 * 86_400)).toMatchObject({ tokens: 1e9, costUsd: 1e6, durationMs: 30 * 86_400_000 });
    const over = entry('9007199254740991', '1e308', 30 * 86_400 + 1);
    expect(over).toBeDefined();
    expect(over).not.toHaveProperty('tokens');
    expect(over).not.toHaveProperty('costUsd');
    expect(over).not.toHaveProperty('durationMs');
  });

  it('reports a monthly sum past 2^53 - 1 as 2^53 - 1, so JavaScript clients can read it', async () => {
    const knex = (h.app.orm.em as unknown as { getKnex(): import('@mikro-orm/knex').Knex }).getKnex();
    const month = h.clock.now().toISOString().slice(0, 7);
    const big = '9007199254740993'; // 2^53 + 1: more than a double holds exactly
    await knex('usage_monthly').insert({
      organization_id: orgId,
      key_id: keyId,
      period: month,
      endpoint: '/v1/huge',
      method: 'POST',
      requests: 1,
      errors4xx: 0,
      errors5xx: 0,
      tokens: big,
      cost_usd: 0,
      duration_count: 0,
      duration_sum_ms: 0,
      duration_buckets: JSON.stringify(new Array(16).fill(0)),
    });
    const stats = await h.root.getUsageStats({ organizationId: orgId, month });
    expect(stats.totals!.tokens).toBe(Number.MAX_SAFE_INTEGER);
    expect(stats.byEndpoint.find((e) => e.endpoint === '/v1/huge')!.totals!.tokens).toBe(Number.MAX_SAFE_INTEGER);
  });
});
