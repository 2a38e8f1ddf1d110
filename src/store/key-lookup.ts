/**
 * The data plane's reads and writes, kept to what the hot path needs:
 *  - load(hash): one indexed query (api_keys.key_hash, unique) joined with the key's
 *    organization;
 *  - touchLastUsed(batch): one UPDATE for the whole batch that only moves
 *    last_used_at forward;
 *  - rehashKeys(batch): during a rotation of the hash secret, one UPDATE for the
 *    whole batch that rewrites stored hashes made with the previous secret.
 */
import type { EntityManager } from '@mikro-orm/knex';
import type { KeyView, OrgView } from '../authz/decision';
import type { KeySource } from '../authz/cache';
import type { Orm } from './orm';
import { rethrowStoreError } from './store';
import { AdminTokenRecord, ApiKeyRecord } from './entities';

interface Row {
  id: string;
  organization_id: string;
  environment: string;
  scopes: string | string[];
  expires_at: number | string | Date | null;
  revoked_at: number | string | Date | null;
  disabled_at: number | string | Date | null;
  key_rate_limit: number | null;
  org_id: string | null;
  active: boolean | number | null;
  deleted_at: number | string | Date | null;
  org_rate_limit: number | null;
  monthly_quota: number | string | null;
  billing_anchor_day: number | null;
  quota_alert_percents: string | null;
}

/** `80,100` → [80, 100] (as stored by KeyAdmin: whole percents, 1–1000). */
export function parsePercents(text: string): number[] {
  return text
    .split(',')
    .map(Number)
    .filter((n) => Number.isInteger(n) && n >= 1 && n <= 1000);
}

function ms(v: number | string | Date | null): number | null {
  if (v === null || v === undefined) return null;
  if (v instanceof Date) return v.getTime();
  if (typeof v === 'number') return v;
  const n = Number(v);
  return Number.isFinite(n) ? n : Date.parse(v);
}

/** A stored hash to rewrite: `from` (made with the previous secret) becomes `to`. */
export interface Rehash {
  from: string;
  to: string;
}

export interface DataPlaneStore extends KeySource {
  touchLastUsed(batch: ReadonlyMap<string, number>): Promise<void>;
  /**
   * The keyed hashes (hex) of these key ids, by id, in one primary-key query (ids the
   * store does not have are absent), so a change notification, which names keys by id
   * only, can drop cache entries by hash. A key's hash changes only when a rotation of
   * the hash secret rewrites it (the cache also finds such keys by the old hash).
   * Throws if the store fails.
   */
  hashesOf(ids: readonly string[]): Promise<Map<string, string>>;
  /**
   * Rewrites stored key hashes, by key id, in one statement: each key whose hash is
   * still `from` gets `to` and hash_secret_id `secretId` (a key already rewritten, by
   * this process or another, is left alone). Throws if the store fails.
   */
  rehashKeys(batch: ReadonlyMap<string, Rehash>, secretId: string): Promise<void>;
  /**
   * Usable keys (not revoked, not expired at `nowMs`) and admin tokens whose hash was
   * made with the secret `secretId`, or whose secret was never recorded (stored before
   * hash_secret_id existed: made with the secret in use before the rotation).
   */
  countOnSecret(secretId: string, nowMs: number): Promise<{ keys: number; adminTokens: number }>;
}

/** The lookup: one indexed query by hash, with the organization (built once, not per Check). */
const LOOKUP_SQL =
  'select k.id, k.organization_id, k.environment, k.scopes, k.expires_at, k.revoked_at, k.disabled_at, k.rate_limit_per_minute as key_rate_limit, ' +
  'o.id as org_id, o.active, o.deleted_at, o.rate_limit_per_minute as org_rate_limit, o.monthly_quota, o.billing_anchor_day, o.quota_alert_percents ' +
  'from api_keys as k left join organizations as o on o.id = k.organization_id where k.key_hash = ? limit 1';

/** last_used_at of many keys from one JSON array of [id, epoch ms], only ever moved forward. */
const TOUCH_PG =
  'update api_keys as k set last_used_at = to_timestamp(v.at / 1000.0) ' +
  'from (select value->>0 as id, (value->>1)::float8 as at from json_array_elements(?::json)) as v ' +
  'where k.id = v.id and (k.last_used_at is null or k.last_used_at < to_timestamp(v.at / 1000.0))';
