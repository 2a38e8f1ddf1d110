/** 1. Revocation propagation between two keyward processes on one PostgreSQL. */
import { performance } from 'node:perf_hooks';
import { Client } from '@grpc/grpc-js';
import { Client as PgClient } from 'pg';
import { CheckResponse } from '../../src/gen/envoy/service/auth/v3/external_auth';
import { Environment, KeyAdminClient } from '../../src/gen/keyward/admin/v1/key_admin';
import { checkRequestBytes } from '../support/check-request';
import { denyCode, rawCheck } from '../support/keyward';
import { REVOKE_DEADLINE_MS } from './settings';
import { fmtMs, unary } from './helpers';

export interface RevokeRun {
  ok: boolean;
  error?: string;
  /** From sending RevokeKey to B's first deny. */
  propagationMs?: number;
  /** RevokeKey's round trip on A. */
  revokeRpcMs?: number;
  /** Checks sent to B from the revoke to the deny. */
  polls?: number;
  /** Allowed answers to Checks sent to B after RevokeKey had returned. */
  allowsAfterAck?: number;
  /** B's first Check (cache miss, loads from the database) and second (cache hit). */
  missMs?: number;
  hitMs?: number;
}

/** The x-keyward-scopes header of an allowed Check, else undefined. */
export function scopesHeader(r: CheckResponse): string | undefined {
  return r.okResponse?.headers.find((h) => h.header?.key === 'x-keyward-scopes')?.header?.value;
}

/**
 * A sentinel key, cached on B, whose scopes the barrier changes. barrier() returns once
 * B's Check of the sentinel shows the new scopes, i.e. once B has processed every
 * announcement committed before the barrier's UpdateKey.
 */
export class Barrier {
  private gen = 0;
  private constructor(
    private readonly admin: KeyAdminClient,
    private readonly b: Client,
    private readonly keyId: string,
    private readonly req: Buffer,
  ) {}

  static async create(admin: KeyAdminClient, b: Client, orgId: string): Promise<Barrier> {
    const k = await unary(admin.createKey.bind(admin), {
      requestId: '',
      organizationId: orgId,
      name: 'barrier',
      environment: Environment.ENVIRONMENT_LIVE,
      scopes: ['gen-0'],
      metadata: {},
    });
    const barrier = new Barrier(admin, b, k.key!.id, checkRequestBytes(k.secret));
    await barrier.pass();
    return barrier;
  }

  async pass(): Promise<void> {
    const want = `gen-${++this.gen}`;
    await unary(this.admin.updateKey.bind(this.admin), {
      id: this.keyId,
      scopes: { values: [want] },
      expiresAt: undefined,
      clearExpiresAt: false,
      clearRateLimitPerMinute: false,
      metadata: undefined,
    });
    const t0 = performance.now();
    for (;;) {
      if (scopesHeader(await rawCheck(this.b, this.req, REVOKE_DEADLINE_MS)) === want) return;
      if (performance.now() - t0 > REVOKE_DEADLINE_MS)
        throw new Error(`barrier: B did not see the sentinel's scope update within ${REVOKE_DEADLINE_MS} ms`);
    }
  }
}

export async function revocationRun(
  admin: KeyAdminClient,
  b: Client,
  pg: PgClient,
  barrier: Barrier,
  orgId: string,
  i: number,
): Promise<RevokeRun> {
  const created = await unary(admin.createKey.bind(admin), {
    requestId: '',
    organizationId: orgId,
    name: `revoke-${i}`,
    environment: Environment.ENVIRONMENT_LIVE,
    scopes: [],
    metadata: {},
  });
  const keyId = created.key!.id;
  const req = checkRequestBytes(created.secret);
  // B has heard of the CreateKey: its announcement can no longer evict the key.
  await barrier.pass();

  // B loads the key (first allowed Check: a miss), then answers it again (a hit).
  const t1 = performance.now();
  let missMs: number | undefined;
  while (missMs === undefined) {
    const r = await rawCheck(b, req, REVOKE_DEADLINE_MS);
    if (r.okResponse) missMs = performance.now() - t1;
    else if (performance.now() - t1 > REVOKE_DEADLINE_MS)
      return { ok: false, error: `new key not allowed on B within ${REVOKE_DEADLINE_MS} ms (last: ${denyCode(r)})` };
  }
  const t2 = performance.now();
  if (!(await rawCheck(b, req, REVOKE_DEADLINE_MS)).okResponse) return { ok: false, error: 'second Check on B not allowed' };
  const hitMs = performance.now() - t2;

  // Cache probe: with the row marked revoked behind keyward's back (no NOTIFY), only a
  // cached answer can still allow the key. Restored before the real revoke.
  await pg.query('update api_keys set revoked_at = now() where id = $1', [keyId]);
  let probe: CheckResponse;
  try {
    probe = await rawCheck(b, req, REVOKE_DEADLINE_MS);
  } finally {
    await pg.query('update api_keys set revoked_at = null where id = $1', [keyId]);
  }
  if (!probe.okResponse)
    return { ok: false, error: `cache probe: B re-read the key from the database (${denyCode(probe)}), so it was not cached` };

  // The measurement: revoke on A, poll B back to back until it denies.
  let revokeDoneAt: number | undefined;
  let revokeError: unknown;
  const t0 = performance.now();
  const revoke = unary(admin.revokeKey.bind(admin), { requestId: '', id: keyId, reason: 'fleet benchmark' }, REVOKE_DEADLINE_MS).then(
    () => void (revokeDoneAt = performance.now()),
    (e: unknown) => void (revokeError = e),
  );
  let polls = 0;
  let allowsAfterAck = 0;
  try {
    for (;;) {
      const sentAfterAck = revokeDoneAt !== undefined;
      const r = await rawCheck(b, req, REVOKE_DEADLINE_MS);
      const at = performance.now();
      polls++;
      if (r.deniedResponse) {
        const code = denyCode(r);
        if (code !== 'revoked_api_key') return { ok: false, error: `B denied with ${code}, expected revoked_api_key` };
        await revoke;
        if (revokeError) return { ok: false, error: `RevokeKey failed: ${(revokeError as Error).message}` };
        return { ok: true, propagationMs: at - t0, revokeRpcMs: revokeDoneAt! - t0, polls, allowsAfterAck, missMs, hitMs };
      }
      if (sentAfterAck) allowsAfterAck++;
      if (revokeError) return { ok: false, error: `RevokeKey failed: ${(revokeError as Error).message}` };
      if (at - t0 > REVOKE_DEADLINE_MS) {
        return {
          ok: false,
          error: `still allowed on B ${REVOKE_DEADLINE_MS} ms after the revoke (${polls} polls, revoke RPC ${revokeDoneAt === undefined ? 'pending' : `returned after ${fmtMs(revokeDoneAt - t0)}`})`,
        };
      }
    }
  } finally {
    await revoke;
  }
}
