/**
 * Fuzzing every KeyAdmin RPC's authentication through the real admin gRPC server, on
 * SQLite and PostgreSQL (requests: support/admin-requests.ts; fixture: support/admin-fuzz.ts).
 *
 * Properties:
 *  - without a credential, or with a junk or wrong one (random text, other schemes,
 *    a near-miss of the token, unknown keys and tokens, a key without `admin`, a
 *    revoked admin key, two authorization entries, a credential with a tab), no call
 *    succeeds: each fails with missing_credentials or invalid_credentials, and nothing
 *    changes (organizations and keys are identical; the audit log gains only
 *    admin.auth_failed entries, which never hold the credential);
 *  - fixed empty, broken and random requests as root succeed or fail with a documented
 *    code, never `internal` nor an authentication or permission code;
 *  - no error holds a secret of the test (support/harness secretsIn);
 *  - the servers keep serving, and no unhandled rejection or uncaught exception happens.
 */
import fc from 'fast-check';
import { secretsIn, TEST_ADMIN_TOKEN } from './support/harness';
import { tag, WT } from './support/raw-grpc';
import { DIALECTS } from './support/databases';
import { call, described, messageArb, requestArb, RPCS, type Rpc } from './support/admin-requests';
import { adminFuzzOn } from './support/admin-fuzz';

describe.each(DIALECTS)('KeyAdmin fuzzing: every RPC, without, with a wrong and with the root credential (%s)', (dialect) => {
  const fuzz = adminFuzzOn(dialect);
  /** Every credential string sent by the junk property (to look for in the audit log). */
  const junkSent = new Set<string>();

  it('covers every RPC of the generated definition', () => {
    expect(RPCS.map((r) => r.name)).toEqual(Object.keys(described));
    expect(RPCS.length).toBeGreaterThanOrEqual(17);
  });

  it('answers each RPC without a credential, with a wrong one and as root, for empty, broken and random requests', async () => {
    const { harness: h, admin, pool, expectDocumentedError } = fuzz;
    const before = await fuzz.state();
    const bodies = (rpc: Rpc) => [
      Buffer.alloc(0),
      Buffer.from([0xff, 0xff, 0xff]),
      Buffer.concat([tag(1, WT.VARINT), Buffer.alloc(12, 0xff), Buffer.from([1])]),
      Buffer.concat([tag(1, WT.I64), Buffer.alloc(8, 7)]),
      fc.sample(messageArb(rpc.request, pool), { numRuns: 1, seed: rpc.path.length })[0]!,
    ];
    for (const rpc of RPCS) {
      for (const body of bodies(rpc)) {
        expect({ rpc: rpc.name, code: expectDocumentedError(await call(h, admin, rpc, body, { kind: 'grpc', values: [] })) }).toEqual({
          rpc: rpc.name,
          code: 'missing_credentials',
        });
        expect({
          rpc: rpc.name,
          code: expectDocumentedError(await call(h, admin, rpc, body, { kind: 'grpc', values: [`Bearer ${TEST_ADMIN_TOKEN}0`] })),
        }).toEqual({ rpc: rpc.name, code: 'invalid_credentials' });
      }
    }
    expect(await fuzz.state()).toBe(before);
    for (const rpc of RPCS) {
      for (const body of bodies(rpc)) {
        const r = await call(h, admin, rpc, body, { kind: 'grpc', values: [`Bearer ${TEST_ADMIN_TOKEN}`] });
        if (r.status === 0) expect(() => rpc.decodeResponse(r.response!)).not.toThrow();
        else
          expect({ rpc: rpc.name, code: expectDocumentedError(r) }).not.toMatchObject({
            code: expect.stringMatching(
              /^(internal|missing_credentials|invalid_credentials|permission_denied|too_many_auth_failures)$/,
            ) as unknown,
          });
      }
    }
    await fuzz.probe();
  });

  it('never answers a missing, junk or wrong credential with success, and changes nothing', async () => {
    const { harness: h, admin, pool, expectDocumentedError } = fuzz;
    const before = await fuzz.state();
    const auditBefore = (await h.root.listAuditEvents({ pageSize: 1000 })).events.length;
    await fc.assert(
      fc.asyncProperty(requestArb(pool), fuzz.junkCredential, async ({ rpc, body }, cred) => {
        if (cred.kind === 'grpc') cred.values.forEach((v) => junkSent.add(v.replace(/^\S+\s+/, '')));
        else junkSent.add(cred.value);
        const code = expectDocumentedError(await call(h, admin, rpc, body, cred));
        expect(['missing_credentials', 'invalid_credentials', 'message_too_large']).toContain(code);
      }),
      { numRuns: dialect === 'sqlite' ? 200 : 120 },
    );
    expect(await fuzz.state()).toBe(before);
    const audit = (await h.root.listAuditEvents({ pageSize: 1000 })).events;
    const added = audit.slice(0, audit.length - auditBefore);
    expect(added.length).toBeGreaterThan(0);
    expect(new Set(added.map((e) => `${e.action}/${e.outcome}`))).toEqual(new Set(['admin.auth_failed/denied']));
    const text = JSON.stringify(audit);
    expect(secretsIn(text, h.config)).toEqual([]);
    for (const s of junkSent) if (s.length >= 16) expect(text).not.toContain(s);
    await fuzz.probe();
  });
});
