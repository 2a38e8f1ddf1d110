/**
 * `keyward health`, the container image's HEALTHCHECK: asks a real keyward's
 * operations HTTP server for /healthz or /readyz, maps wildcard listen addresses to
 * loopback, and exits 0 / 1 / 2 as documented.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { Client } from 'pg';
import { runCli } from '../src/cli/main';
import { createPki, writePair } from './support/certs';
import { healthTarget } from '../src/cli/commands/health';
import { adminPgUrl } from './support/databases';
import { startHarness, type Harness } from './support/harness';
import { closedPort } from './support/ports';

const BIN = join(__dirname, '..', 'dist', 'cli', 'main.js');

async function cli(args: string[], env: Record<string, string>): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runCli(args, { env, stdout: { write: (s: string) => (out += s) }, stderr: { write: (s: string) => (err += s) } });
  return { code, out, err };
}

function run(file: string, args: string[], env: Record<string, string>): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { env, timeout: 20000 }, (e, out, err) =>
      resolve({ code: e ? Number((e as { code?: number }).code ?? -1) : 0, out, err }),
    );
  });
}

describe('keyward health against a running keyward', () => {
  let h: Harness;
  let port: number;

  beforeAll(async () => {
    h = await startHarness('postgres', { httpListen: '127.0.0.1:0' });
    port = h.app.httpPort!;
  });
  afterAll(async () => {
    await h.stop();
  });

  it('exits 0 and prints ok for /healthz, asking loopback for a 0.0.0.0 listen address', async () => {
    const r = await cli(['health'], { KEYWARD_HTTP_LISTEN: `0.0.0.0:${port}` });
    expect(r).toEqual({ code: 0, out: 'ok\n', err: '' });
  });

  it('with --ready, exits 0 and prints the readiness report', async () => {
    const r = await cli(['health', '--ready'], { KEYWARD_HTTP_LISTEN: `127.0.0.1:${port}` });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toEqual({ ready: true, checks: { store: 'ok', migrations: 'ok' } });
  });

  it('works as the built CLI the image runs (node dist/cli/main.js health)', async () => {
    // Asynchronously: the server answering it runs in this process.
    const r = await run(process.execPath, [BIN, 'health'], { PATH: process.env.PATH ?? '', KEYWARD_HTTP_LISTEN: `0.0.0.0:${port}` });
    expect(r).toEqual({ code: 0, out: 'ok\n', err: '' });
  });

  // Last: it drops the database under the running keyward.
  it('with --ready, exits 1 naming the HTTP status once the store is gone, while /healthz stays 0', async () => {
    const name = new URL(h.db.config.url).pathname.slice(1);
    const admin = new Client({ connectionString: adminPgUrl() });
    await admin.connect();
    try {
      await admin.query(`drop database if exists ${name} with (force)`);
    } finally {
      await admin.end();
    }
    const env = { KEYWARD_HTTP_LISTEN: `127.0.0.1:${port}` };
    let r = await cli(['health', '--ready'], env);
    for (let i = 0; i < 200 && r.code === 0; i++) {
      await new Promise((res) => setTimeout(res, 50));
      r = await cli(['health', '--ready'], env);
    }
    expect(r.code).toBe(1);
    expect(r.out).toBe('');
    expect(r.err).toMatch(
      /^error: unavailable: GET http:\/\/127\.0\.0\.1:\d+\/readyz: HTTP 503 \{"ready":false,"checks":\{"store":"(unreachable|timeout)"/,
    );
    expect(r.err.trim().split('\n')).toHaveLength(1);
    expect((await cli(['health'], env)).code).toBe(0);
  });
});

describe('keyward health against an operations port serving TLS', () => {
  let h: Harness;
  let dir: string;
  let files: { cert: string; key: string };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'keyward-health-tls-'));
    // In-process certificates (test/support/certs.ts): no openssl binary needed.
    files = writePair(dir, 'server', createPki('health').server);
    h = await startHarness('sqlite', {
      httpListen: '127.0.0.1:0',
      tls: { http: files, reloadSeconds: 10 },
    });
  });
  afterAll(async () => {
    await h?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('speaks HTTPS when KEYWARD_HTTP_TLS_CERT is set, and fails with plain HTTP', async () => {
    const listen = `127.0.0.1:${h.app.httpPort!}`;
    expect(await cli(['health'], { KEYWARD_HTTP_LISTEN: listen, KEYWARD_HTTP_TLS_CERT: files.cert })).toEqual({
      code: 0,
      out: 'ok\n',
      err: '',
    });
    const plain = await cli(['health'], { KEYWARD_HTTP_LISTEN: listen });
    expect(plain.code).toBe(1);
    expect(plain.err).toMatch(/^error: unavailable: GET http:\/\/127\.0\.0\.1:\d+\/healthz: /);
  });
});

describe('keyward health without an answer', () => {
  let silent: Server;
  const sockets: Socket[] = [];
  afterAll(async () => {
    for (const s of sockets) s.destroy();
    if (silent) await new Promise<void>((r) => silent.close(() => r()));
  });

  it('exits 1 on a refused connection', async () => {
    const r = await cli(['health'], { KEYWARD_HTTP_LISTEN: `127.0.0.1:${await closedPort()}` });
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^error: unavailable: GET http:\/\/127\.0\.0\.1:\d+\/healthz: connection refused\n$/);
  });

  it('exits 1 when nothing answers within --timeout-ms', async () => {
    // Accepts connections and never answers.
    silent = createServer((s) => sockets.push(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const port = (silent.address() as { port: number }).port;
    const r = await cli(['health', '--timeout-ms', '200'], { KEYWARD_HTTP_LISTEN: `127.0.0.1:${port}` });
    expect(r.code).toBe(1);
    expect(r.err).toBe(`error: unavailable: GET http://127.0.0.1:${port}/healthz: no answer within 200 ms\n`);
  });

  it.each([
    [{ KEYWARD_HTTP_LISTEN: 'off' }, 'KEYWARD_HTTP_LISTEN: is off'],
    [{ KEYWARD_HTTP_LISTEN: 'nonsense' }, 'KEYWARD_HTTP_LISTEN: expected host:port'],
    [{ KEYWARD_HTTP_LISTEN: '127.0.0.1:0' }, 'KEYWARD_HTTP_LISTEN: expected host:port'],
  ])('exits 2 naming the variable for %j', async (env, message) => {
    const r = await cli(['health'], env);
    expect(r.code).toBe(2);
    expect(r.err.startsWith(`error: invalid_config: ${message}`)).toBe(true);
  });

  it('exits 2 for a bad --timeout-ms', async () => {
    for (const bad of ['0', '-1', 'soon']) {
      const r = await cli(['health', '--timeout-ms', bad], {});
      expect(r.code).toBe(2);
      expect(r.err).toMatch(/^error: invalid_argument: .*--timeout-ms/);
    }
  });

  it('asks the configured address, loopback for a wildcard one', () => {
    expect(healthTarget({})).toEqual({ host: '127.0.0.1', port: 9193 });
    expect(healthTarget({ KEYWARD_HTTP_LISTEN: '0.0.0.0:9193' })).toEqual({ host: '127.0.0.1', port: 9193 });
    expect(healthTarget({ KEYWARD_HTTP_LISTEN: '[::]:9300' })).toEqual({ host: '::1', port: 9300 });
    expect(healthTarget({ KEYWARD_HTTP_LISTEN: '[fd00::5]:9300' })).toEqual({ host: 'fd00::5', port: 9300 });
    expect(healthTarget({ KEYWARD_HTTP_LISTEN: 'localhost:8080' })).toEqual({ host: 'localhost', port: 8080 });
  });
});
