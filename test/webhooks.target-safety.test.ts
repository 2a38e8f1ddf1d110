/**
 * Where webhooks may point. Without KEYWARD_WEBHOOK_ALLOW_INSECURE only https:// URLs on
 * public addresses are accepted; the check is made again at each delivery, on the
 * address the name resolves to (a name resolving to loopback is refused before
 * connecting), and redirects are never followed.
 */
import { randomBytes } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import { createTestDatabase, DIALECTS } from './support/databases';
import { failure, startHarness } from './support/harness';
import { startReceiver, TEST_WEBHOOKS, tickWebhooks } from './support/webhook-receiver';
import { isPublicAddress } from '../src/webhooks/target';
import { send } from '../src/webhooks/sender';

describe('public addresses', () => {
  it('tells public unicast addresses from loopback, private, link-local and reserved ones', () => {
    const publicOnes = ['8.8.8.8', '1.1.1.1', '93.184.216.34', '2606:4700:4700::1111', '::ffff:8.8.8.8'];
    const others = [
      '127.0.0.1',
      '10.1.2.3',
      '172.16.0.1',
      '172.31.255.255',
      '192.168.1.1',
      '169.254.169.254',
      '100.64.0.1',
      '0.0.0.0',
      '224.0.0.1',
      '255.255.255.255',
      '::1',
      '::',
      'fe80::1',
      'fd00::1',
      'ff02::1',
      '::ffff:127.0.0.1',
      '::ffff:10.0.0.1',
      'not-an-ip',
    ];
    for (const a of publicOnes) expect([a, isPublicAddress(a)]).toEqual([a, true]);
    for (const a of others) expect([a, isPublicAddress(a)]).toEqual([a, false]);
  });

  it('refuses at send time a name that resolves to loopback, and loopback literals, without connecting', async () => {
    const rx = await startReceiver();
    try {
      const common = { body: '{}', headers: {}, timeoutMs: 2000, allowInsecure: false };
      expect((await send({ ...common, url: `https://localhost:${rx.port}/hooks` })).error).toBe('blocked_address');
      expect((await send({ ...common, url: `https://127.0.0.1:${rx.port}/hooks` })).error).toBe('blocked_address');
      expect((await send({ ...common, url: `http://localhost:${rx.port}/hooks` })).error).toBe('insecure_url');
      expect(rx.requests).toHaveLength(0);
      // The same receiver is reached when insecure targets are allowed.
      const reached = await send({ ...common, allowInsecure: true, url: rx.url });
      expect([reached.statusCode, reached.error]).toEqual([200, undefined]);
    } finally {
      await rx.close();
    }
  });
});

describe.each(DIALECTS)('webhook targets on %s', (dialect) => {
  it('accepts only https:// on public addresses without KEYWARD_WEBHOOK_ALLOW_INSECURE', async () => {
    const h = await startHarness(dialect);
    try {
      const org = await h.root.createOrganization({ name: 'Safe' });
      const create = (url: string) => h.root.createWebhook({ organizationId: org.id, url, events: ['key.created'] });
      for (const url of [
        'http://example.com/hook',
        'ftp://example.com/hook',
        'https://127.0.0.1/hook',
        'https://localhost/hook',
        'https://api.localhost/hook',
        'https://intranet/hook',
        'https://10.0.0.5/hook',
        'https://192.168.1.10:8443/hook',
        'https://169.254.169.254/latest/meta-data',
        'https://[::1]/hook',
        'https://[::ffff:127.0.0.1]/hook',
        'https://user:pw@example.com/hook',
        'not a url',
        '',
      ]) {
        const e = await failure(create(url));
        expect([url, e.grpc, e.code, e.field]).toEqual([url, status.INVALID_ARGUMENT, 'invalid_argument', 'url']);
      }
      const ok = await create('https://hooks.example.com/keyward');
      expect(ok.webhook!.url).toBe('https://hooks.example.com/keyward');
      const e = await failure(h.root.updateWebhook({ id: ok.webhook!.id, url: 'https://10.0.0.1/' }));
      expect(e.field).toBe('url');
    } finally {
      await h.stop();
    }
  });

  it('checks the target again at delivery time, and does not follow redirects', async () => {
    const db = await createTestDatabase(dialect);
    const hashSecret = randomBytes(32);
    const rx = await startReceiver();
    const elsewhere = await startReceiver();
    try {
      // Created while insecure targets were allowed...
      const insecure = await startHarness(dialect, { webhooks: TEST_WEBHOOKS, reuseDatabase: db, hashSecret });
      const org = await insecure.root.createOrganization({ name: 'Redirect' });
      const { webhook } = await insecure.root.createWebhook({ organizationId: org.id, url: rx.url, events: ['key.created'] });
      rx.fallback = 302;
      rx.location = elsewhere.url;
      await insecure.root.createKey({ organizationId: org.id, name: 'a' });
      await tickWebhooks(insecure);
      expect(rx.requests).toHaveLength(1);
      expect(elsewhere.requests).toHaveLength(0);
      const [d] = (await insecure.root.listWebhookDeliveries({ webhookId: webhook!.id })).deliveries;
      expect(d!.attempts.map((a) => [a.statusCode, a.error])).toEqual([[302, 'redirect_not_followed']]);
      expect(d!.status).toBe('pending');
      await insecure.stop();

      // ...and delivered after a restart without the flag: refused, nothing sent.
      const strict = await startHarness(dialect, { reuseDatabase: db, hashSecret });
      try {
        strict.clock.advance(10_000);
        await tickWebhooks(strict);
        expect(rx.requests).toHaveLength(1);
        const [again] = (await strict.root.listWebhookDeliveries({ webhookId: webhook!.id })).deliveries;
        expect(again!.attempts.map((a) => [a.statusCode, a.error])).toEqual([
          [302, 'redirect_not_followed'],
          [0, 'insecure_url'],
        ]);
      } finally {
        await strict.stop();
      }
    } finally {
      await rx.close();
      await elsewhere.close();
      await db.dispose();
    }
  });
});
