/**
 * `keyward check` as the built CLI (dist/) against a real `keyward serve` whose authz
 * port requires mTLS: allowed with KEYWARD_AUTHZ_TLS_CA and a client certificate (the
 * key on standard input), exit 1 with one error line without the client certificate,
 * and a missing file is a configuration error naming the KEYWARD_AUTHZ_TLS_* variable.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN, startServerProcess, type ServerProcess } from './support/server-process';
import { createPki, writeCa, writePair } from './support/certs';

const TOKEN = 'cli-check-tls-admin-token-0123456789';

describe('keyward check over TLS to the authz port', () => {
  let dir: string;
  let server: ServerProcess;
  let client: { cert: string; key: string };
  let ca: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'keyward-check-tls-'));
    const pki = createPki('check');
    const s = writePair(dir, 'server', pki.server);
    client = writePair(dir, 'client', pki.client);
    ca = writeCa(dir, 'ca', pki.ca);
    server = await startServerProcess({
      KEYWARD_DATABASE_URL: `sqlite:${join(dir, 'keyward.db')}`,
      KEYWARD_ADMIN_TOKEN: TOKEN,
      KEYWARD_AUTHZ_TLS_CERT: s.cert,
      KEYWARD_AUTHZ_TLS_KEY: s.key,
      KEYWARD_AUTHZ_TLS_CLIENT_CA: ca,
    });
  });
  afterAll(async () => {
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const cli = (args: string[], env: Record<string, string> = {}, input?: string) =>
    spawnSync(process.execPath, [BIN, ...args], {
      env: {
        PATH: process.env.PATH,
        KEYWARD_ADMIN_URL: `127.0.0.1:${server.adminPort}`,
        KEYWARD_ADMIN_TOKEN: TOKEN,
        KEYWARD_AUTHZ_URL: `127.0.0.1:${server.authzPort}`,
        ...env,
      },
      encoding: 'utf8',
      timeout: 30000,
      ...(input !== undefined && { input }),
    });
  const mtls = () => ({ KEYWARD_AUTHZ_TLS_CA: ca, KEYWARD_AUTHZ_TLS_CLIENT_CERT: client.cert, KEYWARD_AUTHZ_TLS_CLIENT_KEY: client.key });
  const chat = ['check', '--method', 'POST', '--path', '/v1/chat', '--key-stdin', '--json'];

  it('allowed with the CA and a client certificate; refused (exit 1) without the certificate; the key never printed', () => {
    const org = JSON.parse(cli(['org', 'create', '--name', 'Acme', '--json']).stdout) as { id: string };
    const created = cli(['key', 'create', '--org', org.id, '--name', 'k', '--json']);
    expect(created.status).toBe(0);
    const { id, key } = JSON.parse(created.stdout) as { id: string; key: string };

    const ok = cli(chat, { ...mtls(), KEYWARD_AUTHZ_TLS_SERVER_NAME: 'localhost' }, `${key}\n`);
    expect([ok.status, ok.stderr]).toEqual([0, '']);
    expect(JSON.parse(ok.stdout)).toMatchObject({ allowed: true, code: 'ok', upstream_headers: { 'x-keyward-key-id': id } });

    const denied = cli([...chat.slice(0, -2), '--json'], mtls());
    expect([denied.status, denied.stderr]).toEqual([3, '']);
    expect(JSON.parse(denied.stdout)).toMatchObject({ allowed: false, code: 'missing_api_key', http_status: 401 });

    const noCert = cli(chat, { KEYWARD_AUTHZ_TLS_CA: ca }, key);
    expect([noCert.status, noCert.stdout]).toEqual([1, '']);
    expect(noCert.stderr).toMatch(/^error: unavailable: [^\n]+\n$/);
    for (const r of [ok, denied, noCert]) expect(r.stdout + r.stderr).not.toContain(key);
  });

  it('a missing TLS file is a configuration error naming the variable (exit 2)', () => {
    const r = cli(chat, { ...mtls(), KEYWARD_AUTHZ_TLS_CA: join(dir, 'absent.pem') }, 'kw_live_x');
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/^error: invalid_config: KEYWARD_AUTHZ_TLS_CA: [^\n]+\n$/);
  });
});
