/** The KeyAdmin traffic: weighted calls, one at a time, and the churn of keys. */
import { performance } from 'node:perf_hooks';
import { credentials } from '@grpc/grpc-js';
import {
  CreateKeyRequest,
  CreateOrganizationRequest,
  Environment,
  GetKeyRequest,
  GetOrganizationRequest,
  GetQuotaRequest,
  GetRateLimiterStatsRequest,
  GetRateLimitStatusRequest,
  GetUsageStatsRequest,
  KeyAdminClient,
  KeyStatus,
  ListAuditEventsRequest,
  ListKeysRequest,
  ListOrganizationsRequest,
  RevokeKeyRequest,
  RotateKeyRequest,
  UpdateKeyRequest,
  UpdateOrganizationRequest,
} from '../../src/gen/keyward/admin/v1/key_admin';
import { generateKey } from '../../src/keys/format';
import { adminUnary } from '../support/keyward';
import {
  ADMIN_TIMEOUT_MS,
  ADMIN_TOKEN,
  CHECK_TIMEOUT_MS,
  CHURN_MAX,
  CHURN_MIN,
  LIMIT_PER_MINUTE,
  OPT,
  QUOTA,
  REVOKED_POOL_MAX,
  LIMITED_KEYS,
  POOL_KEYS,
  REVOKED_AT_START,
  UNKNOWN_POOL,
} from './options';
import {
  PoolKey,
  active,
  adminCalls,
  fail,
  frameOf,
  grpcError,
  interruptedPromise,
  limitedKeys,
  revoked,
  run,
  sleep,
  tally,
  unknownFrames,
} from './state';
import { int } from './output';
import { pick } from './checks';

export const unary = adminUnary(ADMIN_TOKEN);
export const orgs = { pool: '', quota: '', limited: '', churn: '' };
export const extraOrgs: string[] = [];

export async function createKey(orgId: string, name: string, rateLimitPerMinute?: number): Promise<{ id: string; frame: Buffer }> {
  const r = await unary(
    run.admin.createKey.bind(run.admin),
    CreateKeyRequest.fromPartial({
      organizationId: orgId,
      name,
      environment: Environment.ENVIRONMENT_LIVE,
      scopes: ['chat'],
      metadata: { soak: 'yes' },
      rateLimitPerMinute,
    }),
    ADMIN_TIMEOUT_MS,
  );
  return { id: r.key!.id, frame: frameOf(r.secret) };
}

export async function waitIdle(k: PoolKey): Promise<void> {
  const until = Date.now() + CHECK_TIMEOUT_MS + 1000;
  while (k.inflight > 0 && Date.now() < until) await sleep(5);
}

/** What a KeyAdmin call of the admin loop calls, for its tally. */
export type AdminCall = { method: string };

export const churnCount = () => active.filter((k) => k.churn).length;

export async function churnCreate(c?: AdminCall): Promise<void> {
  if (c) c.method = 'CreateKey';
  const n = ++run.seq;
  const k = await createKey(orgs.churn, `churn-${n}`);
  active.push({ ...k, orgId: orgs.churn, inflight: 0, churn: true, rotated: false });
}

/** Takes a churn key out of the allow pool, lets its Checks in flight finish, revokes it. */
export async function churnRevoke(c: AdminCall): Promise<void> {
  c.method = 'RevokeKey';
  const candidates = active.filter((k) => k.churn);
  const k = pick(candidates);
  active.splice(active.indexOf(k), 1);
  await waitIdle(k);
  const r = await unary(run.admin.revokeKey.bind(run.admin), RevokeKeyRequest.fromPartial({ id: k.id, reason: 'soak' }), ADMIN_TIMEOUT_MS);
  if (r.status !== KeyStatus.KEY_STATUS_REVOKED) throw new Error(`answered status ${r.status}`);
  revoked.push(k);
  if (revoked.length > REVOKED_POOL_MAX) revoked.shift();
}

export const thisMonth = () => new Date().toISOString().slice(0, 7);

/**
 * The KeyAdmin calls, by weight. Each names the method it calls in `c.method` first
 * (create and revoke swap to keep the churn bounded, and rotation gives way to a
 * revoke at the bound).
 */
