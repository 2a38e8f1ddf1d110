/**
 * Fuzzing Check with a real key among junk, on SQLite and PostgreSQL: random and
 * oversized header names and values, invalid UTF-8, keyward's own header names,
 * reserved names and junk context extensions, in `headers` or in `header_map` (value
 * or raw_value), around a key that must be denied (revoked, expired, of an inactive
 * organization, lacking the route's scope, over its rate limit, unknown, malformed).
 *
 * Properties: the junk never turns such a request into an allow, and never changes
 * why it is denied (the same code as without junk); every answer is well formed
 * (support/fuzz.ts checkOutcome). As a control, the same junk around the active key
 * is allowed, with that key's identity.
 */
import fc from 'fast-check';
import { startHarness, type Harness } from './support/harness';
import { checkRequest, RawClient, watchProcessFailures } from './support/raw-grpc';
import { CHECK, checkOutcome, junkHeaderName, junkHeaderValue, junkText, stillServing } from './support/fuzz';
import { DIALECTS } from './support/databases';
import { generateKey } from '../src/keys/format';
import type { DenyCode } from '../src/errors/codes';

type Case = { key: string; code: DenyCode; ext?: [string, string][] };

describe.each(DIALECTS)('Check fuzzing: junk never turns a denial into an allow (%s)', (dialect) => {
  let h: Harness;
  let client: RawClient;
  let watch: ReturnType<typeof watchProcessFailures>;
  let active: { secret: string; id: string };
  let denied: Case[];

  beforeAll(async () => {
    watch = watchProcessFailures();
    h = await startHarness(dialect);
    client = new RawClient(h.app.authzPort);
    const org = await h.root.createOrganization({ name: 'Fuzz', rateLimitPerMinute: 0 });
    const make = async (
      name: string,
      extra: { scopes?: string[]; expiresInDays?: number; rateLimitPerMinute?: number } = {},
      orgId = org.id,
    ) => {
      const r = await h.root.createKey({ organizationId: orgId, name, scopes: ['chat'], ...extra });
      return { secret: r.secret, id: r.key!.id };
    };
    const a = await make('active');
    active = a;
    const revoked = await make('revoked');
    await h.root.revokeKey({ id: revoked.id, reason: 'fuzz' });
    const expired = await make('expired', { expiresInDays: 1 });
    const scoped = await make('scoped', { scopes: ['agents:read', 'agents:*x', 'chat:read'] });
    const limited = await make('limited', { rateLimitPerMinute: 1 });
    const other = await h.root.createOrganization({ name: 'Inactive' });
    const inactive = await make('inactive', {}, other.id);
    await h.root.updateOrganization({ id: other.id, active: false });
    h.clock.advance(2 * 86_400_000); // the expiring key has expired
    // The limited key spends its one request of this minute.
    expect(checkOutcome(await client.unary(CHECK, checkRequest({ headers: [['x-api-key', limited.secret]] })), {}, h.config).allow).toBe(
      true,
    );
    const unknown = generateKey('live');
    denied = [
      { key: revoked.secret, code: 'revoked_api_key' },
      { key: expired.secret, code: 'expired_api_key' },
      { key: inactive.secret, code: 'organization_inactive' },
      { key: scoped.secret, code: 'insufficient_scope', ext: [['required_scopes', 'chat']] },
      { key: active.secret, code: 'insufficient_scope', ext: [['required_scopes', 'chat,admin']] },
      { key: active.secret, code: 'insufficient_scope', ext: [['any_scopes', 'agents:read,reports:read']] },
      { key: limited.secret, code: 'rate_limit_exceeded' },
      { key: unknown, code: 'invalid_api_key' },
      { key: active.secret.slice(0, -1) + (active.secret.endsWith('A') ? 'B' : 'A'), code: 'invalid_api_key' },
      { key: `${active.secret}\u00e9`, code: 'invalid_api_key' },
    ];
  });
  afterAll(async () => {
    client?.close();
    watch?.stop();
    await h?.stop();
    expect(watch.failures).toEqual([]);
  });

  /** Junk that carries no credential: names never lower-case to a credential header. */
  const junk = fc.record({
    container: fc.constantFrom('headers', 'value', 'raw'),
    headers: fc.array(fc.tuple(junkHeaderName({ credentialNames: false }), junkHeaderValue(['Bearer x', 'kw_live_', ','])), {
      maxLength: 12,
    }),
    ext: fc
      .array(fc.tuple(junkText(60), junkText(3000)), { maxLength: 3 })
      .map((l) => l.filter(([k]) => k !== 'required_scopes' && k !== 'any_scopes')),
    method: junkText(200),
    path: junkText(200),
    host: junkText(200),
    credential: fc.constantFrom<[string, (k: string) => string]>(
      ['x-api-key', (k) => k],
      ['X-API-Key', (k) => ` ${k}\t`],
      ['authorization', (k) => `Bearer ${k}`],
      ['AUTHORIZATION', (k) => `bearer\t${k} `],
    ),
    at: fc.nat(),
  });

  type Junk = typeof junk extends fc.Arbitrary<infer T> ? T : never;
  function request(j: Junk, key: string, ext: [string, string][] = []): Buffer {
    const [name, form] = j.credential;
    const list: [string | Buffer, string | Buffer][] = [...j.headers];
    list.splice(j.at % (list.length + 1), 0, [name, form(key)]);
    const common = { method: j.method, path: j.path, host: j.host, contextExtensions: [...j.ext, ...ext] };
    if (j.container === 'headers') return checkRequest({ ...common, headers: list });
    // header_map wins over headers: the same junk also goes to headers, without the credential.
    return checkRequest({
      ...common,
      headers: j.headers,
      headerMap: list.map(([k, v]) => (j.container === 'value' ? { key: k, value: v } : { key: k, raw: v })),
    });
  }

  it('self-check: each key is denied with its code, and the active key is allowed, without junk', async () => {
    for (const c of denied) {
      const o = checkOutcome(
        await client.unary(CHECK, checkRequest({ headers: [['x-api-key', c.key]], contextExtensions: c.ext })),
        {},
        h.config,
      );
      expect({ allow: o.allow, code: 'code' in o ? o.code : undefined }).toEqual({ allow: false, code: c.code });
    }
    await stillServing(h, client, active.secret, watch.failures);
  });

  it('denies every key that must be denied, with the same code, whatever junk surrounds it', async () => {
    await fc.assert(
      fc.asyncProperty(junk, fc.nat(), async (j, pick) => {
        const c = denied[pick % denied.length]!;
        const o = checkOutcome(await client.unary(CHECK, request(j, c.key, c.ext)), {}, h.config);
        expect(o.allow).toBe(false);
        expect('code' in o && o.code).toBe(c.code);
      }),
      { numRuns: dialect === 'sqlite' ? 200 : 120 },
    );
    await stillServing(h, client, active.secret, watch.failures);
  });

  it('allows the active key, as itself, whatever junk surrounds it (control)', async () => {
    await fc.assert(
      fc.asyncProperty(junk, async (j) => {
        const o = checkOutcome(await client.unary(CHECK, request(j, active.secret, [['required_scopes', 'chat']])), {}, h.config);
        expect(o.allow).toBe(true);
        if (o.allow) {
          const identity = o.response.okResponse!.headers.find((x) => x.header?.key === 'x-keyward-key-id');
          expect(identity?.header?.value).toBe(active.id);
        }
      }),
      { numRuns: 60 },
    );
    await stillServing(h, client, active.secret, watch.failures);
  });
});
