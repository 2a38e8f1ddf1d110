/**
 * Security events reach webhooks: a revoked key used on the request path becomes, after
 * the usage flush, one audit row, and a subscribed endpoint receives it once, signed,
 * with the occurrences, the first and last time and the client address in `data`.
 */
import { DIALECTS } from './support/databases';
import { startHarness, type Harness } from './support/harness';
import { EnvoyClient } from './support/envoy-client';
import { signatureValid, startReceiver, TEST_WEBHOOKS, tickWebhooks, type Receiver } from './support/webhook-receiver';

describe.each(DIALECTS)('security events through webhooks on %s', (dialect) => {
  let h: Harness;
  let rx: Receiver;
  let envoy: EnvoyClient;
  beforeAll(async () => {
    h = await startHarness(dialect, { webhooks: TEST_WEBHOOKS });
    rx = await startReceiver();
    envoy = new EnvoyClient(h.app.authzPort);
  });
  afterAll(async () => {
    envoy.close();
    await h.stop();
    await rx.close();
  });

  it('delivers key.revoked_used once per window with its counts', async () => {
    const org = await h.root.createOrganization({ name: 'Watched' });
    const hook = await h.root.createWebhook({ organizationId: org.id, url: rx.url, events: ['key.revoked_used'] });
    const k = await h.root.createKey({ organizationId: org.id, name: 'leaked' });
    await h.root.revokeKey({ id: k.key!.id, reason: 'leaked' });
    for (let i = 0; i < 3; i++) await envoy.check({ headers: { 'x-api-key': k.secret, 'x-forwarded-for': '198.51.100.9' } });
    await tickWebhooks(h);
    expect(rx.requests).toHaveLength(0); // counted in memory until the usage flush
    await h.app.usage.flush();
    await tickWebhooks(h);

    expect(rx.requests).toHaveLength(1);
    const req = rx.requests[0]!;
    expect(signatureValid(hook.secret, req.body, req.headers['keyward-signature'], Math.floor(h.clock.now().getTime() / 1000))).toBe(true);
    const payload = JSON.parse(req.body) as { kind: string; key_id: string; data: Record<string, unknown> };
    expect(payload).toMatchObject({ kind: 'key.revoked_used', key_id: k.key!.id });
    expect(payload.data).toMatchObject({ occurrences: 3, client_address: '198.51.100.9' });

    // More uses in the same window add to the row; no second delivery.
    await envoy.check({ headers: { 'x-api-key': k.secret } });
    await h.app.usage.flush();
    await tickWebhooks(h);
    expect(rx.requests).toHaveLength(1);
  });
});
