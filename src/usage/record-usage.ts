/**
 * Validation of KeyAdmin.RecordUsage. Pure: it checks the shape of each record and
 * applies defaults; whether each key exists, and belongs to an organization the caller
 * may report for, is checked by the admin layer (usageKeyIds() lists the keys to look
 * up, toUsageEvents() makes the events once their organizations are known).
 *
 * Every error is an InvalidArgumentError naming the entry, e.g. `records[3].cost_usd`.
 * Records are detail-only usage (requests 0, source `api`): they add status, duration,
 * tokens and cost, and never count a request.
 */
import { endpointPath } from './endpoint';
import { createHash } from 'node:crypto';
import { InvalidArgumentError } from '../errors/domain';
import type { UsageRecordInput } from './types';
import { ID_PATTERN } from '../util/ids';
import type { UsageEvent } from './types';

export const RECORD_USAGE_LIMITS = {
  recordsMin: 1,
  recordsMax: 1000,
  endpointMax: 512,
  methodMax: 16,
  requestIdMax: 128,
  idempotencyKeyMax: 128,
  /** A record may be at most this old. */
  maxAgeMs: 35 * 86_400_000,
  /** Clock skew allowed for a record's time in the future. */
  futureSkewMs: 60_000,
} as const;

/**
 * The most one request can report, from RecordUsage and from the access log alike:
 * far above any real request, and low enough that the sums kept per organization,
 * key, endpoint and month stay storable. Unbounded, a few thousand records summed
 * past PostgreSQL's bigint (or a finite double), the batch failed at every flush, and
 * all later usage waited behind it. Now a 64-bit token sum needs 9.2 billion maximal
 * events in one month, key and endpoint to overflow; cost and duration sums, never.
 */
export const USAGE_VALUE_MAX = {
  /** 10^9 tokens. */
  tokens: 1_000_000_000,
  /** USD 1,000,000. */
  costUsd: 1_000_000,
  /** 30 days. */
  durationMs: 30 * 86_400_000,
} as const;

export const DEFAULT_RECORD_METHOD = 'POST';

/** A validated RecordUsage record, defaults applied; zero values mean "not reported". */
export interface ValidatedUsageRecord {
  keyId: string;
  requestId?: string;
  /** The path; a query or fragment given with it is cut off. */
  endpoint: string;
  /** Upper case. */
  method: string;
  /** 100..599; absent when 0 (unknown). */
  statusCode?: number;
  /** > 0; absent when 0 (unknown). */
  durationMs?: number;
  /** > 0; absent when 0. */
  tokens?: number;
  /** > 0; absent when 0. */
  costUsd?: number;
  /** Epoch ms; `nowMs` when the record has no time. */
  at: number;
}

// eslint-disable-next-line no-control-regex -- control characters are exactly what this rejects
const CONTROL = /[\u0000-\u001f\u007f]/;
const METHOD_TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

function fail(field: string, description: string, reason: string): never {
  throw new InvalidArgumentError(field, description, reason);
}

/**
 * Validates a RecordUsage request at `nowMs`. Throws InvalidArgumentError naming
 * `records` (count: 1..1000) or the first bad field, `records[i].<field>`.
 */
