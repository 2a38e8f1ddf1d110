/**
 * Request validation for KeyAdmin. Each check throws InvalidArgumentError naming the
 * request field (snake_case, as in the proto).
 */
import { InvalidArgumentError } from '../errors/domain';
import type { Environment } from '../keys/format';
import { ID_PATTERN } from '../util/ids';

export const LIMITS = {
  nameMax: 200,
  reasonMax: 500,
  maxKeys: { min: 1, max: 100_000 },
  rateLimitMax: 1_000_000_000,
  anchorDay: { min: 1, max: 28 },
  scopesMax: 64,
  scopeLength: 128,
  metadataEntries: 16,
  metadataKeyMax: 64,
  metadataValueMax: 256,
  expiresInDaysMax: 3650,
  graceSecondsMax: 2_592_000,
  filterMax: 64,
} as const;

// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL = /[\u0000-\u001f\u007f]/;
const SCOPE = /^[A-Za-z0-9_.:*-]+$/;

export function name(value: string, field = 'name'): string {
  const trimmed = value.trim();
  if (trimmed === '') throw new InvalidArgumentError(field, 'must not be empty', 'required');
  if (trimmed.length > LIMITS.nameMax) throw new InvalidArgumentError(field, `must be at most ${LIMITS.nameMax} characters`, 'too_long');
  if (CONTROL.test(trimmed)) throw new InvalidArgumentError(field, 'must not contain control characters', 'invalid_characters');
  return trimmed;
}

export function reason(value: string): string {
  const trimmed = value.trim();
  if (trimmed === '') throw new InvalidArgumentError('reason', 'must not be empty', 'required');
  if (trimmed.length > LIMITS.reasonMax)
    throw new InvalidArgumentError('reason', `must be at most ${LIMITS.reasonMax} characters`, 'too_long');
  if (CONTROL.test(trimmed)) throw new InvalidArgumentError('reason', 'must not contain control characters', 'invalid_characters');
  return trimmed;
}

export function intInRange(value: number, field: string, min: number, max: number): number {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new InvalidArgumentError(field, `must be an integer between ${min} and ${max}`, 'out_of_range');
  }
  return value;
}

export function id(value: string, kind: 'org' | 'key', field: string): string {
  if (value === '') throw new InvalidArgumentError(field, 'is required', 'required');
  const match = ID_PATTERN.exec(value);
  if (!match || match[1] !== kind)
    throw new InvalidArgumentError(field, `is not a ${kind === 'org' ? 'organization' : 'key'} id`, 'malformed');
  return value;
}

export function scopes(values: string[], field = 'scopes'): string[] {
  if (values.length > LIMITS.scopesMax) throw new InvalidArgumentError(field, `at most ${LIMITS.scopesMax} scopes`, 'too_many');
  const out: string[] = [];
  for (const scope of values) {
    if (scope.length === 0 || scope.length > LIMITS.scopeLength || !SCOPE.test(scope)) {
      throw new InvalidArgumentError(field, `each scope is 1..${LIMITS.scopeLength} characters of A-Z a-z 0-9 _ . : * -`, 'invalid_scope');
    }
    if (!out.includes(scope)) out.push(scope);
  }
  return out;
}

export function metadata(map: Record<string, string>, field = 'metadata'): Record<string, string> {
  const entries = Object.entries(map);
  if (entries.length > LIMITS.metadataEntries)
    throw new InvalidArgumentError(field, `at most ${LIMITS.metadataEntries} entries`, 'too_many');
  const out: Record<string, string> = {};
  for (const [key, value] of entries) {
    if (key.length === 0 || key.length > LIMITS.metadataKeyMax || CONTROL.test(key)) {
      throw new InvalidArgumentError(field, `keys are 1..${LIMITS.metadataKeyMax} characters without control characters`, 'invalid_key');
    }
    if (value.length > LIMITS.metadataValueMax)
      throw new InvalidArgumentError(field, `values are at most ${LIMITS.metadataValueMax} characters`, 'too_long');
    out[key] = value;
  }
  return out;
}

/**
 * A key's environment as read from the request: undefined (unspecified) means live;
 * any value other than 'live' or 'test' is refused.
 */
export function environment(value: string | undefined): Environment {
  if (value === undefined || value === 'live') return 'live';
  if (value === 'test') return 'test';
  throw new InvalidArgumentError('environment', 'must be ENVIRONMENT_LIVE or ENVIRONMENT_TEST', 'unknown_value');
}

export function futureTime(value: Date, now: Date, field: string): Date {
  if (Number.isNaN(value.getTime())) throw new InvalidArgumentError(field, 'is not a valid time', 'invalid_time');
  if (value.getTime() <= now.getTime()) throw new InvalidArgumentError(field, 'must be in the future', 'in_past');
  if (value.getTime() > now.getTime() + LIMITS.expiresInDaysMax * 86_400_000) {
    throw new InvalidArgumentError(field, `must be within ${LIMITS.expiresInDaysMax} days`, 'out_of_range');
  }
  return value;
}

/** An optional time filter: a real time between 1970 and 9999 (what the stores can compare). */
export function filterTime(value: Date | undefined, field: string): Date | undefined {
  if (value === undefined) return undefined;
  const t = value.getTime();
  if (!(t >= 0 && t <= Date.UTC(9999, 11, 31, 23, 59, 59, 999)))
    throw new InvalidArgumentError(field, 'must be a time between 1970 and 9999', 'invalid_time');
  return value;
}

export function filterText(value: string, field: string): string | undefined {
  if (value === '') return undefined;
  if (value.length > LIMITS.filterMax || CONTROL.test(value))
    throw new InvalidArgumentError(field, 'is not a valid filter', 'invalid_filter');
  return value;
}
