/**
 * The fixture of the KeyAdmin fuzz tests (test/fuzz.admin-rpcs.*.test.ts): a harness
 * with real organizations and keys the fuzzer learns of, a liveness probe's key it
 * never learns of, junk credentials, and the check every failed call must pass.
 */
import fc from 'fast-check';
import { startHarness, secretsIn, TEST_ADMIN_TOKEN, type Harness } from './harness';
import { keywardError, RawClient, watchProcessFailures, type RawResult } from './raw-grpc';
import { stillServing } from './fuzz';
import type { Dialect } from './databases';
import type { Credential, Pool } from './admin-requests';
import { ERROR_TABLE, isErrorCode } from '../../src/errors/codes';
import { generateAdminToken, generateKey } from '../../src/keys/format';

export interface AdminFuzz {
  harness: Harness;
  admin: RawClient;
  /** Ids of real rows and secrets of the test, for the request generators. */
  pool: Pool;
  /** Missing, junk and near-miss credentials, none of which may succeed. */
  junkCredential: fc.Arbitrary<Credential>;
  /** Fails unless Check still answers the probe key and no process failure happened. */
  probe: () => Promise<void>;
  /** Organizations and their keys, as root sees them. */
  state: () => Promise<string>;
  /**
   * A failed call's keyward error: known code, the table's gRPC status, both copies
   * agreeing, no secret. A message above 4 MiB is refused by grpc-js itself, before
   * keyward sees it (RESOURCE_EXHAUSTED, no keyward code): `message_too_large`.
   */
  expectDocumentedError: (r: RawResult) => string;
}

/**
 * Registers beforeAll/afterAll starting and stopping the fixture on `dialect`; the
 * returned object is filled in by beforeAll. afterAll fails on any unhandled rejection
 * or uncaught exception seen meanwhile.
 */
