/**
 * Graceful shutdown of a real `keyward serve`: on SIGTERM an in-flight RPC (an Envoy
 * access-log stream) may finish and is answered normally; one that outlives
 * KEYWARD_SHUTDOWN_DEADLINE_SECONDS is cancelled and the process exits anyway.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  credentials,
  loadPackageDefinition,
  type Client,
  type ClientWritableStream,
  type GrpcObject,
  type ServiceError,
} from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { startServerProcess, type ServerProcess } from './support/server-process';

const definition = loadSync('envoy/service/accesslog/v3/als.proto', {
  includeDirs: [join(__dirname, '..', 'proto')],
  keepCase: true,
  defaults: false,
  oneofs: true,
});
const pkg = loadPackageDefinition(definition) as unknown as { envoy: { service: { accesslog: { v3: GrpcObject } } } };
const AccessLogService = pkg.envoy.service.accesslog.v3.AccessLogService as unknown as new (
  addr: string,
  creds: ReturnType<typeof credentials.createInsecure>,
) => Client;

function openStream(port: number): { call: ClientWritableStream<unknown>; done: Promise<{ error?: ServiceError }>; client: Client } {
  const client = new AccessLogService(`127.0.0.1:${port}`, credentials.createInsecure());
  let call!: ClientWritableStream<unknown>;
  const done = new Promise<{ error?: ServiceError }>((resolve) => {
    call = (client as unknown as Record<string, (...args: unknown[]) => unknown>).StreamAccessLogs!.call(
      client,
      { deadline: Date.now() + 60_000 },
      (e: ServiceError | null) => resolve(e ? { error: e } : {}),
    ) as ClientWritableStream<unknown>;
  });
  call.write({ identifier: { log_name: 'shutdown-test' }, http_logs: { log_entry: [] } });
  return { call, done, client };
}

describe('graceful shutdown', () => {
  let dir: string;
  let server: ServerProcess | undefined;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'keyward-shutdown-'));
  });
  afterEach(() => {
    if (server && server.proc.exitCode === null) server.proc.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  const start = (deadlineSeconds: string) =>
    startServerProcess({
      KEYWARD_DATABASE_URL: `sqlite:${join(dir, 'kw.db')}`,
      KEYWARD_HASH_SECRET: randomBytes(32).toString('hex'),
      KEYWARD_ADMIN_TOKEN: `shutdown-token-${randomBytes(8).toString('hex')}`,
      KEYWARD_SHUTDOWN_DEADLINE_SECONDS: deadlineSeconds,
    });

  it('lets an in-flight stream finish after SIGTERM, answers it, and then exits 0', async () => {
    server = await start('60');
    const s = openStream(server.authzPort);
    await new Promise((r) => setTimeout(r, 200)); // the stream is established
    server.proc.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 300));
    expect(server.proc.exitCode).toBeNull(); // still serving the open stream
    s.call.end();
    expect(await s.done).toEqual({});
    expect(await server.exited).toBe(0);
    s.client.close();
  });

  it('cancels a stream that outlives KEYWARD_SHUTDOWN_DEADLINE_SECONDS and exits', async () => {
    server = await start('1');
    const s = openStream(server.authzPort);
    await new Promise((r) => setTimeout(r, 200));
    server.proc.kill('SIGTERM');
    // The default deadline (10 s) would not end it within this bound.
    let bound: NodeJS.Timeout | undefined;
    const exited = await Promise.race([
      server.exited,
      new Promise<'still running'>((r) => (bound = setTimeout(() => r('still running'), 6000))),
    ]);
    clearTimeout(bound); // else it outlives the file and keeps the jest worker from exiting
    expect(exited).toBe(0);
    expect((await s.done).error).toBeDefined();
    s.client.close();
    expect(server.stdout()).toContain('shutting down');
  });
});