const TOUCH_SQLITE =
  'update api_keys set last_used_at = v.at ' +
  "from (select json_extract(value, '$[0]') as id, json_extract(value, '$[1]') as at from json_each(?)) as v " +
  'where api_keys.id = v.id and (api_keys.last_used_at is null or api_keys.last_used_at < v.at)';

/** Stored hashes of many keys from one JSON array of [id, from, to]; only rows still holding `from` change. */
const REHASH_PG =
  'update api_keys as k set key_hash = v.to_hash, hash_secret_id = ? ' +
  'from (select value->>0 as id, value->>1 as from_hash, value->>2 as to_hash from json_array_elements(?::json)) as v ' +
  'where k.id = v.id and k.key_hash = v.from_hash';
const REHASH_SQLITE =
  'update api_keys set key_hash = v.to_hash, hash_secret_id = ? ' +
  "from (select json_extract(value, '$[0]') as id, json_extract(value, '$[1]') as from_hash, json_extract(value, '$[2]') as to_hash from json_each(?)) as v " +
  'where api_keys.id = v.id and api_keys.key_hash = v.from_hash';

export function createDataPlaneStore(orm: Orm, dialect: 'sqlite' | 'postgres'): DataPlaneStore {
  const em = orm.em as unknown as EntityManager;
  const knex = em.getKnex();
  return {
    async load(keyHash) {
      let rows: Row[];
      try {
        const res = (await knex.raw(LOOKUP_SQL, [keyHash])) as Row[] | { rows: Row[] };
        rows = Array.isArray(res) ? res : res.rows;
      } catch (e) {
        rethrowStoreError(e);
      }
      const r = rows[0];
      if (!r) return null;
      const key: KeyView = {
        id: r.id,
        organizationId: r.organization_id,
        environment: r.environment === 'test' ? 'test' : 'live',
        scopes: typeof r.scopes === 'string' ? (JSON.parse(r.scopes) as string[]) : r.scopes,
        expiresAt: ms(r.expires_at),
        revokedAt: ms(r.revoked_at),
        disabled: r.disabled_at !== null && r.disabled_at !== undefined,
        rateLimitPerMinute: r.key_rate_limit,
      };
      const org: OrgView | null =
        r.org_id === null
          ? null
          : {
              id: r.org_id,
              // A deleted organization is inactive (its keys are also revoked).
              active: (r.active === true || r.active === 1) && (r.deleted_at === null || r.deleted_at === undefined),
              rateLimitPerMinute: Number(r.org_rate_limit ?? 0),
              monthlyQuota: Number(r.monthly_quota ?? 0),
              billingAnchorDay: Number(r.billing_anchor_day ?? 1),
              ...(r.quota_alert_percents && { quotaAlertPercents: parsePercents(r.quota_alert_percents) }),
            };
      return { key, org };
    },

    async hashesOf(ids) {
      const out = new Map<string, string>();
      if (ids.length === 0) return out;
      try {
        const rows = (await knex('api_keys')
          .select('id', 'key_hash')
          .whereIn('id', [...ids])) as { id: string; key_hash: string }[];
        for (const r of rows) out.set(r.id, r.key_hash);
      } catch (e) {
        rethrowStoreError(e);
      }
      return out;
    },

    async rehashKeys(batch, secretId) {
      if (batch.size === 0) return;
      const rows = [...batch].sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0)).map(([id, r]) => [id, r.from, r.to]);
      try {
        await knex.raw(dialect === 'postgres' ? REHASH_PG : REHASH_SQLITE, [secretId, JSON.stringify(rows)]);
      } catch (e) {
        rethrowStoreError(e);
      }
    },

    async countOnSecret(secretId, nowMs) {
      const fork = em.fork();
      const onSecret = { $or: [{ hashSecretId: secretId }, { hashSecretId: null }] };
      try {
        const keys = await fork.count(ApiKeyRecord, {
          $and: [onSecret, { revokedAt: null }, { $or: [{ expiresAt: null }, { expiresAt: { $gt: new Date(nowMs) } }] }],
        });
        const adminTokens = await fork.count(AdminTokenRecord, onSecret);
        return { keys, adminTokens };
      } catch (e) {
        rethrowStoreError(e);
      }
    },

    async touchLastUsed(batch) {
      if (batch.size === 0) return;
      // One statement per flush, rows in id order (so replicas lock in the same order).
      const rows = [...batch].sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
      try {
        await knex.raw(dialect === 'postgres' ? TOUCH_PG : TOUCH_SQLITE, [JSON.stringify(rows)]);
      } catch (e) {
        rethrowStoreError(e);
      }
    },
  };
}
