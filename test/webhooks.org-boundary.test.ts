/**
 * Webhooks follow the keys' access rules: an organization's admin key manages its own
 * organization's endpoints; another organization's endpoint (or a missing one) is
 * permission_denied for it, and each denial is audited; the administrator gets
 * webhook_not_found for a missing one.
 */
import { status } from '@grpc/grpc-js';
import { DIALECTS } from './support/databases';
import { failure, startHarness, type Harness } from './support/harness';
import { TEST_WEBHOOKS } from './support/webhook-receiver';
import { newId } from '../src/util/ids';

describe.each(DIALECTS)('webhook access on %s', (dialect) => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness(dialect, { webhooks: TEST_WEBHOOKS });
  });
  afterAll(async () => h.stop());

  it('an organization admin key manages its own endpoints only', async () => {
    const a = await h.root.createOrganization({ name: 'A' });
    const b = await h.root.createOrganization({ name: 'B' });
    const asA = h.client((await h.root.createKey({ organizationId: a.id, name: 'a-admin', scopes: ['admin'] })).secret);
    const url = 'http://127.0.0.1:9/hooks';

    const own = await asA.createWebhook({ organizationId: a.id, url, events: ['key.created'] });
    expect(own.secret).toMatch(/^whsec_/);
    expect((await asA.listWebhooks({ organizationId: a.id })).webhooks.map((w) => w.id)).toEqual([own.webhook!.id]);
    expect((await asA.updateWebhook({ id: own.webhook!.id, active: false })).active).toBe(false);
    expect((await asA.listWebhookDeliveries({ webhookId: own.webhook!.id })).deliveries).toEqual([]);

    const theirs = (await h.root.createWebhook({ organizationId: b.id, url, events: ['key.created'] })).webhook!;
    const missing = newId('whk', Date.now());
    const attempts: [string, () => Promise<unknown>, string][] = [
      ['webhook.create', () => asA.createWebhook({ organizationId: b.id, url, events: ['key.created'] }), b.id],
      ['webhook.list', () => asA.listWebhooks({ organizationId: b.id }), b.id],
      ['webhook.update', () => asA.updateWebhook({ id: theirs.id, active: false }), b.id],
      ['webhook.delete', () => asA.deleteWebhook({ id: theirs.id }), b.id],
      ['webhook.deliveries', () => asA.listWebhookDeliveries({ webhookId: theirs.id }), b.id],
      ['webhook.delete', () => asA.deleteWebhook({ id: missing }), ''],
    ];
    for (const [action, call, orgId] of attempts) {
      const e = await failure(call());
      expect([action, e.grpc, e.code]).toEqual([action, status.PERMISSION_DENIED, 'permission_denied']);
      const [row] = (await h.root.listAuditEvents({ pageSize: 1 })).events;
      expect(row).toMatchObject({ action, outcome: 'denied', organizationId: orgId, reason: 'permission_denied' });
    }
    // B's endpoint is untouched.
    expect((await h.root.listWebhooks({ organizationId: b.id })).webhooks[0]!.active).toBe(true);
    expect((await failure(h.root.updateWebhook({ id: missing, active: true }))).code).toBe('webhook_not_found');
    expect((await failure(h.root.updateWebhook({ id: 'key_x', active: true }))).field).toBe('id');
  });
});
