/** validateRecordUsage: every kind of bad input is rejected naming the entry; defaults are applied. */
import { InvalidArgumentError } from '../src/errors/domain';
import { RecordUsageRequest, type UsageRecord } from '../src/gen/keyward/admin/v1/key_admin';
import { idempotentBatchId, toUsageEvents, usageKeyIds, validateIdempotencyKey, validateRecordUsage } from '../src/usage/record-usage';
import { newId } from '../src/util/ids';

const NOW = Date.UTC(2026, 7, 15, 12, 0, 0);
const DAY = 86_400_000;
const KEY = newId('key', NOW - 1000);
const KEY2 = newId('key', NOW - 2000);

function good(over: Partial<UsageRecord> = {}): Partial<UsageRecord> {
  return { keyId: KEY, endpoint: '/v1/chat/completions', ...over };
}

function request(records: Partial<UsageRecord>[]) {
  return RecordUsageRequest.fromPartial({ records });
}

/** The InvalidArgumentError validateRecordUsage throws for `records`. */
function rejection(records: Partial<UsageRecord>[]): InvalidArgumentError {
  try {
    validateRecordUsage(request(records), NOW);
  } catch (e) {
    expect(e).toBeInstanceOf(InvalidArgumentError);
    return e as InvalidArgumentError;
  }
  throw new Error('expected validateRecordUsage to throw');
}

/** Puts a bad record at index 3 of an otherwise good batch and returns the field named. */
function fieldOfBad(bad: Partial<UsageRecord>): { field: string; reason: string } {
  const e = rejection([good(), good(), good(), bad, good()]);
  return { field: e.field, reason: e.reason };
}

