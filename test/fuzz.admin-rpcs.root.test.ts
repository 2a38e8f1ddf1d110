/**
 * Fuzzing every KeyAdmin RPC as root through the real admin gRPC server, on SQLite and
 * PostgreSQL (requests: support/admin-requests.ts; fixture: support/admin-fuzz.ts).
 *
 * Properties:
 *  - every call either succeeds with a response that decodes, or fails with a code of
 *    src/errors/codes.ts under its gRPC status, never `internal` nor an authentication
 *    or permission code; invalid_argument names its field in ErrorInfo and BadRequest;
 *  - no error and no response holds a secret of the test (support/harness secretsIn),
 *    apart from the new key of CreateKey and RotateKey;
 *  - the run reaches past validation: the fixed examples (run first) make one call
 *    succeed and one fail with invalid_argument;
 *  - the servers keep serving, and no unhandled rejection or uncaught exception happens.
 */
import fc from 'fast-check';
import { secretsIn, TEST_ADMIN_TOKEN } from './support/harness';
import { DIALECTS } from './support/databases';
import { call, printable, requestArb, RPCS } from './support/admin-requests';
import { adminFuzzOn } from './support/admin-fuzz';

describe.each(DIALECTS)('KeyAdmin fuzzing: every RPC as root (%s)', (dialect) => {
  const fuzz = adminFuzzOn(dialect);

  it('answers root with a decodable response or a documented error, never internal, and leaks no secret', async () => {
    const { harness: h, admin, pool, expectDocumentedError } = fuzz;
    const codes = new Map<string, number>();
    await fc.assert(
      fc.asyncProperty(requestArb(pool), async ({ rpc, body }) => {
        const r = await call(h, admin, rpc, body, { kind: 'grpc', values: [`Bearer ${TEST_ADMIN_TOKEN}`] });
        if (r.status !== 0) {
          const code = expectDocumentedError(r);
          codes.set(code, (codes.get(code) ?? 0) + 1);
          expect(['internal', 'missing_credentials', 'invalid_credentials', 'permission_denied', 'too_many_auth_failures']).not.toContain(
            code,
          );
          return;
        }
        codes.set('ok', (codes.get('ok') ?? 0) + 1);
        const res = rpc.decodeResponse(r.response!) as Record<string, unknown>;
        // The new key of CreateKey and RotateKey is the one secret a response carries, once.
        const { secret, ...rest } = res;
        if (rpc.name === 'CreateKey' || rpc.name === 'RotateKey') expect(String(secret)).toMatch(/^kw_(live|test)_/);
        let text = JSON.stringify(rest, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v));
        // What the fuzzer itself stored (names, metadata) may come back; nothing else.
        for (const s of pool.secrets) text = text.split(s).join('');
        // So may a hash-shaped run of hex digits the request itself sent (a name of 64 'a's).
        const sent = `${body.toString('utf8')}\u0000${body.toString('latin1')}`;
        text = text.replace(/[0-9a-f]{64,}/gi, (run) => (sent.includes(run) ? '' : run));
        expect(secretsIn(text, h.config)).toEqual([]);
      }),
      // Run first: one call that succeeds and one refused by validation are always among the inputs.
      {
        numRuns: dialect === 'sqlite' ? 300 : 150,
        examples: [
          [{ rpc: RPCS.find((r) => r.name === 'ListOrganizations')!, body: printable(Buffer.alloc(0)) }],
          [{ rpc: RPCS.find((r) => r.name === 'CreateOrganization')!, body: printable(Buffer.alloc(0)) }],
        ],
      },
    );
    // The run reached past validation and authentication.
    expect(codes.get('ok') ?? 0).toBeGreaterThan(0);
    expect(codes.get('invalid_argument') ?? 0).toBeGreaterThan(0);
    await fuzz.probe();
  });
});
