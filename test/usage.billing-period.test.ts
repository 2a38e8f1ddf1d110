/**
 * Billing periods (issue 13): GetUsageStats and `keyward usage --billing-period` sum the
 * daily aggregates of a period spanning two calendar months, the calendar month is
 * unchanged, GetQuota reports `used` for an organization without a quota, and a
 * malformed month with billing_period is invalid_argument naming `month`.
 */
import { DIALECTS } from './support/databases';
import { failure, startHarness, TEST_ADMIN_TOKEN, type Harness } from './support/harness';
import { EnvoyClient } from './support/envoy-client';
import { runCli } from '../src/cli/main';

const PERIOD_START = new Date(Date.UTC(2026, 4, 15));
const PERIOD_END = new Date(Date.UTC(2026, 5, 15));

describe.each(DIALECTS)('billing-period usage on %s', (dialect) => {
  let h: Harness;
  let envoy: EnvoyClient;
  let orgId: string;
  let keyA: string;
  let keyB: string;
  beforeAll(async () => {
    h = await startHarness(dialect);
    envoy = new EnvoyClient(h.app.authzPort);
    h.clock.set(Date.UTC(2026, 4, 1, 8));
    const org = await h.root.createOrganization({ name: 'anchored', rateLimitPerMinute: 0, billingAnchorDay: 15 });
    orgId = org.id;
    const a = await h.root.createKey({ organizationId: orgId, name: 'a', scopes: [] });
    const b = await h.root.createKey({ organizationId: orgId, name: 'b', scopes: [] });
    keyA = a.key!.id;
    keyB = b.key!.id;
    const check = async (secret: string, path: string, at: number) => {
      h.clock.set(at);
      const r = await envoy.check({ headers: { 'x-api-key': secret }, method: 'GET', path });
      expect(r.http_response).toBe('ok_response');
    };
    // Before the period (May 14): calendar May only.
    await check(a.secret, '/v1/models', Date.UTC(2026, 4, 14, 23, 59));
    // In the period: May 15, May 31, June 1, June 14.
    await check(a.secret, '/v1/chat', Date.UTC(2026, 4, 15, 0, 0));
    await check(b.secret, '/v1/chat', Date.UTC(2026, 4, 31, 12));
    await check(a.secret, '/v1/models', Date.UTC(2026, 5, 1, 0, 30));
    await check(a.secret, '/v1/chat', Date.UTC(2026, 5, 14, 23, 59));
    // After the period (June 15).
    await check(b.secret, '/v1/chat', Date.UTC(2026, 5, 15, 0, 0));
    // Nothing flushed yet: GetQuota (run first) and GetUsageStats flush this process's buffer.
    h.clock.set(Date.UTC(2026, 5, 10, 12));
  });
  afterAll(async () => {
    envoy.close();
    await h.stop();
  });

  it('GetQuota reports used for an organization without a quota', async () => {
    const quota = await h.root.getQuota({ organizationId: orgId });
    expect(quota).toMatchObject({ limit: 0, used: 4, remaining: 0, percentUsed: 0 });
    expect(quota.periodStart).toEqual(PERIOD_START);
    expect(quota.periodEnd).toEqual(PERIOD_END);
  });

  it('reports a billing period spanning two months by key, endpoint and day', async () => {
    for (const request of [
      { organizationId: orgId, billingPeriod: true },
      { organizationId: orgId, billingPeriod: true, month: '2026-05' },
    ]) {
      const stats = await h.root.getUsageStats(request);
      expect(stats).toMatchObject({ organizationId: orgId, month: '2026-05', billingPeriod: true, keyId: '' });
      expect(stats.periodStart).toEqual(PERIOD_START);
      expect(stats.periodEnd).toEqual(PERIOD_END);
      expect(stats.totals?.requests).toBe(4);
      expect(stats.byKey.map((k) => [k.keyId, k.totals?.requests])).toEqual([
        [keyA, 3],
        [keyB, 1],
      ]);
      expect(stats.byEndpoint.map((e) => [e.endpoint, e.method, e.totals?.requests])).toEqual([
        ['/v1/chat', 'GET', 3],
        ['/v1/models', 'GET', 1],
      ]);
      expect(stats.byDay.map((d) => [d.day, d.totals?.requests])).toEqual([
        ['2026-05-15', 1],
        ['2026-05-31', 1],
        ['2026-06-01', 1],
        ['2026-06-14', 1],
      ]);
    }
    const ofKey = await h.root.getUsageStats({ organizationId: orgId, billingPeriod: true, keyId: keyB });
    expect(ofKey.totals?.requests).toBe(1);
    expect(ofKey.byDay.map((d) => d.day)).toEqual(['2026-05-31']);
  });

  it('still reports the calendar month, with its bounds', async () => {
    const may = await h.root.getUsageStats({ organizationId: orgId, month: '2026-05' });
    expect(may).toMatchObject({ month: '2026-05', billingPeriod: false });
    expect(may.periodStart).toEqual(new Date(Date.UTC(2026, 4, 1)));
    expect(may.periodEnd).toEqual(new Date(Date.UTC(2026, 5, 1)));
    expect(may.totals?.requests).toBe(3);
    expect(may.byDay.map((d) => [d.day, d.totals?.requests])).toEqual([
      ['2026-05-14', 1],
      ['2026-05-15', 1],
      ['2026-05-31', 1],
    ]);
    const june = await h.root.getUsageStats({ organizationId: orgId });
    expect(june.month).toBe('2026-06');
    expect(june.totals?.requests).toBe(3);
  });

  it('keyward usage --billing-period prints the period and its bounds', async () => {
    const cli = async (argv: string[]) => {
      let stdout = '';
      let stderr = '';
      const code = await runCli(argv, {
        stdout: { write: (s: string) => (stdout += s) },
        stderr: { write: (s: string) => (stderr += s) },
        env: { KEYWARD_ADMIN_TOKEN: TEST_ADMIN_TOKEN, KEYWARD_ADMIN_URL: `127.0.0.1:${h.app.adminPort}` },
      });
      return { code, stdout, stderr };
    };
    const json = await cli(['usage', '--org', orgId, '--billing-period', '--json']);
    expect(json.stderr).toBe('');
    expect(json.code).toBe(0);
    const doc = JSON.parse(json.stdout) as Record<string, unknown> & { totals: { requests: number } };
    expect(doc).toMatchObject({
      billingPeriod: true,
      month: '2026-05',
      periodStart: PERIOD_START.toISOString(),
      periodEnd: PERIOD_END.toISOString(),
    });
    expect(doc.totals.requests).toBe(4);
    const text = await cli(['usage', '--org', orgId, '--billing-period', '--month', '2026-05']);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain(`${PERIOD_START.toISOString()} .. ${PERIOD_END.toISOString()}`);
  });

  it('rejects a malformed month with billing_period, naming month', async () => {
    const e = await failure(h.root.getUsageStats({ organizationId: orgId, billingPeriod: true, month: '2026-13' }));
    expect(e).toMatchObject({ code: 'invalid_argument', field: 'month' });
  });
});