export const ADMIN_OPS: [number, (c: AdminCall) => Promise<void>][] = [
  [
    2,
    async (c) => {
      c.method = 'ListOrganizations';
      const r = await unary(
        run.admin.listOrganizations.bind(run.admin),
        ListOrganizationsRequest.fromPartial({ pageSize: 20 }),
        ADMIN_TIMEOUT_MS,
      );
      if (r.organizations.length === 0) throw new Error('empty');
    },
  ],
  [
    2,
    async (c) => {
      c.method = 'GetOrganization';
      const id = pick([orgs.pool, orgs.quota, orgs.limited, orgs.churn, ...extraOrgs]);
      const r = await unary(run.admin.getOrganization.bind(run.admin), GetOrganizationRequest.fromPartial({ id }), ADMIN_TIMEOUT_MS);
      if (r.id !== id) throw new Error('another organization');
    },
  ],
  [
    1,
    async (c) => {
      c.method = 'UpdateOrganization';
      const name = `soak-churn-${++run.seq}`;
      const r = await unary(
        run.admin.updateOrganization.bind(run.admin),
        UpdateOrganizationRequest.fromPartial({ id: orgs.churn, name }),
        ADMIN_TIMEOUT_MS,
      );
      if (r.name !== name) throw new Error('name not changed');
    },
  ],
  [
    0.5,
    async (c) => {
      c.method = 'CreateOrganization';
      const r = await unary(
        run.admin.createOrganization.bind(run.admin),
        CreateOrganizationRequest.fromPartial({ name: `soak-extra-${++run.seq}`, rateLimitPerMinute: 600 }),
        ADMIN_TIMEOUT_MS,
      );
      extraOrgs.push(r.id);
    },
  ],
  [1.5, (c) => (churnCount() < CHURN_MAX ? churnCreate(c) : churnRevoke(c))],
  [1.5, (c) => (churnCount() > CHURN_MIN ? churnRevoke(c) : churnCreate(c))],
  [
    3,
    async (c) => {
      c.method = 'GetKey';
      const wantRevoked = Math.random() < 1 / 3;
      const k = pick(wantRevoked ? revoked : active);
      const r = await unary(run.admin.getKey.bind(run.admin), GetKeyRequest.fromPartial({ id: k.id }), ADMIN_TIMEOUT_MS);
      const want = wantRevoked ? KeyStatus.KEY_STATUS_REVOKED : KeyStatus.KEY_STATUS_ACTIVE;
      if (r.id !== k.id || r.status !== want) throw new Error(`status ${r.status}, expected ${want}`);
    },
  ],
  [
    2,
    async (c) => {
      c.method = 'ListKeys';
      await unary(
        run.admin.listKeys.bind(run.admin),
        ListKeysRequest.fromPartial({ organizationId: orgs.churn, includeRevoked: Math.random() < 0.5, pageSize: 50 }),
        ADMIN_TIMEOUT_MS,
      );
    },
  ],
  [
    1.5,
    async (c) => {
      c.method = 'UpdateKey';
      const k = pick(active.filter((x) => x.churn));
      const name = `churn-${++run.seq}`;
      const r = await unary(
        run.admin.updateKey.bind(run.admin),
        UpdateKeyRequest.fromPartial({ id: k.id, name, metadata: { entries: { soak: 'yes', round: String(run.seq) } } }),
        ADMIN_TIMEOUT_MS,
      );
      if (r.name !== name) throw new Error('name not changed');
    },
  ],
  [
    1,
    async (c) => {
      c.method = 'RotateKey';
      const candidates = active.filter((x) => x.churn && !x.rotated);
      if (candidates.length === 0 || churnCount() >= CHURN_MAX) return churnRevoke(c);
      const k = pick(candidates);
      k.rotated = true; // once only, even if the call fails
      const r = await unary(
        run.admin.rotateKey.bind(run.admin),
        RotateKeyRequest.fromPartial({ id: k.id, gracePeriodSeconds: 3600 }),
        ADMIN_TIMEOUT_MS,
      );
      if (r.newKey?.rotatedFromKeyId !== k.id) throw new Error('the new key does not name the old one');
      // The old key stays usable for its grace period: both are in the allow pool.
      active.push({ id: r.newKey.id, orgId: orgs.churn, frame: frameOf(r.secret), inflight: 0, churn: true, rotated: false });
    },
  ],
  [
    1,
    async (c) => {
      c.method = 'GetUsageStats';
      await unary(
        run.admin.getUsageStats.bind(run.admin),
        GetUsageStatsRequest.fromPartial({ organizationId: pick([orgs.pool, orgs.quota]), month: thisMonth() }),
        ADMIN_TIMEOUT_MS,
      );
    },
  ],
  [
    1,
    async (c) => {
      c.method = 'ListAuditEvents';
      const r = await unary(
        run.admin.listAuditEvents.bind(run.admin),
        ListAuditEventsRequest.fromPartial({ organizationId: orgs.churn, pageSize: 50 }),
        ADMIN_TIMEOUT_MS,
      );
      if (r.events.length === 0) throw new Error('empty');
    },
  ],
  [
    1,
    async (c) => {
      c.method = 'GetRateLimitStatus';
      const k = pick(limitedKeys);
      const r = await unary(
        run.admin.getRateLimitStatus.bind(run.admin),
        GetRateLimitStatusRequest.fromPartial({ keyId: k.id }),
        ADMIN_TIMEOUT_MS,
      );
      if (r.limit !== LIMIT_PER_MINUTE || r.limitSource !== 'key') throw new Error(`limit ${r.limit} from ${r.limitSource}`);
    },
  ],
  [
    0.5,
    async (c) => {
      c.method = 'GetQuota';
      const r = await unary(
        run.admin.getQuota.bind(run.admin),
        GetQuotaRequest.fromPartial({ organizationId: orgs.quota }),
        ADMIN_TIMEOUT_MS,
      );
      if (r.limit !== QUOTA) throw new Error(`limit ${r.limit}`);
    },
  ],
  [
    0.5,
    async (c) => {
      c.method = 'GetRateLimiterStats';
      const r = await unary(run.admin.getRateLimiterStats.bind(run.admin), GetRateLimiterStatsRequest.fromPartial({}), ADMIN_TIMEOUT_MS);
      if (r.backend !== run.limiterBackend) throw new Error(`backend ${r.backend}`);
    },
  ],
];
export const ADMIN_WEIGHT = ADMIN_OPS.reduce((a, [w]) => a + w, 0);