export function adminFuzzOn(dialect: Dialect): AdminFuzz {
  const fuzz = {} as AdminFuzz;
  let h: Harness;
  let authz: RawClient;
  let watch: ReturnType<typeof watchProcessFailures>;
  let probeKey: string;

  beforeAll(async () => {
    watch = watchProcessFailures();
    h = await startHarness(dialect);
    const admin = new RawClient(h.app.adminPort);
    authz = new RawClient(h.app.authzPort);
    // The liveness probe's key lives in an organization the fuzzer never learns of.
    const probeOrg = await h.root.createOrganization({ name: 'Probe', rateLimitPerMinute: 0 });
    probeKey = (await h.root.createKey({ organizationId: probeOrg.id, name: 'probe', scopes: ['chat'] })).secret;

    const org = await h.root.createOrganization({ name: 'Fuzz' });
    const other = await h.root.createOrganization({ name: 'Other' });
    const mk = (o: string, name: string, scopes: string[]) =>
      h.root.createKey({ organizationId: o, name, scopes, metadata: { team: 'fuzz' } });
    const adminKey = await mk(org.id, 'admin', ['admin']);
    const chatKey = await mk(org.id, 'chat', ['chat', '*']);
    const revokedAdmin = await mk(org.id, 'revoked-admin', ['admin']);
    await h.root.revokeKey({ id: revokedAdmin.key!.id, reason: 'fuzz' });
    const otherKey = await mk(other.id, 'other', ['admin']);
    const pool: Pool = {
      ids: [org.id, other.id, adminKey.key!.id, chatKey.key!.id, revokedAdmin.key!.id, otherKey.key!.id],
      secrets: [chatKey.secret, generateKey('test'), generateAdminToken()],
    };
    const near = (s: string) => s.slice(0, -1) + (s.endsWith('x') ? 'y' : 'x');
    const junkCredential = fc.oneof(
      { weight: 2, arbitrary: fc.stringMatching(/^[ -~]{0,80}$/).map((v): Credential => ({ kind: 'grpc', values: [v] })) },
      { weight: 2, arbitrary: fc.stringMatching(/^[!-~]{1,60}$/).map((v): Credential => ({ kind: 'grpc', values: [`Bearer ${v}`] })) },
      {
        weight: 4,
        arbitrary: fc
          .constantFrom(
            `Basic ${TEST_ADMIN_TOKEN}`,
            `Bearer ${near(TEST_ADMIN_TOKEN)}`,
            `Bearer ${TEST_ADMIN_TOKEN}x`,
            `Bearer ${TEST_ADMIN_TOKEN.slice(1)}`,
            `Bearer ${TEST_ADMIN_TOKEN} extra`,
            `Bearer${TEST_ADMIN_TOKEN}`,
            `Bearer ${generateKey('live')}`,
            `Bearer ${generateAdminToken()}`,
            `Bearer ${chatKey.secret}`,
            `Bearer ${revokedAdmin.secret}`,
            `Bearer ${near(adminKey.secret)}`,
            `Bearer ${'t'.repeat(10_000)}`,
            'Bearer',
            'Bearer ',
            '',
          )
          .map((v): Credential => ({ kind: 'grpc', values: [v] })),
      },
      // Two credentials joined as a proxy joins repeated headers (Node's HTTP/2 client sends authorization once only).
      {
        weight: 1,
        arbitrary: fc
          .constantFrom(`Bearer ${TEST_ADMIN_TOKEN}, Bearer ${TEST_ADMIN_TOKEN}`, `Bearer ${TEST_ADMIN_TOKEN},`)
          .map((v): Credential => ({ kind: 'grpc', values: [v] })),
      },
      {
        weight: 1,
        arbitrary: fc
          .constantFrom(`Bearer\t${TEST_ADMIN_TOKEN}\u00e9`, `Bearer ${TEST_ADMIN_TOKEN}\u00ff`, `Bearer ${adminKey.secret}\t\u0080`)
          .map((value): Credential => ({ kind: 'http2', value })),
      },
      { weight: 1, arbitrary: fc.constant<Credential>({ kind: 'grpc', values: [] }) },
    );
    Object.assign(fuzz, { harness: h, admin, pool, junkCredential });
  });
  afterAll(async () => {
    fuzz.admin?.close();
    authz?.close();
    watch?.stop();
    await h?.stop();
    expect(watch.failures).toEqual([]);
  });

  fuzz.probe = () => stillServing(h, authz, probeKey, watch.failures);
  fuzz.state = async () => {
    await h.app.lastUsed.flush();
    const orgs = await h.root.listOrganizations({ pageSize: 1000 });
    const keys = await Promise.all(
      orgs.organizations.map((o) => h.root.listKeys({ organizationId: o.id, includeRevoked: true, pageSize: 1000 })),
    );
    return JSON.stringify({ orgs, keys });
  };
  fuzz.expectDocumentedError = (r) => {
    expect(r.status).not.toBe(0);
    if (r.status === 8 && /^Received message larger than max \(\d+ vs 4194304\)$/.test(r.details)) return 'message_too_large';
    const e = keywardError(r);
    expect(isErrorCode(e.trailerCode)).toBe(true);
    expect(e.info).toMatchObject({ reason: e.trailerCode, domain: 'keyward' });
    const code = e.trailerCode as keyof typeof ERROR_TABLE;
    expect(r.status).toBe(ERROR_TABLE[code].grpc);
    if (code === 'invalid_argument') {
      expect(e.info!.metadata.field).toBeTruthy();
      expect(e.badRequest?.fieldViolations.map((v) => v.field)).toEqual([e.info!.metadata.field]);
    } else expect(e.badRequest).toBeUndefined();
    expect(secretsIn(`${r.details} ${JSON.stringify(e.info)} ${JSON.stringify(e.badRequest ?? {})}`, h.config)).toEqual([]);
    for (const s of fuzz.pool.secrets) expect(r.details).not.toContain(s);
    return code;
  };
  return fuzz;
}
