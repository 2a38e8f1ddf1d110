/**
 * Certificate reload without a restart, on a real keyward: new connections get a
 * replaced certificate (atomic rename and in-place rewrite alike); a half-written
 * certificate or a certificate without its key keeps the last good pair serving, with
 * a warning naming the variable and no key material; a replaced client CA changes
 * which client certificates KeyAdmin accepts; HTTPS follows too; and files changed where
 * no folder event reports them (behind a symlink) are found by the periodic read.
 */
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startHarness, TEST_ADMIN_TOKEN, type Harness } from './support/harness';
import { EnvoyClient } from './support/envoy-client';
import { createPki, writeCa, writePair, type Issued, type TestPki } from './support/certs';
import { eventually, grpcCodeOf, httpsGet, servedFingerprint, tlsCredentials, TlsAdminClient } from './support/tls-clients';
import { ServerTls } from '../src/tls/server';
import { createLogger } from '../src/util/logger';

const UNAVAILABLE = 14;

interface LogLine {
  level: string;
  msg: string;
  port?: string;
  variable?: string;
  problem?: string;
  serving?: string;
  fingerprint?: string;
}

describe('TLS certificate reload', () => {
  let dir: string;
  let pki: TestPki;
  let h: Harness;
  let authz: { cert: string; key: string };
  let clientCa: string;
  const closers: { close(): void }[] = [];
  const track = <T extends { close(): void }>(c: T): T => {
    closers.push(c);
    return c;
  };
  const lines = (from = 0): LogLine[] => h.logs.slice(from).map((l) => JSON.parse(l) as LogLine);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'keyward-tls-reload-'));
    pki = createPki('reload');
    authz = writePair(join(dir, 'authz'), 'tls', pki.server);
    const admin = writePair(join(dir, 'admin'), 'tls', pki.server);
    const http = writePair(join(dir, 'http'), 'tls', pki.server);
    clientCa = writeCa(join(dir, 'admin'), 'client-ca', pki.ca);
    h = await startHarness('sqlite', {
      httpListen: '127.0.0.1:0',
      // Changes are seen through file-system events; the periodic read is the fallback.
      tls: { authz, admin: { ...admin, clientCa }, http, reloadSeconds: 1 },
    });
  });
  afterAll(async () => {
    for (const c of closers) c.close();
    await h.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Replaces a file the way Kubernetes and most tools do: write beside it, rename over it. */
  const replace = (path: string, text: string) => {
    writeFileSync(`${path}.new`, text);
    renameSync(`${path}.new`, path);
  };

  it('serves a replaced certificate to new connections, with no restart', async () => {
    const port = h.app.authzPort;
    expect(await servedFingerprint(port)).toBe(pki.server.fingerprint);
    const next = pki.ca.issue({ cn: 'keyward server 2', hosts: ['127.0.0.1'], usage: 'server' });
    replace(authz.key, next.key);
    replace(authz.cert, next.cert);
    await eventually(async () => (await servedFingerprint(port)) === next.fingerprint, 15_000, 'the new certificate');
    expect(h.app.authzPort).toBe(port);
    // A new gRPC channel verifies the new certificate and is answered.
    const envoy = track(new EnvoyClient(port, tlsCredentials({ ca: pki.ca.cert })));
    expect((await envoy.check({})).denied_response?.status?.code).toBe(401);
    expect(lines().some((l) => l.msg === 'TLS certificate reloaded' && l.port === 'authz' && l.fingerprint === next.fingerprint)).toBe(
      true,
    );
  });

  /** The authz port's value of a TLS metric, from the registry /metrics serves. */
  const tlsMetric = async (name: string): Promise<number> => {
    const text = await h.app.metrics.registry.metrics();
    const line = text.split('\n').find((l) => l.startsWith(`${name}{port="authz"}`));
    return line === undefined ? NaN : Number(line.split(' ').pop());
  };

  it('keeps the last good pair while the files are half-written or mismatched', async () => {
    const port = h.app.authzPort;
    const serving = await servedFingerprint(port);
    const next: Issued = pki.ca.issue({ cn: 'keyward server 3', hosts: ['127.0.0.1'], usage: 'server' });
    const warningsFrom = (mark: number, variable: string) =>
      lines(mark).filter(
        (l) =>
          l.level === 'warn' &&
          l.port === 'authz' &&
          l.variable === variable &&
          l.msg === 'TLS files are not a valid set; still serving the last good certificate',
      );

    // 1. A certificate cut off mid-write.
    let mark = h.logs.length;
    writeFileSync(authz.cert, next.cert.slice(0, Math.floor(next.cert.length / 2)));
    await eventually(() => warningsFrom(mark, 'KEYWARD_AUTHZ_TLS_CERT').length > 0, 15_000, 'the warning about the certificate');
    expect(warningsFrom(mark, 'KEYWARD_AUTHZ_TLS_CERT')[0]!.serving).toBe(serving);
    expect(await servedFingerprint(port)).toBe(serving);
    expect(await tlsMetric('keyward_tls_files_valid')).toBe(0);
    const rejected = await tlsMetric('keyward_tls_reloads_rejected_total');
    expect(rejected).toBeGreaterThanOrEqual(1);
    const envoy = track(new EnvoyClient(port, tlsCredentials({ ca: pki.ca.cert })));
    expect((await envoy.check({})).denied_response?.status?.code).toBe(401);

    // 2. The whole new certificate, the old key still in place.
    mark = h.logs.length;
    writeFileSync(authz.cert, next.cert);
    await eventually(() => warningsFrom(mark, 'KEYWARD_AUTHZ_TLS_KEY').length > 0, 15_000, 'the warning about the key');
    expect(warningsFrom(mark, 'KEYWARD_AUTHZ_TLS_KEY')[0]!.problem).toContain(
      'is not the private key of the certificate in KEYWARD_AUTHZ_TLS_CERT',
    );
    expect(await servedFingerprint(port)).toBe(serving);
    const again = track(new EnvoyClient(port, tlsCredentials({ ca: pki.ca.cert })));
    expect((await again.check({})).denied_response?.status?.code).toBe(401);

    // 3. The key arrives: the new pair is served.
    writeFileSync(authz.key, next.key);
    await eventually(async () => (await servedFingerprint(port)) === next.fingerprint, 15_000, 'the new pair');
    expect(await tlsMetric('keyward_tls_files_valid')).toBe(1);
    expect(await tlsMetric('keyward_tls_reloads_rejected_total')).toBeGreaterThan(rejected);
    expect(await tlsMetric('keyward_tls_certificate_not_after_seconds')).toBeGreaterThan(Date.now() / 1000);

    const text = h.logs.join('');
    expect(text).not.toContain('PRIVATE KEY');
    expect(text).not.toContain(next.key.split('\n')[1]!.slice(0, 40));
  });

  it('follows a replaced client CA on the KeyAdmin port', async () => {
    const port = h.app.adminPort;
    const other = createPki('reload-other');
    const mine = () =>
      new TlsAdminClient(port, tlsCredentials({ ca: pki.ca.cert, cert: pki.client.cert, key: pki.client.key }), TEST_ADMIN_TOKEN);
    const theirs = () =>
      new TlsAdminClient(port, tlsCredentials({ ca: pki.ca.cert, cert: other.client.cert, key: other.client.key }), TEST_ADMIN_TOKEN);
    expect((await track(mine()).createOrganization('Before')).name).toBe('Before');
    expect(await grpcCodeOf(track(theirs()).createOrganization('Refused'))).toBe(UNAVAILABLE);

    replace(clientCa, other.ca.cert);
    // Each attempt is a new channel, so a new connection.
    await eventually(
      async () => {
        const c = track(theirs());
        return (await c.createOrganization('After')).name === 'After';
      },
      15_000,
      'the new client CA',
    );
    expect(await grpcCodeOf(track(mine()).createOrganization('NowRefused'))).toBe(UNAVAILABLE);
  });

  it('serves a replaced certificate on the HTTPS port', async () => {
    const port = h.app.httpPort!;
    const paths = { cert: join(dir, 'http', 'tls.crt'), key: join(dir, 'http', 'tls.key') };
    const next = pki.ca.issue({ cn: 'keyward metrics 2', hosts: ['127.0.0.1'], usage: 'server' });
    expect(await servedFingerprint(port, { alpn: 'http/1.1' })).toBe(pki.server.fingerprint);
    replace(paths.key, next.key);
    replace(paths.cert, next.cert);
    await eventually(
      async () => (await servedFingerprint(port, { alpn: 'http/1.1' })) === next.fingerprint,
      15_000,
      'the new HTTPS certificate',
    );
    expect((await httpsGet(port, '/healthz', { ca: pki.ca.cert })).status).toBe(200);
  });

  it('picks up files changed behind a symlink, which no folder event reports, by the periodic read', async () => {
    const real = join(dir, 'real');
    const linked = join(dir, 'linked');
    const files = writePair(real, 'tls', pki.server);
    mkdirSync(linked);
    symlinkSync(files.cert, join(linked, 'tls.crt'));
    symlinkSync(files.key, join(linked, 'tls.key'));
    const t = ServerTls.open(
      'http',
      { cert: join(linked, 'tls.crt'), key: join(linked, 'tls.key') },
      { logger: createLogger('silent'), reloadIntervalMs: 300 },
    );
    try {
      expect(t.current.fingerprint).toBe(pki.server.fingerprint);
      const next = pki.ca.issue({ cn: 'behind a symlink', hosts: ['127.0.0.1'], usage: 'server' });
      writeFileSync(files.key, next.key);
      writeFileSync(files.cert, next.cert);
      await eventually(() => t.current.fingerprint === next.fingerprint, 15_000, 'the periodic read');
    } finally {
      t.close();
    }
  });
});
