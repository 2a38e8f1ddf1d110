/**
 * KeyAdmin's webhooks: create (the signing secret returned once), list, update,
 * delete, and an endpoint's deliveries with their attempts. Access as for keys: the
 * administrator token, or an organization's admin key for its own organization (a
 * webhook of another organization is denied whether or not it exists). Every change
 * is audited in its transaction (`webhook.create|update|delete`, reason `webhook=<id>…`).
 */
import { EVENT_KINDS } from '../events/kinds';
import { DomainError, InvalidArgumentError } from '../errors/domain';
import type { Repos } from '../store/store';
import { WebhookRecord, type WebhookAttemptRecord, type WebhookDeliveryRecord } from '../store/webhook-entities';
import { ID_PATTERN, newId } from '../util/ids';
import type { SecretBox } from '../keys/secret-box';
import { generateWebhookSecret } from '../webhooks/signature';
import { checkTargetUrl } from '../webhooks/target';
import type { AdminContext } from './context';
import { paged, type PageOf, type PageRequest } from './paging';
import type { CallContext } from './principal';
import * as validate from './validate';

export interface NewWebhook {
  organizationId: string;
  url: string;
  events: string[];
}

/** Only the fields given change. */
export interface WebhookPatch {
  id: string;
  url?: string;
  events?: string[];
  active?: boolean;
}

export interface CreatedWebhook {
  webhook: WebhookRecord;
  /** Shown once. */
  secret: string;
}

export interface DeliveryWithAttempts {
  delivery: WebhookDeliveryRecord;
  attempts: WebhookAttemptRecord[];
}

export interface WebhooksDeps {
  secrets: SecretBox;
  /** KEYWARD_WEBHOOK_ALLOW_INSECURE. */
  allowInsecure: boolean;
}

const EVENTS_MAX = EVENT_KINDS.length;

function webhookId(value: string, field: string): string {
  if (value === '') throw new InvalidArgumentError(field, 'is required', 'required');
  if (ID_PATTERN.exec(value)?.[1] !== 'whk') throw new InvalidArgumentError(field, 'is not a webhook id', 'malformed');
  return value;
}

/** The subscribed kinds: at least one, each a known kind; duplicates dropped. */
export function eventKinds(values: string[], field = 'events'): string[] {
  if (values.length === 0) throw new InvalidArgumentError(field, 'must name at least one event kind', 'required');
  const known = EVENT_KINDS as readonly string[];
  const unknown = values.filter((v) => !known.includes(v.trim()));
  if (unknown.length > 0)
    throw new InvalidArgumentError(
      field,
      `unknown event kind ${JSON.stringify(unknown[0]!.slice(0, 64))}; known: ${known.join(', ')}`,
      'unknown_event_kind',
    );
  const kinds = [...new Set(values.map((v) => v.trim()))];
  if (kinds.length > EVENTS_MAX) throw new InvalidArgumentError(field, 'too many event kinds', 'too_many');
  return kinds;
}

export class Webhooks {
  constructor(
    private readonly context: AdminContext,
    private readonly deps: WebhooksDeps,
  ) {}

  async create(caller: CallContext, input: NewWebhook): Promise<CreatedWebhook> {
    const orgId = validate.id(input.organizationId, 'org', 'organization_id');
    await this.context.requireOrg(caller, 'webhook.create', orgId);
    const url = checkTargetUrl(input.url, this.deps.allowInsecure);
    const events = eventKinds(input.events);
    const now = this.context.now();
    return this.context.tx(caller, async (repos) => {
      const org = await this.context.loadOrg(repos, caller, orgId, 'webhook.create');
      const secret = generateWebhookSecret();
      const id = newId('whk', now.getTime());
      const webhook = Object.assign(new WebhookRecord(), {
        id,
        organizationId: org.id,
        url,
        events,
        secretSealed: this.deps.secrets.seal(secret, id),
        active: true,
        pausedAt: null,
        consecutiveFailures: 0,
        createdAt: now,
        updatedAt: now,
      });
      repos.webhooks.add(webhook);
      repos.audit.append(this.context.event(caller, 'webhook.create', { organizationId: org.id }, 'success', `webhook=${id}`));
      return { webhook, secret };
    });
  }

  async list(caller: CallContext, query: PageRequest & { organizationId: string }): Promise<PageOf<WebhookRecord>> {
    const orgId = validate.id(query.organizationId, 'org', 'organization_id');
    await this.context.requireOrg(caller, 'webhook.list', orgId);
    return paged(
      query,
      'string',
      (w: WebhookRecord) => w.id,
      (after, limit) =>
        this.context.store.read(async (repos) => {
          if (!(await repos.orgs.get(orgId))) throw new DomainError('organization_not_found');
          return repos.webhooks.list(orgId, { after, limit });
        }),
    );
  }

  async update(caller: CallContext, input: WebhookPatch): Promise<WebhookRecord> {
    const id = webhookId(input.id, 'id');
    const patch: Partial<WebhookRecord> = {};
    if (input.url !== undefined) patch.url = checkTargetUrl(input.url, this.deps.allowInsecure);
    if (input.events !== undefined) patch.events = eventKinds(input.events, 'events.values');
    if (input.active !== undefined) patch.active = input.active;
    const now = this.context.now();
    return this.context.tx(caller, async (repos) => {
      const webhook = await this.load(repos, caller, id, 'webhook.update', true);
      const resumed = input.active === true && webhook.pausedAt;
      Object.assign(webhook, patch);
      if (input.active === true) {
        webhook.pausedAt = null;
        webhook.consecutiveFailures = 0;
      }
      webhook.updatedAt = now;
      const fields = Object.keys(patch).join(',') || 'nothing';
      repos.audit.append(
        this.context.event(
          caller,
          'webhook.update',
          { organizationId: webhook.organizationId },
          'success',
          `webhook=${id} changed: ${fields}${resumed ? ' (resumed)' : ''}`,
        ),
      );
      return webhook;
    });
  }

  async delete(caller: CallContext, idText: string): Promise<void> {
    const id = webhookId(idText, 'id');
    await this.context.tx(caller, async (repos) => {
      const webhook = await this.load(repos, caller, id, 'webhook.delete', true);
      await repos.webhooks.remove(webhook);
      repos.audit.append(
        this.context.event(caller, 'webhook.delete', { organizationId: webhook.organizationId }, 'success', `webhook=${id}`),
      );
    });
  }

  /** Newest first. */
  async deliveries(caller: CallContext, query: PageRequest & { webhookId: string }): Promise<PageOf<DeliveryWithAttempts>> {
    const id = webhookId(query.webhookId, 'webhook_id');
    return paged(
      query,
      'number',
      (d: DeliveryWithAttempts) => Number(d.delivery.id),
      (after, limit) =>
        this.context.tx(caller, async (repos) => {
          await this.load(repos, caller, id, 'webhook.deliveries');
          return repos.webhooks.deliveries(id, { after, limit });
        }),
    );
  }

  /** Inside tx(): a webhook the caller may act on; webhook_not_found for root, a denial outside the caller's organization. */
  private async load(repos: Repos, caller: CallContext, id: string, action: string, forUpdate = false): Promise<WebhookRecord> {
    const webhook = await repos.webhooks.get(id, forUpdate);
    if (caller.principal.kind === 'org' && (!webhook || webhook.organizationId !== caller.principal.organizationId)) {
      throw this.context.deniedInTx(action, { organizationId: webhook?.organizationId });
    }
    if (!webhook) throw new DomainError('webhook_not_found');
    return webhook;
  }
}
