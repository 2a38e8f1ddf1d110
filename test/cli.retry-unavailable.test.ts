/**
 * The CLI sends a fresh request_id with each change and retries UNAVAILABLE with the
 * same one. Between the CLI and a real keyward sits a KeyAdmin proxy (grpc-js, port 0)
 * that forwards every call and, when told, answers one call UNAVAILABLE: either after
 * forwarding it (the change was applied, the answer was lost) or without forwarding it
 * (the server was never reached). Either way the command succeeds and the change is
 * made exactly once; the CLI prints the secret the server made the first time.
 */
import {
  credentials,
  Metadata,
  Server,
  ServerCredentials,
  status,
  type sendUnaryData,
  type ServerUnaryCall,
  type ServiceError,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { runCli } from '../src/cli/main';
import { KeyAdminClient, KeyAdminService } from '../src/gen/keyward/admin/v1/key_admin';
import { DIALECTS } from './support/databases';
import { startHarness, TEST_ADMIN_TOKEN, type Harness } from './support/harness';

type Failure = 'after-forwarding' | 'before-forwarding';

/** A KeyAdmin proxy that records every call's method and request_id. */
class FlakyAdminProxy {
  readonly calls: { method: string; requestId: string }[] = [];
  /** The responses the upstream server gave, by call. */
  readonly upstreamResponses: unknown[] = [];
  /** The next call of this method is answered UNAVAILABLE. */
  failNext: { method: string; how: Failure } | undefined;
  port = 0;
  private readonly server = new Server();
  private readonly upstream: KeyAdminClient;

  constructor(upstreamPort: number) {
    this.upstream = new KeyAdminClient(`127.0.0.1:${upstreamPort}`, credentials.createInsecure());
    const impl: UntypedServiceImplementation = {};
    for (const method of Object.keys(KeyAdminService)) {
      impl[method] = (call: ServerUnaryCall<{ requestId?: string }, unknown>, callback: sendUnaryData<unknown>) =>
        this.forward(method, call, callback);
    }
    this.server.addService(KeyAdminService, impl);
  }

  async start(): Promise<void> {
    this.port = await new Promise<number>((resolve, reject) =>
      this.server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (e, port) => (e ? reject(e) : resolve(port))),
    );
  }

  stop(): void {
    this.upstream.close();
    this.server.forceShutdown();
  }

  private forward(method: string, call: ServerUnaryCall<{ requestId?: string }, unknown>, callback: sendUnaryData<unknown>): void {
    this.calls.push({ method, requestId: call.request.requestId ?? '' });
    const fail = this.failNext?.method === method ? this.failNext : undefined;
    if (fail) this.failNext = undefined;
    const unavailable = { code: status.UNAVAILABLE, details: 'proxy: connection to the server lost' } as ServiceError;
    if (fail?.how === 'before-forwarding') return callback(unavailable);
    const md = new Metadata();
    md.set('authorization', String(call.metadata.get('authorization')[0] ?? ''));
    const fn = (this.upstream as unknown as Record<string, (...a: unknown[]) => unknown>)[method]!;
    fn.call(this.upstream, call.request, md, (e: ServiceError | null, res: unknown) => {
      if (!e) this.upstreamResponses.push(res);
      if (fail) return callback(unavailable);
      callback(e, res);
    });
  }
}

async function cli(proxy: FlakyAdminProxy, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(args, {
    env: { KEYWARD_ADMIN_URL: `127.0.0.1:${proxy.port}`, KEYWARD_ADMIN_TOKEN: TEST_ADMIN_TOKEN },
    stdout: { write: (s: string) => (stdout += s) },
    stderr: { write: (s: string) => (stderr += s) },
  });
  return { code, stdout, stderr };
}

describe.each(DIALECTS)('CLI retries of changes on %s', (dialect) => {
  let h: Harness;
  let proxy: FlakyAdminProxy;
  let orgId: string;
  beforeEach(async () => {
    h = await startHarness(dialect);
    proxy = new FlakyAdminProxy(h.app.adminPort);
    await proxy.start();
    orgId = (await h.root.createOrganization({ name: 'acme' })).id;
  });
  afterEach(async () => {
    proxy?.stop();
    await h?.stop();
  });

  const keysOf = async () => (await h.root.listKeys({ organizationId: orgId, includeRevoked: true })).keys;

  it('key create: the answer is lost once; the retry with the same request_id gets the first key and secret', async () => {
    proxy.failNext = { method: 'createKey', how: 'after-forwarding' };
    const r = await cli(proxy, ['key', 'create', '--org', orgId, '--name', 'ci', '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const printed = JSON.parse(r.stdout) as { id: string; key: string };
    const creates = proxy.calls.filter((c) => c.method === 'createKey');
    expect(creates).toHaveLength(2);
    expect(creates[0]!.requestId).toMatch(/^[0-9a-f-]{36}$/);
    expect(creates[1]!.requestId).toBe(creates[0]!.requestId);
    // Both upstream answers are the first call's: one key, its secret printed.
    const [first, second] = proxy.upstreamResponses as { key: { id: string }; secret: string }[];
    expect(second).toEqual(first);
    expect(printed).toMatchObject({ id: first!.key.id, key: first!.secret });
    expect((await keysOf()).map((k) => k.id)).toEqual([first!.key.id]);
  });

  it('org create, key rotate and key revoke: UNAVAILABLE once (reached or not), applied exactly once', async () => {
    const orgsBefore = (await h.root.listOrganizations({})).organizations.length;
    proxy.failNext = { method: 'createOrganization', how: 'after-forwarding' };
    const org = await cli(proxy, ['org', 'create', '--name', 'beta', '--json']);
    expect([org.code, org.stderr]).toEqual([0, '']);
    expect((await h.root.listOrganizations({})).organizations.length).toBe(orgsBefore + 1);

    const { key } = await h.root.createKey({ organizationId: orgId, name: 'k' });
    proxy.failNext = { method: 'rotateKey', how: 'after-forwarding' };
    const rotated = await cli(proxy, ['key', 'rotate', key!.id, '--json']);
    expect([rotated.code, rotated.stderr]).toEqual([0, '']);
    expect(await keysOf()).toHaveLength(2);
    expect((JSON.parse(rotated.stdout) as { key: string }).key).toBe((proxy.upstreamResponses.at(-1) as { secret: string }).secret);

    proxy.failNext = { method: 'revokeKey', how: 'before-forwarding' };
    const revoked = await cli(proxy, ['key', 'revoke', key!.id, '--reason', 'done', '--json']);
    expect([revoked.code, revoked.stderr]).toEqual([0, '']);
    const revokes = proxy.calls.filter((c) => c.method === 'revokeKey');
    expect(revokes.map((c) => c.requestId)).toEqual([revokes[0]!.requestId, revokes[0]!.requestId]);
    expect((await h.root.listAuditEvents({ action: 'key.revoke', organizationId: orgId })).events).toHaveLength(1);

    // Each command has its own request_id.
    const ids = new Set(proxy.calls.filter((c) => c.requestId !== '').map((c) => c.requestId));
    expect(ids.size).toBe(3);
  });

  it('a refusal is not retried', async () => {
    const r = await cli(proxy, ['key', 'create', '--org', orgId, '--name', ' ', '--json']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error: invalid_argument: /);
    expect(proxy.calls.filter((c) => c.method === 'createKey')).toHaveLength(1);
  });
});