/** One KeyAdmin call at a time, paced to --admin-rate. */
export async function adminLoop(): Promise<void> {
  if (OPT.adminRate === 0) return;
  const period = 1000 / OPT.adminRate;
  let next = performance.now();
  while (!run.stopping) {
    let x = Math.random() * ADMIN_WEIGHT;
    let op = ADMIN_OPS[0]![1];
    for (const [w, f] of ADMIN_OPS) {
      if ((x -= w) < 0) {
        op = f;
        break;
      }
    }
    tally.admin.sent++;
    const t = performance.now();
    const c: AdminCall = { method: '?' };
    let failed = false;
    try {
      await op(c);
      tally.admin.ok++;
    } catch (e) {
      failed = true;
      fail('admin', `${c.method}: ${grpcError(e)}`);
    }
    const s = adminCalls.get(c.method) ?? { calls: 0, errors: 0, ms: 0 };
    s.calls++;
    if (failed) s.errors++;
    s.ms += performance.now() - t;
    adminCalls.set(c.method, s);
    next += period;
    const now = performance.now();
    if (next < now - 5000) next = now; // far behind: do not catch up in a burst
    await Promise.race([sleep(Math.max(0, next - now)), interruptedPromise]);
  }
}

/** Through KeyAdmin: the four organizations, and the keys of every pool (see the module comment of bench/soak.ts). */
export async function setUpKeys(adminPort: number): Promise<void> {
  run.admin = new KeyAdminClient(`127.0.0.1:${adminPort}`, credentials.createInsecure());
  const org = async (name: string, rateLimitPerMinute: number, monthlyQuota = 0) =>
    (
      await unary(
        run.admin.createOrganization.bind(run.admin),
        CreateOrganizationRequest.fromPartial({ name, rateLimitPerMinute, monthlyQuota, maxKeys: 1000 }),
      )
    ).id;
  orgs.pool = await org('soak-pool', 1_000_000);
  orgs.quota = await org('soak-quota', 1_000_000, QUOTA);
  orgs.limited = await org('soak-limited', 60);
  orgs.churn = await org('soak-churn', 1_000_000);
  for (let i = 0; i < POOL_KEYS; i++) {
    const orgId = i % 3 === 2 ? orgs.quota : orgs.pool;
    active.push({ ...(await createKey(orgId, `pool-${i}`)), orgId, inflight: 0, churn: false, rotated: false });
  }
  for (let i = 0; i < CHURN_MIN; i++) await churnCreate();
  for (let i = 0; i < LIMITED_KEYS; i++) {
    limitedKeys.push({
      ...(await createKey(orgs.limited, `limited-${i}`, LIMIT_PER_MINUTE)),
      orgId: orgs.limited,
      inflight: 0,
      churn: false,
      rotated: false,
      allowed: 0,
    });
  }
  for (let i = 0; i < REVOKED_AT_START; i++) {
    const k = await createKey(orgs.churn, `revoked-${i}`);
    await unary(run.admin.revokeKey.bind(run.admin), RevokeKeyRequest.fromPartial({ id: k.id, reason: 'soak' }));
    revoked.push({ ...k, orgId: orgs.churn, inflight: 0, churn: true, rotated: true });
  }
  for (let i = 0; i < UNKNOWN_POOL; i++) unknownFrames.push(frameOf(generateKey('live')));
  console.log(
    `set up through KeyAdmin: 4 organizations; ${POOL_KEYS} keys to allow (rate limit 1,000,000/min, a third under a monthly quota of ${int(QUOTA)}), ` +
      `${CHURN_MIN}-${CHURN_MAX} more churned by KeyAdmin, ${LIMITED_KEYS} limited to ${LIMIT_PER_MINUTE}/min, ${REVOKED_AT_START} revoked at the start`,
  );
}
