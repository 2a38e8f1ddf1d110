/**
 * The event an audit row stands for, as its webhook payload: JSON with `id`
 * (`evt_<audit id>`, the same for every endpoint), `kind`, `time` (ISO 8601),
 * `organization_id`, `key_id` (null when the event is about no key) and `data`
 * (the audit row's actor, action and reason; security events add their counts).
 */
import { eventKindOfAudit } from '../events/kinds';
import type { AuditEventRecord } from '../store/entities';
import type { QueuedEvent } from '../store/webhooks';

export function eventOfAudit(row: AuditEventRecord): QueuedEvent | undefined {
  const kind = eventKindOfAudit(row.action, row.outcome);
  if (!kind) return undefined;
  const eventId = `evt_${Number(row.id)}`;
  // Columns other work adds to audit rows (occurrences, first/last seen, client address) ride along when present.
  const extra = row as unknown as Record<string, unknown>;
  const data: Record<string, unknown> = { action: row.action, actor: row.actor, reason: row.reason ?? null };
  for (const [field, name] of [
    ['occurrences', 'occurrences'],
    ['firstSeen', 'first_seen'],
    ['lastSeen', 'last_seen'],
    ['clientAddress', 'client_address'],
  ] as const) {
    const value = extra[field];
    if (value !== undefined && value !== null) data[name] = value instanceof Date ? value.toISOString() : value;
  }
  const payload = JSON.stringify({
    id: eventId,
    kind,
    time: row.at.toISOString(),
    organization_id: row.organizationId ?? null,
    key_id: row.keyId ?? null,
    data,
  });
  return { eventId, kind, payload };
}
