/**
 * Turns a Check's decision into security events (./security.ts), for the usage batcher
 * to carry: a refused revoked, expired, disabled key or inactive organization's key; a
 * 429; a quota refusal; an allowed Check that crosses a quota alert percentage. Pure
 * but for the sink; nothing is stored per request, and unknown keys make no event (the
 * decision metrics count them).
 */
import type { Decision } from '../authz/decision';
import type { SecurityEventKind } from './kinds';
import { clientAddress, type SecurityCell } from './security';

/** Denial codes that are security events, by kind. */
const DENIAL_KIND: Readonly<Record<string, SecurityEventKind>> = {
  revoked_api_key: 'key.revoked_used',
  expired_api_key: 'key.expired_used',
  disabled_api_key: 'key.disabled_used',
  organization_inactive: 'key.inactive_org_used',
  rate_limit_exceeded: 'key.rate_limited',
  monthly_quota_exceeded: 'org.quota_exceeded',
};

/** The default quota alert percentages of an organization that sets none. */
export const DEFAULT_QUOTA_ALERT_PERCENTS: readonly number[] = [80, 100];

export interface SecurityEventsOptions {
  /** KEYWARD_SECURITY_EVENT_WINDOW_SECONDS × 1000: the window of key events. */
  windowMs: number;
  sink: { recordSecurity(cell: SecurityCell): void };
}

/** What of the request a security event keeps. */
export interface ObservedRequest {
  headers: readonly (readonly [string, string])[];
  sourceAddress: string;
}

export class SecurityEvents {
  constructor(private readonly options: SecurityEventsOptions) {}

  /** Records the security event `decision` stands for, if any. */
  observe(request: ObservedRequest, decision: Decision, nowMs: number): void {
    if (decision.allow) {
      if (decision.key && decision.quota) this.thresholds(request, decision.org.id, decision.org.quotaAlertPercents, decision.quota, nowMs);
      return;
    }
    const kind = DENIAL_KIND[decision.code];
    const key = decision.key;
    if (!kind || !key) return;
    if (kind === 'org.quota_exceeded') {
      const start = decision.quota?.period.start.getTime() ?? nowMs;
      this.emit(request, kind, key.organizationId, key.id, key.organizationId, start, 'denied', decision.code, nowMs);
      return;
    }
    const windowStart = Math.floor(nowMs / this.options.windowMs) * this.options.windowMs;
    this.emit(request, kind, key.organizationId, key.id, key.id, windowStart, 'denied', decision.code, nowMs);
  }

  /** One event per alert percentage the request's count reached (once per period, across replicas). */
  private thresholds(
    request: ObservedRequest,
    organizationId: string,
    percents: readonly number[] | undefined,
    quota: { limit: number; used: number; period: { start: Date } },
    nowMs: number,
  ): void {
    const list = percents ?? DEFAULT_QUOTA_ALERT_PERCENTS;
    for (let i = 0; i < list.length; i++) {
      const percent = list[i]!;
      const mark = percent * quota.limit;
      if ((quota.used - 1) * 100 < mark && quota.used * 100 >= mark) {
        const subject = `${organizationId}:${percent}`;
        this.emit(
          request,
          'org.quota_threshold',
          organizationId,
          undefined,
          subject,
          quota.period.start.getTime(),
          'observed',
          `${percent}%`,
          nowMs,
        );
      }
    }
  }

  private emit(
    request: ObservedRequest,
    kind: SecurityEventKind,
    organizationId: string,
    keyId: string | undefined,
    subject: string,
    windowStart: number,
    outcome: SecurityCell['outcome'],
    reason: string,
    nowMs: number,
  ): void {
    this.options.sink.recordSecurity({
      kind,
      organizationId,
      ...(keyId !== undefined && { keyId }),
      subject,
      windowStart,
      outcome,
      reason,
      count: 1,
      firstSeen: nowMs,
      lastSeen: nowMs,
      client: clientAddress(request.headers, request.sourceAddress),
    });
  }
}
