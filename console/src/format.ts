/** Display helpers: dates in UTC, numbers, key status. */
import type { KeyStatus, UsageTotals } from './types';

/** `2026-12-05 03:52 UTC`, or the fallback when unset. */
export function formatTime(iso: string | undefined, fallback = '—'): string {
  if (!iso) return fallback;
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return `${d.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

export function formatNumber(n: number | undefined): string {
  return (n ?? 0).toLocaleString('en-US');
}

export function formatCost(n: number | undefined): string {
  return `$${(n ?? 0).toFixed(4)}`;
}

export function formatMs(n: number | undefined): string {
  return n === undefined ? '—' : `${n.toLocaleString('en-US', { maximumFractionDigits: 1 })} ms`;
}

export function errorsOf(t: UsageTotals | undefined): number {
  return (t?.errors4xx ?? 0) + (t?.errors5xx ?? 0);
}

/** `active`, `revoked`, `expired`, `disabled` (or `unknown`). */
export function statusName(s: KeyStatus | undefined): string {
  switch (s) {
    case 'KEY_STATUS_ACTIVE':
      return 'active';
    case 'KEY_STATUS_REVOKED':
      return 'revoked';
    case 'KEY_STATUS_EXPIRED':
      return 'expired';
    case 'KEY_STATUS_DISABLED':
      return 'disabled';
    default:
      return 'unknown';
  }
}

/** A whole number from a form field: undefined when empty, NaN when not a whole number. */
export function parseWhole(value: string): number | undefined {
  const v = value.trim();
  if (v === '') return undefined;
  return /^\d+$/.test(v) ? Number(v) : NaN;
}

/** A `datetime-local` value read as UTC, as an ISO string (undefined when empty). */
export function localInputToIso(value: string): string | undefined {
  if (!value) return undefined;
  const d = new Date(`${value}Z`);
  return Number.isNaN(d.getTime()) ? undefined : d.toISOString();
}
