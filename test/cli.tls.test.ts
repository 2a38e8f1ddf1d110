/**
 * The CLI against a KeyAdmin port with mTLS, on a real `keyward serve` process (the
 * built dist/): it works with the CA and a client certificate (also with a server name
 * other than the address), and fails with one `error:` line and exit 1 without the
 * client certificate, without TLS, or when the server's certificate does not carry the
 * expected name; a missing file is a configuration error (exit 2).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN, startServerProcess, type ServerProcess } from './support/server-process';
import { createPki, writeCa, writePair, type TestPki } from './support/certs';

const TOKEN = 'cli-tls-admin-token-0123456789';

describe('keyward CLI over TLS', () => {
  let dir: string;
  let pki: TestPki;
  let server: ServerProcess;
  let client: { cert: string; key: string };
  let ca: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'keyward-cli-tls-'));
    pki = createPki('cli');
    const s = writePair(dir, 'server', pki.server);
    client = writePair(dir, 'client', pki.client);
    ca = writeCa(dir, 'ca', pki.ca);
    server = await startServerProcess({
      KEYWARD_DATABASE_URL: `sqlite:${join(dir, 'keyward.db')}`,
      KEYWARD_ADMIN_TOKEN: TOKEN,
      KEYWARD_ADMIN_TLS_CERT: s.cert,
      KEYWARD_ADMIN_TLS_KEY: s.key,
      KEYWARD_ADMIN_TLS_CLIENT_CA: ca,
    });
  });
  afterAll(async () => {
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const cli = (args: string[], env: Record<string, string>) =>
    spawnSync(process.execPath, [BIN, ...args], {
      env: { PATH: process.env.PATH, KEYWARD_ADMIN_URL: `127.0.0.1:${server.adminPort}`, KEYWARD_ADMIN_TOKEN: TOKEN, ...env },
      encoding: 'utf8',
      timeout: 30000,
    });
  const mtls = () => ({ KEYWARD_ADMIN_TLS_CA: ca, KEYWARD_ADMIN_TLS_CLIENT_CERT: client.cert, KEYWARD_ADMIN_TLS_CLIENT_KEY: client.key });

  it('manages organizations with the CA and a client certificate', () => {
    const r = cli(['org', 'create', '--name', 'Acme', '--json'], mtls());
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const org = JSON.parse(r.stdout) as { id: string; name: string };
    expect(org.name).toBe('Acme');
    const listed = cli(['org', 'list', '--json'], { ...mtls(), KEYWARD_ADMIN_URL: `localhost:${server.adminPort}` });
    expect(listed.status).toBe(0);
    expect(JSON.stringify(JSON.parse(listed.stdout))).toContain(org.id);
    // The name to check may differ from the address (e.g. a port-forward).
    const named = cli(['org', 'get', org.id, '--json'], { ...mtls(), KEYWARD_ADMIN_TLS_SERVER_NAME: 'localhost' });
    expect(named.status).toBe(0);
    expect(JSON.parse(named.stdout)).toMatchObject({ id: org.id });
  });

  it.each([
    ['without a client certificate', () => ({ KEYWARD_ADMIN_TLS_CA: ca })],
    ['in plaintext', () => ({})],
    ['when the certificate does not carry the expected name', () => ({ ...mtls(), KEYWARD_ADMIN_TLS_SERVER_NAME: 'admin.example.com' })],
    [
      'when the server certificate is not trusted (system roots)',
      () => ({ KEYWARD_ADMIN_TLS_CLIENT_CERT: client.cert, KEYWARD_ADMIN_TLS_CLIENT_KEY: client.key }),
    ],
  ])('fails %s with one error line and exit 1', (_what, env) => {
    const r = cli(['org', 'list', '--json'], env());
    expect(r.status).toBe(1);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^error: unavailable: /);
    expect(r.stderr).not.toContain(TOKEN);
    expect(r.stdout).toBe('');
  });

  it('reports a missing TLS file as a configuration error naming the variable', () => {
    const r = cli(['org', 'list'], { ...mtls(), KEYWARD_ADMIN_TLS_CLIENT_KEY: join(dir, 'missing.key') });
    expect(r.status).toBe(2);
    expect(r.stderr.trim()).toMatch(/^error: invalid_config: KEYWARD_ADMIN_TLS_CLIENT_KEY: cannot read /);
  });
});
