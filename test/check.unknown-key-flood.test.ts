/**
 * A flood of random well-formed keys cannot push more than
 * KEYWARD_CACHE_MISS_QUERIES_PER_SECOND key lookups per second at the store:
 *  - within the budget, each unknown key costs one lookup and is then a negative-cache
 *    hit (no lookup) for the negative TTL;
 *  - over the budget, an uncached key gets 503 service_unavailable without a lookup
 *    (never an allow), while cached keys keep being decided from the cache;
 *  - the budget refills with the (injected) clock, one second of burst;
 *  - over the budget, an expired entry still within KEYWARD_CACHE_MAX_STALE_SECONDS is
 *    used, as during a store failure.
 * Lookups are counted from the cache's counters (misses that were not throttled are
 * exactly the queries sent to the store).
 */
import { DIALECTS } from './support/databases';
import { startHarness, type Harness } from './support/harness';
import { EnvoyClient, type WireCheckResponse } from './support/envoy-client';
import { generateKey } from '../src/keys/format';
import { parseDenyBody } from './support/deny-body';

const BUDGET = 5;

function outcome(r: WireCheckResponse): string {
  if (r.ok_response) return 'allow';
  return `${r.denied_response?.status?.code}:${parseDenyBody(r.denied_response?.body ?? '{}').error?.code}`;
}

describe.each(DIALECTS)('unknown-key flood on %s', (dialect) => {
  let h: Harness;
  let envoy: EnvoyClient;
  let orgId: string;
  beforeAll(async () => {
    h = await startHarness(dialect, { authz: { cacheMissQueriesPerSecond: BUDGET, cacheTtlSeconds: 30, cacheMaxStaleSeconds: 300 } });
    envoy = new EnvoyClient(h.app.authzPort);
    orgId = (await h.root.createOrganization({ name: 'Flood', rateLimitPerMinute: 0 })).id;
  });
  afterAll(async () => {
    envoy.close();
    await h.stop();
  });

  const check = async (key: string) => outcome(await envoy.check({ headers: { 'x-api-key': key } }));
  const lookups = () => h.app.cache.stats.misses - h.app.cache.stats.missesThrottled;

  it('spends at most the budget per second on lookups; the rest get 503 without one; cached keys stay allowed', async () => {
    const valid = (await h.root.createKey({ organizationId: orgId, name: 'valid' })).secret;
    h.clock.advance(60_000); // a full bucket
    expect(await check(valid)).toBe('allow'); // one lookup, now cached
    const before = lookups();

    const flood = Array.from({ length: 20 }, () => generateKey('live'));
    const answers: string[] = [];
    for (const k of flood) answers.push(await check(k));
    expect(answers.slice(0, BUDGET - 1)).toEqual(Array(BUDGET - 1).fill('401:invalid_api_key'));
    expect(answers.slice(BUDGET - 1)).toEqual(Array(20 - BUDGET + 1).fill('503:service_unavailable'));
    expect(lookups() - before).toBe(BUDGET - 1);

    // The cached key is decided from the cache; a known-unknown key from the negative cache.
    expect(await check(valid)).toBe('allow');
    expect(await check(flood[0]!)).toBe('401:invalid_api_key');
    expect(lookups() - before).toBe(BUDGET - 1);

    // One second later the budget is full again: BUDGET more lookups, then 503 again.
    h.clock.advance(1000);
    const more = Array.from({ length: BUDGET + 2 }, () => generateKey('test'));
    const later: string[] = [];
    for (const k of more) later.push(await check(k));
    expect(later).toEqual([...Array<string>(BUDGET).fill('401:invalid_api_key'), '503:service_unavailable', '503:service_unavailable']);
    expect(lookups() - before).toBe(2 * BUDGET - 1);
  });

  it('over the budget, an expired entry within the maximum staleness still decides; past it, 503', async () => {
    const valid = (await h.root.createKey({ organizationId: orgId, name: 'stale' })).secret;
    h.clock.advance(60_000);
    expect(await check(valid)).toBe('allow');
    h.clock.advance(31_000); // past the 30 s TTL, within 300 s of staleness
    for (let i = 0; i < BUDGET; i++) await check(generateKey('live')); // spend the budget
    const stale = h.app.cache.stats.staleServed;
    expect(await check(valid)).toBe('allow');
    expect(h.app.cache.stats.staleServed).toBe(stale + 1);

    h.clock.advance(400_000); // past TTL + staleness
    for (let i = 0; i < BUDGET + 1; i++) await check(generateKey('live'));
    expect(await check(valid)).toBe('503:service_unavailable');
  });
});
