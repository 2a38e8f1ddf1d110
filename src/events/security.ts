/**
 * Security events seen on the request path, summed like usage (src/usage/cells.ts):
 * one cell per (kind, subject, window) holds how often it happened, the first and last
 * time and the last client address. The usage batcher carries the cells with its
 * batches (batched, journalled, idempotent by batch id) and the store adds each to
 * its audit row: one row per kind, subject and window, across replicas
 * (audit_events' unique (action, subject, window_start)). Never a database write per
 * request, and memory bounded under a flood (the batcher caps the cells it holds).
 */
import type { SecurityEventKind } from './kinds';

export interface SecurityCell {
  kind: SecurityEventKind;
  organizationId: string;
  keyId?: string;
  /** What the row is about: the key id; for organization events the organization id (and `:<percent>` for a threshold). */
  subject: string;
  /** The window's start, epoch ms: the KEYWARD_SECURITY_EVENT_WINDOW_SECONDS window, the billing period, or the key's expiry. */
  windowStart: number;
  /** `denied` for refused requests; `observed` for a threshold crossed or a key about to expire. */
  outcome: 'denied' | 'observed';
  /** The denial code, or what was observed (e.g. `80%`). */
  reason: string;
  count: number;
  firstSeen: number;
  lastSeen: number;
  /** The last client address (x-forwarded-for's first entry, else the source address); '' when unknown. */
  client: string;
}

export const securityCellKey = (c: SecurityCell): string => `${c.kind}\u0000${c.subject}\u0000${c.windowStart}`;

/** Sums `from` into `into` (same identity): counts add, times widen, the latest client wins. */
export function addSecurityCell(into: SecurityCell, from: SecurityCell): void {
  into.count += from.count;
  if (from.firstSeen < into.firstSeen) into.firstSeen = from.firstSeen;
  if (from.lastSeen >= into.lastSeen) {
    into.lastSeen = from.lastSeen;
    if (from.client !== '') into.client = from.client;
  }
}

/** A map of security cells by identity, summing what is added. */
export class SecurityCellMap {
  private readonly cells = new Map<string, SecurityCell>();

  get size(): number {
    return this.cells.size;
  }

  /** Sums `cell` in; false (nothing added) when its identity is new and `create` is false. */
  add(cell: SecurityCell, create = true): boolean {
    const id = securityCellKey(cell);
    const into = this.cells.get(id);
    if (into) addSecurityCell(into, cell);
    else if (create) this.cells.set(id, { ...cell });
    else return false;
    return true;
  }

  values(): SecurityCell[] {
    return [...this.cells.values()];
  }
}

/** The client address of a request: the first x-forwarded-for entry (the original client), else the source address. */
export function clientAddress(headers: readonly (readonly [string, string])[], sourceAddress: string): string {
  for (const [name, value] of headers) {
    if (name !== 'x-forwarded-for') continue;
    const first = value.split(',', 1)[0]!.trim();
    if (first !== '') return first.slice(0, 64);
  }
  return sourceAddress.slice(0, 64);
}
