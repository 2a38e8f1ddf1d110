/** KeyAdmin's webhook messages to and from the control plane's types (as ./mapping.ts); never a secret but CreateWebhookResponse's. */
import type { DeliveryWithAttempts, NewWebhook, WebhookPatch } from '../../admin/webhooks';
import type { WebhookRecord } from '../../store/webhook-entities';
import type { CreateWebhookRequest, UpdateWebhookRequest, Webhook, WebhookDelivery } from '../../gen/keyward/admin/v1/key_admin';

export function newWebhook(req: CreateWebhookRequest): NewWebhook {
  return { organizationId: req.organizationId, url: req.url, events: req.events };
}

export function webhookPatch(req: UpdateWebhookRequest): WebhookPatch {
  return { id: req.id, url: req.url, events: req.events?.values, active: req.active };
}

export function webhookMessage(w: WebhookRecord): Webhook {
  return {
    id: w.id,
    organizationId: w.organizationId,
    url: w.url,
    events: [...w.events],
    active: w.active,
    pausedAt: w.pausedAt ?? undefined,
    consecutiveFailures: w.consecutiveFailures,
    createdAt: w.createdAt,
    updatedAt: w.updatedAt,
  };
}

export function deliveryMessage({ delivery: d, attempts }: DeliveryWithAttempts): WebhookDelivery {
  return {
    id: Number(d.id),
    webhookId: d.webhookId,
    eventId: d.eventId,
    kind: d.kind,
    status: d.status,
    createdAt: d.createdAt,
    nextAttemptAt: d.status === 'pending' ? d.nextAttemptAt : undefined,
    deliveredAt: d.deliveredAt ?? undefined,
    attempts: attempts.map((a) => ({ time: a.at, statusCode: a.statusCode ?? 0, durationMs: a.durationMs, error: a.error ?? '' })),
  };
}