export function validateRecordUsage(req: { records: readonly UsageRecordInput[] }, nowMs: number): ValidatedUsageRecord[] {
  const records = req?.records ?? [];
  if (records.length < RECORD_USAGE_LIMITS.recordsMin) fail('records', 'must hold at least one record', 'required');
  if (records.length > RECORD_USAGE_LIMITS.recordsMax)
    fail('records', `must hold at most ${RECORD_USAGE_LIMITS.recordsMax} records`, 'too_many');

  return records.map((r, i): ValidatedUsageRecord => {
    const f = (name: string) => `records[${i}].${name}`;
    if (!r) fail(`records[${i}]`, 'is required', 'required');

    const keyId = r.keyId ?? '';
    if (keyId === '') fail(f('key_id'), 'is required', 'required');
    if (ID_PATTERN.exec(keyId)?.[1] !== 'key') fail(f('key_id'), 'is not a key id', 'malformed');

    let endpoint = r.endpoint ?? '';
    const cut = endpoint.search(/[?#]/);
    if (cut >= 0) endpoint = endpoint.slice(0, cut);
    if (endpoint === '') fail(f('endpoint'), 'is required', 'required');
    if (endpoint.length > RECORD_USAGE_LIMITS.endpointMax)
      fail(f('endpoint'), `must be at most ${RECORD_USAGE_LIMITS.endpointMax} characters`, 'too_long');
    if (CONTROL.test(endpoint)) fail(f('endpoint'), 'must not contain control characters', 'invalid_characters');

    const method = r.method === '' || r.method === undefined ? DEFAULT_RECORD_METHOD : r.method;
    if (method.length > RECORD_USAGE_LIMITS.methodMax || !METHOD_TOKEN.test(method)) {
      fail(f('method'), `must be an HTTP method token of at most ${RECORD_USAGE_LIMITS.methodMax} characters`, 'invalid_method');
    }

    // The same label as a Check's path: normalised, id-like segments as `{id}`.
    const out: ValidatedUsageRecord = { keyId, endpoint: endpointPath(endpoint), method: method.toUpperCase(), at: nowMs };

    const requestId = r.requestId ?? '';
    if (requestId !== '') {
      if (requestId.length > RECORD_USAGE_LIMITS.requestIdMax)
        fail(f('request_id'), `must be at most ${RECORD_USAGE_LIMITS.requestIdMax} characters`, 'too_long');
      if (CONTROL.test(requestId)) fail(f('request_id'), 'must not contain control characters', 'invalid_characters');
      out.requestId = requestId;
    }

    const status = r.statusCode ?? 0;
    if (!Number.isInteger(status) || (status !== 0 && (status < 100 || status > 599))) {
      fail(f('status_code'), 'must be 0 (unknown) or 100..599', 'out_of_range');
    }
    if (status !== 0) out.statusCode = status;

    const duration = r.durationMs ?? 0;
    if (typeof duration !== 'number' || !Number.isFinite(duration) || duration < 0 || duration > USAGE_VALUE_MAX.durationMs) {
      fail(f('duration_ms'), `must be a number from 0 to ${USAGE_VALUE_MAX.durationMs} (30 days)`, 'out_of_range');
    }
    if (duration > 0) out.durationMs = duration;

    const tokens = r.tokens ?? 0;
    if (!Number.isSafeInteger(tokens) || tokens < 0 || tokens > USAGE_VALUE_MAX.tokens)
      fail(f('tokens'), `must be an integer from 0 to ${USAGE_VALUE_MAX.tokens}`, 'out_of_range');
    if (tokens > 0) out.tokens = tokens;

    const cost = r.costUsd ?? 0;
    if (typeof cost !== 'number' || !Number.isFinite(cost) || cost < 0 || cost > USAGE_VALUE_MAX.costUsd)
      fail(f('cost_usd'), `must be a number from 0 to ${USAGE_VALUE_MAX.costUsd}`, 'out_of_range');
    if (cost > 0) out.costUsd = cost;

    if (r.time !== undefined && r.time !== null) {
      const t = r.time instanceof Date ? r.time.getTime() : Number.NaN;
      if (!Number.isFinite(t)) fail(f('time'), 'is not a valid time', 'invalid_time');
      if (t > nowMs + RECORD_USAGE_LIMITS.futureSkewMs) fail(f('time'), 'must not be in the future', 'in_future');
      if (t < nowMs - RECORD_USAGE_LIMITS.maxAgeMs) fail(f('time'), 'must be at most 35 days old', 'too_old');
      out.at = t;
    }
    return out;
  });
}

/** The distinct key ids of the records, in first-seen order: the keys to look up. */
export function usageKeyIds(records: readonly ValidatedUsageRecord[]): string[] {
  return [...new Set(records.map((r) => r.keyId))];
}

/**
 * The usage events of validated records, given each key's organization (from the
 * admin layer's lookup). Throws if a key's organization is missing from the map.
 */
export function toUsageEvents(records: readonly ValidatedUsageRecord[], organizationOfKey: ReadonlyMap<string, string>): UsageEvent[] {
  return records.map((r) => {
    const organizationId = organizationOfKey.get(r.keyId);
    if (organizationId === undefined) throw new Error(`no organization given for key ${r.keyId}`);
    const e: UsageEvent = { at: r.at, organizationId, keyId: r.keyId, endpoint: r.endpoint, method: r.method, requests: 0, source: 'api' };
    if (r.requestId !== undefined) e.requestId = r.requestId;
    if (r.statusCode !== undefined) e.statusCode = r.statusCode;
    if (r.durationMs !== undefined) e.durationMs = r.durationMs;
    if (r.tokens !== undefined) e.tokens = r.tokens;
    if (r.costUsd !== undefined) e.costUsd = r.costUsd;
    return e;
  });
}

const IDEMPOTENCY_KEY = /^[A-Za-z0-9_.:-]+$/;

/**
 * Validates RecordUsage's `idempotency_key`: '' (none) gives undefined; otherwise
 * 1..128 characters of [A-Za-z0-9_.:-], else InvalidArgumentError naming
 * `idempotency_key` (reason `too_long` or `invalid_characters`).
 */
export function validateIdempotencyKey(key: string | undefined): string | undefined {
  if (key === undefined || key === '') return undefined;
  if (key.length > RECORD_USAGE_LIMITS.idempotencyKeyMax)
    fail('idempotency_key', `must be at most ${RECORD_USAGE_LIMITS.idempotencyKeyMax} characters`, 'too_long');
  if (!IDEMPOTENCY_KEY.test(key)) fail('idempotency_key', 'must hold only the characters A-Z a-z 0-9 _ . : -', 'invalid_characters');
  return key;
}

/**
 * The usage batch id of an organization's RecordUsage under an idempotency key:
 * `rk_` + 29 characters of base64url SHA-256 (32 characters, a valid batch id). The
 * same (organization, key) always gives the same id, so the store writes it once.
 */
export function idempotentBatchId(organizationId: string, idempotencyKey: string): string {
  const digest = createHash('sha256').update(`${organizationId}\u0000${idempotencyKey}`).digest('base64url');
  return `rk_${digest.slice(0, 29)}`;
}
