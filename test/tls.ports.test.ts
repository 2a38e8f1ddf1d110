/**
 * TLS on all three ports of a real keyward (port 0, SQLite) with certificates made at
 * test time: Check over TLS and plaintext refused; KeyAdmin over mTLS with the client
 * certificate, refused without one, with one from another CA, and in plaintext;
 * /metrics over HTTPS with mTLS, refused without a client certificate; no key material
 * in the log.
 */
import { credentials } from '@grpc/grpc-js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'node:http';
import { startHarness, TEST_ADMIN_TOKEN, type Harness } from './support/harness';
import { EnvoyClient } from './support/envoy-client';
import { createPki, writeCa, writePair, type TestPki } from './support/certs';
import { grpcCodeOf, httpsGet, servedFingerprint, tlsCredentials, TlsAdminClient } from './support/tls-clients';

const UNAVAILABLE = 14;

describe('TLS and mTLS on the authz, KeyAdmin and operations ports', () => {
  let dir: string;
  let pki: TestPki;
  let other: TestPki;
  let h: Harness;
  const closers: { close(): void }[] = [];
  const track = <T extends { close(): void }>(c: T): T => {
    closers.push(c);
    return c;
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'keyward-tls-'));
    pki = createPki('main');
    other = createPki('other');
    const server = writePair(dir, 'server', pki.server);
    const clientCa = writeCa(dir, 'client-ca', pki.ca);
    h = await startHarness('sqlite', {
      httpListen: '127.0.0.1:0',
      tls: {
        authz: server,
        admin: { ...server, clientCa },
        http: { ...server, clientCa },
        reloadSeconds: 10,
      },
    });
  });
  afterAll(async () => {
    for (const c of closers) c.close();
    await h.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves Check over TLS with the configured certificate and refuses plaintext', async () => {
    const admin = track(
      new TlsAdminClient(
        h.app.adminPort,
        tlsCredentials({ ca: pki.ca.cert, cert: pki.client.cert, key: pki.client.key }),
        TEST_ADMIN_TOKEN,
      ),
    );
    const org = await admin.createOrganization('Acme');
    const { secret } = await admin.createKey(org.id, 'k');

    const envoy = track(new EnvoyClient(h.app.authzPort, tlsCredentials({ ca: pki.ca.cert })));
    const ok = await envoy.check({ headers: { authorization: `Bearer ${secret}` } });
    expect(ok.http_response).toBe('ok_response');
    const denied = await envoy.check({});
    expect(denied.denied_response?.status?.code).toBe(401);
    expect(await servedFingerprint(h.app.authzPort)).toBe(pki.server.fingerprint);

    const plain = track(new EnvoyClient(h.app.authzPort, credentials.createInsecure()));
    expect(await grpcCodeOf(plain.check({ headers: { authorization: `Bearer ${secret}` } }))).toBe(UNAVAILABLE);
    // A client that trusts another CA refuses keyward's certificate.
    const distrustful = track(new EnvoyClient(h.app.authzPort, tlsCredentials({ ca: other.ca.cert })));
    expect(await grpcCodeOf(distrustful.check({}))).toBe(UNAVAILABLE);
  });

  it('requires a client certificate from the client CA on KeyAdmin', async () => {
    const good = track(
      new TlsAdminClient(
        h.app.adminPort,
        tlsCredentials({ ca: pki.ca.cert, cert: pki.client.cert, key: pki.client.key }),
        TEST_ADMIN_TOKEN,
      ),
    );
    expect((await good.createOrganization('Mutual')).name).toBe('Mutual');

    const none = track(new TlsAdminClient(h.app.adminPort, tlsCredentials({ ca: pki.ca.cert }), TEST_ADMIN_TOKEN));
    expect(await grpcCodeOf(none.createOrganization('NoCert'))).toBe(UNAVAILABLE);
    const foreign = track(
      new TlsAdminClient(
        h.app.adminPort,
        tlsCredentials({ ca: pki.ca.cert, cert: other.client.cert, key: other.client.key }),
        TEST_ADMIN_TOKEN,
      ),
    );
    expect(await grpcCodeOf(foreign.createOrganization('ForeignCert'))).toBe(UNAVAILABLE);
    const plain = track(new TlsAdminClient(h.app.adminPort, credentials.createInsecure(), TEST_ADMIN_TOKEN));
    expect(await grpcCodeOf(plain.createOrganization('Plain'))).toBe(UNAVAILABLE);
  });

  it('serves /metrics over HTTPS to a client with a certificate from the client CA only', async () => {
    const port = h.app.httpPort!;
    const m = await httpsGet(port, '/metrics', { ca: pki.ca.cert, cert: pki.client.cert, key: pki.client.key });
    expect(m.status).toBe(200);
    expect(m.body).toContain('keyward_check_decisions_total');
    expect((await httpsGet(port, '/healthz', { ca: pki.ca.cert, cert: pki.client.cert, key: pki.client.key })).body).toBe('ok\n');

    await expect(httpsGet(port, '/metrics', { ca: pki.ca.cert })).rejects.toThrow();
    await expect(httpsGet(port, '/metrics', { ca: pki.ca.cert, cert: other.client.cert, key: other.client.key })).rejects.toThrow();
    // Plain HTTP gets no answer from a TLS port.
    await expect(
      new Promise((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port, path: '/metrics', agent: false }, resolve);
        req.on('error', reject);
        req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
        req.end();
      }),
    ).rejects.toThrow();
  });

  it('logs certificate fingerprints and never key material', () => {
    const text = h.logs.join('');
    const loaded = h.logs
      .filter((l) => l.includes('"TLS certificate loaded"'))
      .map((l) => JSON.parse(l) as { port: string; fingerprint: string; clientCertificates: string });
    expect(loaded.map((l) => [l.port, l.fingerprint, l.clientCertificates]).sort()).toEqual([
      ['admin', pki.server.fingerprint, 'required'],
      ['authz', pki.server.fingerprint, 'not requested'],
      ['http', pki.server.fingerprint, 'required'],
    ]);
    expect(text).not.toContain('PRIVATE KEY');
    for (const pem of [pki.server.key, pki.client.key]) {
      const body = pem
        .split('\n')
        .filter((l) => l && !l.startsWith('-----'))
        .join('');
      expect(text).not.toContain(body.slice(0, 40));
      expect(text).not.toContain(body.slice(-40));
    }
    const serving = JSON.parse(h.logs.find((l) => l.includes('"keyward serving"'))!) as { tls: string[] };
    expect(serving.tls.sort()).toEqual(['admin', 'authz', 'http']);
  });
});
