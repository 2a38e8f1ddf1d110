/**
 * `keyward webhook create|list|update|delete|deliveries`: an organization's webhook
 * endpoints. The signing secret is printed once, by `create` (`--json`: `id`, `secret`).
 */
import type { Command } from 'commander';
import type { Webhook, WebhookDelivery } from '../../gen/keyward/admin/v1/key_admin';
import { withAdmin } from '../client';
import { fields, iso, table } from '../format';
import { parseBool, parsedOption } from '../options';
import { allOption, type CliContext, type JsonOption, leaf, limitOption, listText, output, pageTokenOption, pages } from './shared';

const WEBHOOK_SECRET_NOTE =
  'Store this signing secret now: it is shown only once. Receivers verify the keyward-signature header with it (docs/events-webhooks.md).';

/** `a,b , c` → [a, b, c]. */
function parseKinds(value: string): string[] {
  return value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

function webhookJson(w: Webhook) {
  return {
    id: w.id,
    organizationId: w.organizationId,
    url: w.url,
    events: w.events,
    active: w.active,
    pausedAt: iso(w.pausedAt),
    consecutiveFailures: w.consecutiveFailures,
    createdAt: iso(w.createdAt),
    updatedAt: iso(w.updatedAt),
  };
}

function webhookFields(w: Webhook): string {
  return fields([
    ['id', w.id],
    ['organization', w.organizationId],
    ['url', w.url],
    ['events', w.events.join(',')],
    ['state', state(w)],
    ['failures in a row', String(w.consecutiveFailures)],
    ['created', iso(w.createdAt)],
  ]);
}

function state(w: Webhook): string {
  if (!w.active) return 'inactive';
  return w.pausedAt ? `paused since ${iso(w.pausedAt)}` : 'active';
}

function deliveryJson(d: WebhookDelivery) {
  return {
    id: d.id,
    eventId: d.eventId,
    kind: d.kind,
    status: d.status,
    createdAt: iso(d.createdAt),
    nextAttemptAt: iso(d.nextAttemptAt),
    deliveredAt: iso(d.deliveredAt),
    attempts: d.attempts.map((a) => ({ time: iso(a.time), statusCode: a.statusCode, durationMs: a.durationMs, error: a.error || null })),
  };
}

function deliveryTable(items: readonly WebhookDelivery[]): string {
  return table(
    ['id', 'event', 'kind', 'status', 'attempts', 'last status', 'last ms', 'last error'],
    items.map((d) => {
      const last = d.attempts[d.attempts.length - 1];
      return [
        String(d.id),
        d.eventId,
        d.kind,
        d.status,
        String(d.attempts.length),
        last ? String(last.statusCode || '-') : '-',
        last ? last.durationMs.toFixed(1) : '-',
        last?.error || '-',
      ];
    }),
  );
}

export function webhookCommands(program: Command, ctx: CliContext): Command {
  const webhook = program.command('webhook').description("manage an organization's webhook endpoints");

  leaf(webhook, 'create', 'create a webhook endpoint and print its signing secret (shown only once)')
    .requiredOption('--org <id>', 'organization id')
    .requiredOption('--url <url>', 'the https:// endpoint')
    .addOption(
      parsedOption('--events <list>', 'comma-separated event kinds, e.g. key.created,key.revoked_used', parseKinds).makeOptionMandatory(),
    )
    .action((opts: JsonOption & { org: string; url: string; events: string[] }) =>
      withAdmin(ctx.env, async (admin) => {
        const r = await admin.callRetrySafe('createWebhook', { organizationId: opts.org, url: opts.url, events: opts.events });
        if (!r.webhook) throw new Error("the server's reply has no CreateWebhookResponse.webhook");
        const w = r.webhook;
        output(
          ctx,
          opts,
          () => {
            const { id, ...rest } = webhookJson(w);
            return { id, secret: r.secret, ...rest };
          },
          () => `${webhookFields(w)}\nsecret: ${r.secret}\n\n${WEBHOOK_SECRET_NOTE}\n`,
        );
      }),
    );

  leaf(webhook, 'list', "list an organization's webhook endpoints")
    .requiredOption('--org <id>', 'organization id')
    .addOption(limitOption())
    .addOption(pageTokenOption())
    .addOption(allOption())
    .action((opts: JsonOption & { org: string; limit?: number; pageToken?: string; all?: boolean }) =>
      withAdmin(ctx.env, async (admin) => {
        const { items, next } = await pages<Webhook>(opts.pageToken ?? '', opts.all === true, async (pageToken) => {
          const r = await admin.call('listWebhooks', { organizationId: opts.org, pageSize: opts.limit ?? 0, pageToken });
          return { items: r.webhooks, next: r.nextPageToken };
        });
        output(
          ctx,
          opts,
          () => ({ webhooks: items.map(webhookJson), nextPageToken: next }),
          () =>
            listText(
              'webhooks',
              items.length,
              () =>
                table(
                  ['id', 'url', 'events', 'state'],
                  items.map((w) => [w.id, w.url, w.events.join(','), state(w)]),
                ),
              next,
            ),
        );
      }),
    );

  leaf(webhook, 'update <id>', 'change an endpoint; only the given fields change')
    .option('--url <url>', 'new endpoint URL')
    .addOption(parsedOption('--events <list>', 'replace the event kinds (comma-separated)', parseKinds))
    .addOption(parsedOption('--active <bool>', 'false switches it off; true switches it on and resumes it if paused', parseBool))
    .action((id: string, opts: JsonOption & { url?: string; events?: string[]; active?: boolean }) =>
      withAdmin(ctx.env, async (admin) => {
        const w = await admin.call('updateWebhook', {
          id,
          url: opts.url,
          events: opts.events ? { values: opts.events } : undefined,
          active: opts.active,
        });
        output(
          ctx,
          opts,
          () => webhookJson(w),
          () => webhookFields(w),
        );
      }),
    );

  leaf(webhook, 'delete <id>', 'delete an endpoint with its queued deliveries').action((id: string, opts: JsonOption) =>
    withAdmin(ctx.env, async (admin) => {
      await admin.call('deleteWebhook', { id });
      output(
        ctx,
        opts,
        () => ({ id, deleted: true }),
        () => `Deleted webhook ${id}.\n`,
      );
    }),
  );

  leaf(webhook, 'deliveries <id>', "list an endpoint's deliveries, newest first, with their attempts")
    .addOption(limitOption())
    .addOption(pageTokenOption())
    .addOption(allOption())
    .action((id: string, opts: JsonOption & { limit?: number; pageToken?: string; all?: boolean }) =>
      withAdmin(ctx.env, async (admin) => {
        const { items, next } = await pages<WebhookDelivery>(opts.pageToken ?? '', opts.all === true, async (pageToken) => {
          const r = await admin.call('listWebhookDeliveries', { webhookId: id, pageSize: opts.limit ?? 0, pageToken });
          return { items: r.deliveries, next: r.nextPageToken };
        });
        output(
          ctx,
          opts,
          () => ({ deliveries: items.map(deliveryJson), nextPageToken: next }),
          () => listText('deliveries', items.length, () => deliveryTable(items), next),
        );
      }),
    );

  return webhook;
}
