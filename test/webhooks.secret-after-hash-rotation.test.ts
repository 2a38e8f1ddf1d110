/**
 * A webhook's signing secret is sealed under the hash secret (src/keys/secret-box.ts).
 * After a hash-secret rotation it still signs while the old secret is configured as
 * KEYWARD_HASH_SECRET_PREVIOUS; once that is removed, its deliveries fail with
 * `secret_unavailable` and nothing is sent.
 */
import { randomBytes } from 'node:crypto';
import { createTestDatabase, DIALECTS } from './support/databases';
import { startHarness, type Harness } from './support/harness';
import { startReceiver, TEST_WEBHOOKS, tickWebhooks } from './support/webhook-receiver';
import { SIGNATURE_HEADER, signatureHeader } from '../src/webhooks/signature';

describe.each(DIALECTS)('webhook signing secrets across a hash-secret rotation on %s', (dialect) => {
  it('sign under the previous secret, and fail with secret_unavailable once it is gone', async () => {
    const db = await createTestDatabase(dialect);
    const before = randomBytes(32);
    const after = randomBytes(32);
    const rx = await startReceiver();
    const signedWith = (secret: string, i: number) => {
      const r = rx.requests[i]!;
      const t = Number(/^t=(\d+),/.exec(String(r.headers[SIGNATURE_HEADER]))![1]);
      return r.headers[SIGNATURE_HEADER] === signatureHeader(secret, r.body, t);
    };
    const run = async (overrides: { hashSecret: Buffer; hashSecretPrevious?: Buffer }, body: (h: Harness) => Promise<void>) => {
      const h = await startHarness(dialect, { webhooks: TEST_WEBHOOKS, reuseDatabase: db, ...overrides });
      try {
        await body(h);
      } finally {
        await h.stop();
      }
    };
    try {
      let orgId = '';
      let webhookId = '';
      let secret = '';
      await run({ hashSecret: before }, async (h) => {
        orgId = (await h.root.createOrganization({ name: 'Rotating' })).id;
        const created = await h.root.createWebhook({ organizationId: orgId, url: rx.url, events: ['key.created'] });
        webhookId = created.webhook!.id;
        secret = created.secret;
        await h.root.createKey({ organizationId: orgId, name: 'a' });
        await tickWebhooks(h);
        expect(rx.requests).toHaveLength(1);
        expect(signedWith(secret, 0)).toBe(true);
      });

      await run({ hashSecret: after, hashSecretPrevious: before }, async (h) => {
        await h.root.createKey({ organizationId: orgId, name: 'b' });
        await tickWebhooks(h);
        expect(rx.requests).toHaveLength(2);
        expect(signedWith(secret, 1)).toBe(true);
      });

      await run({ hashSecret: after }, async (h) => {
        await h.root.createKey({ organizationId: orgId, name: 'c' });
        await tickWebhooks(h);
        expect(rx.requests).toHaveLength(2);
        const { deliveries } = await h.root.listWebhookDeliveries({ webhookId });
        const failed = deliveries.filter((d) => d.status === 'pending');
        expect(failed).toHaveLength(1);
        expect(failed[0]!.attempts.map((a) => [a.statusCode, a.error])).toEqual([[0, 'secret_unavailable']]);
      });
    } finally {
      await rx.close();
      await db.dispose();
    }
  });
});