describe('validateRecordUsage', () => {
  it('accepts a good batch and applies the defaults', () => {
    const at = new Date(NOW - 3 * DAY);
    const out = validateRecordUsage(
      request([
        good(),
        {
          keyId: KEY2,
          requestId: 'req-9',
          endpoint: '/v1/embeddings?model=x',
          method: 'get',
          statusCode: 429,
          durationMs: 12.5,
          tokens: 300,
          costUsd: 0.0125,
          time: at,
        },
        good({ statusCode: 100, time: new Date(NOW + 60_000) }),
        good({ statusCode: 599, time: new Date(NOW - 35 * DAY) }),
      ]),
      NOW,
    );
    expect(out).toEqual([
      { keyId: KEY, endpoint: '/v1/chat/completions', method: 'POST', at: NOW },
      {
        keyId: KEY2,
        requestId: 'req-9',
        endpoint: '/v1/embeddings',
        method: 'GET',
        statusCode: 429,
        durationMs: 12.5,
        tokens: 300,
        costUsd: 0.0125,
        at: at.getTime(),
      },
      { keyId: KEY, endpoint: '/v1/chat/completions', method: 'POST', statusCode: 100, at: NOW + 60_000 },
      { keyId: KEY, endpoint: '/v1/chat/completions', method: 'POST', statusCode: 599, at: NOW - 35 * DAY },
    ]);
    expect(usageKeyIds(out)).toEqual([KEY, KEY2]);
  });

  it('accepts exactly 1 and exactly 1000 records', () => {
    expect(validateRecordUsage(request([good()]), NOW)).toHaveLength(1);
    expect(validateRecordUsage(request(Array.from({ length: 1000 }, () => good())), NOW)).toHaveLength(1000);
  });

  it('rejects 0 and 1001 records, naming `records`', () => {
    expect(rejection([])).toMatchObject({ field: 'records', reason: 'required' });
    expect(rejection(Array.from({ length: 1001 }, () => good()))).toMatchObject({ field: 'records', reason: 'too_many' });
    expect(rejection([]).message).toMatch(/^records: /);
  });

  it('rejects a missing or malformed key id', () => {
    expect(fieldOfBad(good({ keyId: '' }))).toEqual({ field: 'records[3].key_id', reason: 'required' });
    for (const keyId of ['key_123', newId('org', NOW), 'KEY_' + KEY.slice(4), KEY + 'x', ` ${KEY}`]) {
      expect(fieldOfBad(good({ keyId }))).toEqual({ field: 'records[3].key_id', reason: 'malformed' });
    }
  });

  it('rejects an empty, oversized or control-character endpoint', () => {
    expect(fieldOfBad(good({ endpoint: '' }))).toEqual({ field: 'records[3].endpoint', reason: 'required' });
    expect(fieldOfBad(good({ endpoint: '?q=only' }))).toEqual({ field: 'records[3].endpoint', reason: 'required' });
    expect(fieldOfBad(good({ endpoint: '/' + 'a'.repeat(512) }))).toEqual({ field: 'records[3].endpoint', reason: 'too_long' });
    expect(fieldOfBad(good({ endpoint: '/a\nb' }))).toEqual({ field: 'records[3].endpoint', reason: 'invalid_characters' });
    expect(validateRecordUsage(request([good({ endpoint: '/' + 'a'.repeat(511) })]), NOW)[0]!.endpoint).toHaveLength(512);
  });

  it('rejects a method that is not a token of at most 16 characters', () => {
    for (const method of ['GE T', 'X'.repeat(17), 'GET\r\n', 'PÖST']) {
      expect(fieldOfBad(good({ method }))).toEqual({ field: 'records[3].method', reason: 'invalid_method' });
    }
    expect(validateRecordUsage(request([good({ method: 'X'.repeat(16) })]), NOW)[0]!.method).toBe('X'.repeat(16));
  });

  it('rejects status codes other than 0 and 100..599', () => {
    for (const statusCode of [99, 600, 1, 65535]) {
      expect(fieldOfBad(good({ statusCode }))).toEqual({ field: 'records[3].status_code', reason: 'out_of_range' });
    }
  });

  it('rejects negative, NaN and infinite durations and costs, and negative or unsafe tokens', () => {
    for (const durationMs of [-1, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
      expect(fieldOfBad(good({ durationMs }))).toEqual({ field: 'records[3].duration_ms', reason: 'out_of_range' });
    }
    for (const costUsd of [-0.01, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(fieldOfBad(good({ costUsd }))).toEqual({ field: 'records[3].cost_usd', reason: 'out_of_range' });
    }
    for (const tokens of [-1, 1.5, 2 ** 53, Number.NaN]) {
      expect(fieldOfBad(good({ tokens }))).toEqual({ field: 'records[3].tokens', reason: 'out_of_range' });
    }
  });

  it('rejects a request id that is too long or has control characters', () => {
    expect(fieldOfBad(good({ requestId: 'r'.repeat(129) }))).toEqual({ field: 'records[3].request_id', reason: 'too_long' });
    expect(fieldOfBad(good({ requestId: 'a\u0000b' }))).toEqual({ field: 'records[3].request_id', reason: 'invalid_characters' });
  });

  it('rejects times in the future (beyond one minute of skew), more than 35 days old, or invalid', () => {
    expect(fieldOfBad(good({ time: new Date(NOW + 60_001) }))).toEqual({ field: 'records[3].time', reason: 'in_future' });
    expect(fieldOfBad(good({ time: new Date(NOW - 35 * DAY - 1) }))).toEqual({ field: 'records[3].time', reason: 'too_old' });
    expect(fieldOfBad(good({ time: new Date(Number.NaN) }))).toEqual({ field: 'records[3].time', reason: 'invalid_time' });
  });

  it('names the first bad entry and field', () => {
    const e = rejection([good(), good({ costUsd: -1 }), good({ tokens: -1 })]);
    expect(e.field).toBe('records[1].cost_usd');
    expect(e.message).toBe('records[1].cost_usd: must be a number from 0 to 1000000');
    expect(e.metadata).toEqual({ field: 'records[1].cost_usd', violation: 'out_of_range' });
  });
});

describe('toUsageEvents', () => {
  it('makes detail-only api events with the organization of each key', () => {
    const org = newId('org', NOW);
    const records = validateRecordUsage(
      request([good({ statusCode: 500, tokens: 5 }), good({ keyId: KEY2, requestId: 'r', durationMs: 3, costUsd: 0.5 })]),
      NOW,
    );
    expect(
      toUsageEvents(
        records,
        new Map([
          [KEY, org],
          [KEY2, org],
        ]),
      ),
    ).toEqual([
      {
        at: NOW,
        organizationId: org,
        keyId: KEY,
        endpoint: '/v1/chat/completions',
        method: 'POST',
        requests: 0,
        source: 'api',
        statusCode: 500,
        tokens: 5,
      },
      {
        at: NOW,
        organizationId: org,
        keyId: KEY2,
        requestId: 'r',
        endpoint: '/v1/chat/completions',
        method: 'POST',
        requests: 0,
        source: 'api',
        durationMs: 3,
        costUsd: 0.5,
      },
    ]);
    expect(() => toUsageEvents(records, new Map([[KEY, org]]))).toThrow(/no organization/);
  });
});

describe('validateIdempotencyKey and idempotentBatchId', () => {
  it('accepts none or 1..128 characters of [A-Za-z0-9_.:-] and names idempotency_key otherwise', () => {
    expect(validateIdempotencyKey('')).toBeUndefined();
    expect(validateIdempotencyKey(undefined)).toBeUndefined();
    expect(validateIdempotencyKey('a-Z_0.9:x')).toBe('a-Z_0.9:x');
    expect(validateIdempotencyKey('k'.repeat(128))).toBe('k'.repeat(128));
    for (const [key, reason] of [
      ['k'.repeat(129), 'too_long'],
      ['with space', 'invalid_characters'],
      ['a/b', 'invalid_characters'],
      ['\u0000', 'invalid_characters'],
    ] as const) {
      try {
        validateIdempotencyKey(key);
        throw new Error(`expected ${JSON.stringify(key)} to be rejected`);
      } catch (e) {
        expect(e).toBeInstanceOf(InvalidArgumentError);
        expect([(e as InvalidArgumentError).field, (e as InvalidArgumentError).reason]).toEqual(['idempotency_key', reason]);
      }
    }
  });

  it('derives a valid batch id that depends on both the organization and the key', () => {
    const org = newId('org', NOW);
    const other = newId('org', NOW + 1);
    const id = idempotentBatchId(org, 'k');
    expect(id).toMatch(/^rk_[A-Za-z0-9_-]{29}$/);
    expect(idempotentBatchId(org, 'k')).toBe(id);
    expect(idempotentBatchId(other, 'k')).not.toBe(id);
    expect(idempotentBatchId(org, 'k2')).not.toBe(id);
  });
});
