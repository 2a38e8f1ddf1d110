/**
 * Clients for the TLS tests: a KeyAdmin client over any channel credentials, a raw TLS
 * handshake that reports the certificate a new connection is served, and an HTTPS GET.
 */
import { credentials, Metadata, type ChannelCredentials, type ServiceError } from '@grpc/grpc-js';
import { request } from 'node:https';
import { connect } from 'node:tls';
import { KeyAdminClient } from '../../src/gen/keyward/admin/v1/key_admin';
import * as pb from '../../src/gen/keyward/admin/v1/key_admin';

export interface ClientPem {
  /** CA to trust (PEM). */
  ca?: string;
  /** Client certificate and key (PEM), for mTLS. */
  cert?: string;
  key?: string;
}

export function tlsCredentials(o: ClientPem): ChannelCredentials {
  return credentials.createSsl(o.ca ? Buffer.from(o.ca) : null, o.key ? Buffer.from(o.key) : null, o.cert ? Buffer.from(o.cert) : null);
}

/** A KeyAdmin client on `creds` that calls ListOrganizations / CreateOrganization with a bearer token. */
export class TlsAdminClient {
  private readonly client: KeyAdminClient;
  constructor(
    port: number,
    creds: ChannelCredentials,
    private readonly token: string,
  ) {
    this.client = new KeyAdminClient(`127.0.0.1:${port}`, creds);
  }

  createOrganization(name: string): Promise<pb.Organization> {
    return this.unary((md, cb) =>
      this.client.createOrganization(pb.CreateOrganizationRequest.fromPartial({ name }), md, { deadline: Date.now() + 10_000 }, cb),
    );
  }

  createKey(organizationId: string, name: string): Promise<pb.CreateKeyResponse> {
    return this.unary((md, cb) =>
      this.client.createKey(pb.CreateKeyRequest.fromPartial({ organizationId, name }), md, { deadline: Date.now() + 10_000 }, cb),
    );
  }

  private unary<T>(fn: (md: Metadata, cb: (e: ServiceError | null, r?: T) => void) => unknown): Promise<T> {
    const md = new Metadata();
    md.set('authorization', `Bearer ${this.token}`);
    return new Promise((resolve, reject) => fn(md, (e, r) => (e ? reject(e) : resolve(r as T))));
  }

  close(): void {
    this.client.close();
  }
}

/** The gRPC status code a promise fails with (throws if it succeeds). */
export async function grpcCodeOf(p: Promise<unknown>): Promise<number> {
  try {
    await p;
  } catch (e) {
    return (e as ServiceError).code;
  }
  throw new Error('expected the call to fail');
}

/**
 * Opens a new TLS connection and returns the SHA-256 fingerprint of the certificate
 * the server presents. The server's certificate is not verified here: this reads what
 * is served. ALPN: h2 as gRPC clients offer it (default), http/1.1 for the HTTPS port.
 */
export function servedFingerprint(port: number, o: ClientPem & { alpn?: string } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(
      { host: '127.0.0.1', port, ALPNProtocols: [o.alpn ?? 'h2'], rejectUnauthorized: false, ...(o.cert && { cert: o.cert, key: o.key }) },
      () => {
        const fp = socket.getPeerX509Certificate()?.fingerprint256;
        socket.destroy();
        if (fp) resolve(fp);
        else reject(new Error('no peer certificate'));
      },
    );
    socket.on('error', reject);
  });
}

/** GET over HTTPS; rejects when the connection or handshake fails. */
export function httpsGet(port: number, path: string, o: ClientPem): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: 'GET', ca: o.ca, cert: o.cert, key: o.key, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
    req.end();
  });
}

/** Polls `fn` until it returns true; fails after `ms`. */
export async function eventually(fn: () => Promise<boolean> | boolean, ms = 15_000, what = 'the condition'): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      if (await fn()) return;
    } catch {
      // not yet
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
