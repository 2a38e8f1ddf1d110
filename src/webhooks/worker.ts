/**
 * The webhook machinery of one keyward process: on each tick of the `webhooks` task,
 * the dispatcher turns new audit rows into deliveries (./payload.ts, the queue in
 * src/store/webhooks.ts), then due deliveries are claimed, signed, POSTed and recorded.
 *
 * Policy (docs/events-webhooks.md):
 *  - retry after 10 s, doubling per failed attempt, at most 1 h apart; a delivery still
 *    failing 24 h after it was queued is given up (`failed`);
 *  - an endpoint failing pauseAfterFailures attempts in a row is paused (audited);
 *  - a claim is a lease of timeout + 60 s: a process that dies mid-attempt leaves the
 *    delivery due again after it (at least once).
 * Ticks never overlap within a process; idle() resolves when the current one ends.
 */
import type { Logger } from 'pino';
import type { WebhookConfig } from '../config';
import type { ClaimedDelivery, WebhookQueue } from '../store/webhooks';
import type { Clock } from '../util/clock';
import { describeError } from '../util/logger';
import type { Scheduler } from '../util/scheduler';
import { eventOfAudit } from './payload';
import type { SecretBox } from '../keys/secret-box';
import { send, type SendResult } from './sender';
import { SIGNATURE_HEADER, signatureHeader } from './signature';

export const FIRST_RETRY_MS = 10_000;
export const MAX_RETRY_GAP_MS = 3_600_000;
export const GIVE_UP_AFTER_MS = 24 * 3_600_000;
export const TICK_MS = 1000;
const DISPATCH_BATCH = 500;
const CLAIM_BATCH = 50;
const LEASE_MARGIN_MS = 60_000;

export const DEFAULT_WEBHOOK_CONFIG: WebhookConfig = { allowInsecure: false, timeoutMs: 10_000, pauseAfterFailures: 20 };

/** The wait after the n-th failed attempt (n ≥ 1). */
export function retryDelayMs(failedAttempts: number): number {
  return Math.min(FIRST_RETRY_MS * 2 ** Math.min(failedAttempts - 1, 20), MAX_RETRY_GAP_MS);
}

export interface WebhookWorkerDeps {
  queue: WebhookQueue;
  secrets: SecretBox;
  config: WebhookConfig;
  clock: Clock;
  logger: Logger;
}

export class WebhookWorker {
  private running: Promise<void> | undefined;
  private stopTask: (() => void) | undefined;
  private stopped = false;
  /** Counters since start (metrics and tests). */
  readonly stats = { attempts: 0, delivered: 0, failedAttempts: 0, paused: 0, passErrors: 0 };

  constructor(private readonly deps: WebhookWorkerDeps) {}

  start(scheduler: Scheduler): void {
    this.stopTask = scheduler.every('webhooks', TICK_MS, () => void this.tick());
  }

  /** Stops the task and waits for the tick in progress (its attempts are recorded). */
  async stop(): Promise<void> {
    this.stopped = true;
    this.stopTask?.();
    await this.idle();
  }

  idle(): Promise<void> {
    return this.running ?? Promise.resolve();
  }

  /** One pass: dispatch everything new, then send what is due. Never throws. */
  tick(): Promise<void> {
    if (this.running) return this.running;
    this.running = this.pass()
      .catch((e: unknown) => {
        this.stats.passErrors += 1;
        this.deps.logger.warn({ err: describeError(e) }, 'webhooks: pass failed; will retry');
      })
      .finally(() => (this.running = undefined));
    return this.running;
  }

  private async pass(): Promise<void> {
    const { queue, clock } = this.deps;
    while ((await queue.dispatch(DISPATCH_BATCH, eventOfAudit, clock.now())) === DISPATCH_BATCH && !this.stopped);
    for (;;) {
      if (this.stopped) return;
      const now = clock.now();
      const claimed = await queue.claim(now, new Date(now.getTime() + this.deps.config.timeoutMs + LEASE_MARGIN_MS), CLAIM_BATCH);
      if (claimed.length === 0) return;
      await Promise.all(claimed.map((c) => this.attempt(c)));
      if (claimed.length < CLAIM_BATCH) return;
    }
  }

  private async attempt({ delivery, webhook }: ClaimedDelivery): Promise<void> {
    const { config, clock, logger } = this.deps;
    const at = clock.now();
    // A secret that does not open (sealed under a hash secret no longer configured) fails the attempt.
    const secret = this.deps.secrets.open(webhook.secretSealed, webhook.id);
    const result: SendResult =
      secret === undefined
        ? { durationMs: 0, error: 'secret_unavailable' }
        : await send({
            url: webhook.url,
            body: delivery.payload,
            headers: {
              'content-type': 'application/json',
              'user-agent': 'keyward-webhooks/1',
              'keyward-event-id': delivery.eventId,
              'keyward-event-kind': delivery.kind,
              [SIGNATURE_HEADER]: signatureHeader(secret, delivery.payload, Math.floor(at.getTime() / 1000)),
            },
            timeoutMs: config.timeoutMs,
            allowInsecure: config.allowInsecure,
          });
    this.stats.attempts += 1;
    const failedAttempts = delivery.attempts + 1;
    const retryAt = new Date(at.getTime() + retryDelayMs(failedAttempts));
    const giveUp = retryAt.getTime() - delivery.createdAt.getTime() > GIVE_UP_AFTER_MS;
    const { paused } = await this.deps.queue.recordAttempt(Number(delivery.id), {
      at,
      statusCode: result.statusCode,
      durationMs: result.durationMs,
      error: result.error,
      retryAt: giveUp ? null : retryAt,
      pauseAfterFailures: config.pauseAfterFailures,
    });
    const fields = {
      webhook: webhook.id,
      delivery: Number(delivery.id),
      event: delivery.eventId,
      status: result.statusCode,
      ms: result.durationMs,
    };
    if (result.error === undefined) {
      this.stats.delivered += 1;
      logger.debug(fields, 'webhook delivered');
    } else {
      this.stats.failedAttempts += 1;
      logger.info({ ...fields, error: result.error, retry: !giveUp }, 'webhook attempt failed');
    }
    if (paused) {
      this.stats.paused += 1;
      logger.warn({ webhook: webhook.id, organization: webhook.organizationId }, 'webhook paused after repeated failures');
    }
  }
}
