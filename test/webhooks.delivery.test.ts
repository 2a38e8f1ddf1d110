/**
 * Webhook delivery end to end, on each database, to a real HTTP receiver on 127.0.0.1:
 * a key created through KeyAdmin is an audit row, the dispatcher turns it into a
 * delivery, the worker POSTs it signed; the receiver verifies the signature; the
 * attempt shows in ListWebhookDeliveries; the secret is shown once and never stored or
 * listed in clear; only subscribed kinds are delivered.
 */
import { status } from '@grpc/grpc-js';
import { DIALECTS } from './support/databases';
import { failure, startHarness, type Harness } from './support/harness';
import { signatureValid, startReceiver, TEST_WEBHOOKS, tickWebhooks, type Receiver } from './support/webhook-receiver';

describe.each(DIALECTS)('webhook delivery on %s', (dialect) => {
  let h: Harness;
  let rx: Receiver;
  beforeAll(async () => {
    h = await startHarness(dialect, { webhooks: TEST_WEBHOOKS });
    rx = await startReceiver();
  });
  afterAll(async () => {
    await h.stop();
    await rx.close();
  });

  /** Every column of every webhook row, as stored. */
  async function rawWebhookRows(): Promise<string> {
    return JSON.stringify(await h.app.orm.em.getConnection().execute('select * from webhooks'));
  }

  it('delivers a signed key.created event the receiver can verify, and records the attempt', async () => {
    const org = await h.root.createOrganization({ name: 'Hooked' });
    const created = await h.root.createWebhook({ organizationId: org.id, url: rx.url, events: ['key.created'] });
    const secret = created.secret;
    expect(secret).toMatch(/^whsec_[A-Za-z0-9_-]{43}$/);
    expect(created.webhook).toMatchObject({ organizationId: org.id, url: rx.url, events: ['key.created'], active: true });

    h.clock.advance(1000);
    const key = await h.root.createKey({ organizationId: org.id, name: 'k' });
    await h.root.revokeKey({ id: key.key!.id, reason: 'not subscribed' });
    expect(rx.requests).toHaveLength(0); // nothing before the task runs
    await tickWebhooks(h);

    expect(rx.requests).toHaveLength(1);
    const req = rx.requests[0]!;
    expect(req.method).toBe('POST');
    expect(req.path).toBe('/hooks');
    expect(req.headers['content-type']).toBe('application/json');
    const nowSeconds = Math.floor(h.clock.now().getTime() / 1000);
    expect(req.headers['keyward-signature']).toBe(
      `t=${nowSeconds},v1=${(/v1=([0-9a-f]+)/.exec(String(req.headers['keyward-signature'])) ?? [])[1]}`,
    );
    expect(signatureValid(secret, req.body, req.headers['keyward-signature'], nowSeconds)).toBe(true);
    // A tampered body, another secret, or a replay long after do not verify.
    expect(signatureValid(secret, req.body + ' ', req.headers['keyward-signature'], nowSeconds)).toBe(false);
    expect(signatureValid(`${secret}x`, req.body, req.headers['keyward-signature'], nowSeconds)).toBe(false);
    expect(signatureValid(secret, req.body, req.headers['keyward-signature'], nowSeconds + 301)).toBe(false);

    const payload = JSON.parse(req.body) as Record<string, unknown>;
    expect(Object.keys(payload).sort()).toEqual(['data', 'id', 'key_id', 'kind', 'organization_id', 'time']);
    expect(payload).toMatchObject({
      kind: 'key.created',
      organization_id: org.id,
      key_id: key.key!.id,
      time: key.key!.createdAt!.toISOString(),
    });
    expect(payload.id).toMatch(/^evt_\d+$/);
    expect(req.headers['keyward-event-id']).toBe(payload.id);
    expect(payload.data).toMatchObject({ action: 'key.create', actor: 'admin' });

    // The attempt: status and duration; nothing more is sent on later passes.
    const { deliveries } = await h.root.listWebhookDeliveries({ webhookId: created.webhook!.id });
    expect(deliveries).toHaveLength(1);
    expect(deliveries[0]).toMatchObject({ eventId: payload.id, kind: 'key.created', status: 'delivered' });
    expect(deliveries[0]!.attempts).toHaveLength(1);
    expect(deliveries[0]!.attempts[0]).toMatchObject({ statusCode: 200, error: '' });
    expect(deliveries[0]!.attempts[0]!.durationMs).toBeGreaterThan(0);
    h.clock.advance(3_600_000);
    await tickWebhooks(h);
    expect(rx.requests).toHaveLength(1);
  });

  it('shows the secret once: never in lists, updates or the database', async () => {
    const org = await h.root.createOrganization({ name: 'Secretive' });
    const { webhook, secret } = await h.root.createWebhook({ organizationId: org.id, url: rx.url, events: ['key.revoked'] });
    const listed = await h.root.listWebhooks({ organizationId: org.id });
    expect(listed.webhooks.map((w) => w.id)).toEqual([webhook!.id]);
    const updated = await h.root.updateWebhook({ id: webhook!.id, events: { values: ['key.revoked', 'key.rotated'] } });
    expect(updated.events).toEqual(['key.revoked', 'key.rotated']);
    for (const reply of [listed, updated]) expect(JSON.stringify(reply)).not.toContain('whsec_');
    const rows = await rawWebhookRows();
    expect(rows).toContain(webhook!.id);
    expect(rows).not.toContain(secret);
    expect(rows).not.toContain(secret.slice('whsec_'.length));
    expect(h.logs.join('')).not.toContain(secret);
    const audit = await h.root.listAuditEvents({ organizationId: org.id });
    expect(audit.events.map((e) => e.action)).toEqual(['webhook.update', 'webhook.create', 'organization.create']);
    expect(audit.events[1]!.reason).toBe(`webhook=${webhook!.id}`);
  });

  it('rejects unknown event kinds, naming events', async () => {
    const org = await h.root.createOrganization({ name: 'Kinds' });
    const e = await failure(h.root.createWebhook({ organizationId: org.id, url: rx.url, events: ['key.created', 'key.exploded'] }));
    expect([e.grpc, e.code, e.field]).toEqual([status.INVALID_ARGUMENT, 'invalid_argument', 'events']);
    const none = await failure(h.root.createWebhook({ organizationId: org.id, url: rx.url, events: [] }));
    expect(none.field).toBe('events');
  });

  it('deletes an endpoint with its deliveries; then it is not found', async () => {
    const org = await h.root.createOrganization({ name: 'Deleting' });
    const { webhook } = await h.root.createWebhook({ organizationId: org.id, url: rx.url, events: ['key.created'] });
    await h.root.createKey({ organizationId: org.id, name: 'k' });
    await tickWebhooks(h);
    expect((await h.root.listWebhookDeliveries({ webhookId: webhook!.id })).deliveries).toHaveLength(1);
    await h.root.deleteWebhook({ id: webhook!.id });
    expect((await h.root.listWebhooks({ organizationId: org.id })).webhooks).toEqual([]);
    const e = await failure(h.root.listWebhookDeliveries({ webhookId: webhook!.id }));
    expect([e.grpc, e.code]).toEqual([status.NOT_FOUND, 'webhook_not_found']);
    expect((await failure(h.root.deleteWebhook({ id: webhook!.id }))).code).toBe('webhook_not_found');
  });
});
