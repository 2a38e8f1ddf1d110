/**
 * Transport security for keyward's three ports (authz gRPC, KeyAdmin gRPC, operations
 * HTTP): ServerTls serves gRPC and HTTPS alike. The files and their checks are in
 * ./files.ts, the CLI's side in ./client.ts.
 *
 * Contract:
 *  - Files are PEM: a certificate (optionally followed by its chain), a private key
 *    (unencrypted, PKCS#8 / PKCS#1 / SEC1), and, for mTLS, a CA bundle. A set is valid
 *    only when every file reads and parses, the key belongs to the first certificate,
 *    and OpenSSL accepts the whole set as one secure context.
 *  - An invalid set is a TlsFileError naming the environment variable of the file at
 *    fault and the problem (the path, never file contents). At start it stops the
 *    process (src/config turns it into a ConfigError).
 *  - A server's files are reloaded without a restart (ServerTls): each folder holding
 *    one of them is watched (fs.watch, which also sees Kubernetes' atomic `..data`
 *    symlink swap of mounted secrets), and every file is read again each
 *    KEYWARD_TLS_RELOAD_SECONDS whatever the watchers say (network filesystems, a
 *    symlink into another folder, a watcher that failed). New connections get the new
 *    set once it is valid; open connections keep theirs. A set that is not valid (a
 *    half-written file, a certificate whose key has not been written yet) is not used:
 *    the last good set keeps serving and a warning names the variable and the problem,
 *    repeated at most once a minute while the files stay invalid.
 *  - With a client CA, a client must present a certificate that chains to it, or the
 *    handshake fails (mTLS); without one no client certificate is asked for.
 *  - Logs carry the port, the variable, the certificate's SHA-256 fingerprint, subject
 *    and expiry: never key material.
 */
import { watch, type FSWatcher } from 'node:fs';
import { dirname } from 'node:path';
import type { ServerOptions as HttpsServerOptions } from 'node:https';
import type { SecureContextOptions, Server as TlsServer } from 'node:tls';
import { experimental, ServerCredentials } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import {
  check,
  digest,
  readAsync,
  readSync,
  serverMaterial,
  serverSources,
  TlsFileError,
  type ServerMaterial,
  type Source,
  type TlsFiles,
  type TlsPort,
} from './files';

export interface ServerTlsOptions {
  logger: Logger;
  /** How often the files are read again regardless of the watchers, ms. */
  reloadIntervalMs: number;
}

const SETTLE_MS = 200;
const REWARN_MS = 60_000;

/**
 * One port's certificate set, kept current from its files: see the module comment.
 * `open` reads the files once and throws TlsFileError if they are not a valid set.
 */
export class ServerTls {
  private material: ServerMaterial;
  private readonly sources: { cert: Source; key: Source; ca?: Source };
  private readonly listeners = new Set<(m: ServerMaterial) => void>();
  private readonly watchers: FSWatcher[] = [];
  private readonly timer: NodeJS.Timeout;
  private settle?: NodeJS.Timeout;
  /** Digest of the contents last looked at, valid or not, so unchanged files cost no parsing. */
  private seen: string;
  private lastWarning = { digest: '', at: 0 };
  private lastError?: TlsFileError;
  private running?: Promise<void>;
  private again = false;
  private closed = false;
  private readonly counts = { reloads: 0, rejected: 0 };
  private filesValid = true;

  private constructor(
    readonly port: TlsPort,
    files: TlsFiles,
    private readonly options: ServerTlsOptions,
  ) {
    this.sources = serverSources(port, files);
    const raw = {
      cert: readSync(this.sources.cert.path),
      key: readSync(this.sources.key.path),
      ca: this.sources.ca && readSync(this.sources.ca.path),
    };
    this.material = serverMaterial(check(this.sources, raw));
    this.seen = digest(raw);
    this.logLoaded('TLS certificate loaded');
    for (const dir of new Set(
      [this.sources.cert, this.sources.key, this.sources.ca].filter((s) => s !== undefined).map((s) => dirname(s.path)),
    )) {
      try {
        const w = watch(dir, { persistent: false }, () => this.changed());
        w.on('error', () => w.close()); // the periodic read still covers this folder
        this.watchers.push(w);
      } catch {
        options.logger.debug({ port, dir }, 'TLS: cannot watch the folder; relying on the periodic read');
      }
    }
    this.timer = setInterval(() => void this.reload().catch(() => undefined), options.reloadIntervalMs);
    this.timer.unref();
  }

  static open(port: TlsPort, files: TlsFiles, options: ServerTlsOptions): ServerTls {
    return new ServerTls(port, files, options);
  }

  /** The set new connections get. */
  get current(): ServerMaterial {
    return this.material;
  }

  /** For metrics: the serving certificate's expiry, reloads, and whether the files on disk are a valid set. */
  stats(): { notAfterSeconds: number; reloads: number; rejected: number; filesValid: boolean } {
    return { notAfterSeconds: this.material.notAfter.getTime() / 1000, ...this.counts, filesValid: this.filesValid };
  }

  get requiresClientCertificate(): boolean {
    return this.sources.ca !== undefined;
  }

  /** Calls `fn` with every new valid set; returns the unsubscribe function. */
  onChange(fn: (m: ServerMaterial) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /**
   * gRPC server credentials that follow this set. grpc-js (1.14) swaps the secure
   * context of its listening servers when a certificate provider reports a new set;
   * the provider here reports only sets that were checked, so grpc-js never sees a
   * broken one (which would make it drop every new connection).
   */
  grpcCredentials(): ServerCredentials {
    const identity = new Set<experimental.IdentityCertificateUpdateListener>();
    const cas = new Set<experimental.CaCertificateUpdateListener>();
    const publish = (m: ServerMaterial) => {
      for (const l of cas) if (m.ca) l({ caCertificate: m.ca });
      for (const l of identity) l({ certificate: m.cert, privateKey: m.key });
    };
    this.onChange(publish);
    // Listeners are told the current set on the next tick: grpc-js subscribes before it
    // registers the server that is to receive the update.
    const provider: experimental.CertificateProvider = {
      addCaCertificateListener: (l) => {
        cas.add(l);
        process.nextTick(() => cas.has(l) && this.material.ca && l({ caCertificate: this.material.ca }));
      },
      removeCaCertificateListener: (l) => void cas.delete(l),
      addIdentityCertificateListener: (l) => {
        identity.add(l);
        process.nextTick(() => identity.has(l) && l({ certificate: this.material.cert, privateKey: this.material.key }));
      },
      removeIdentityCertificateListener: (l) => void identity.delete(l),
    };
    // Argument order as grpc-js 1.14 uses it: identity provider, CA provider (null: no
    // client certificate asked for), whether a client certificate is required.
    return experimental.createCertificateProviderServerCredentials(
      provider,
      this.requiresClientCertificate ? provider : null,
      this.requiresClientCertificate,
    );
  }

  /** Options for https.createServer; pass the server to attach() to follow reloads. */
  httpsOptions(): HttpsServerOptions {
    const mtls = this.requiresClientCertificate;
    return { ...this.contextOptions(), requestCert: mtls, rejectUnauthorized: mtls };
  }

  /** Makes a TLS (HTTPS) server hand each new valid set to new connections. */
  attach(server: TlsServer): void {
    const off = this.onChange(() => server.setSecureContext(this.contextOptions()));
    server.once('close', off);
  }

  /** Reads the files now and switches to them if they changed and are a valid set. */
  reload(): Promise<void> {
    if (this.closed) return Promise.resolve();
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      try {
        do {
          this.again = false;
          await this.readOnce();
        } while (this.again && !this.closed);
      } finally {
        this.running = undefined;
      }
    })();
    return this.running;
  }

  close(): void {
    this.closed = true;
    clearInterval(this.timer);
    if (this.settle) clearTimeout(this.settle);
    for (const w of this.watchers) w.close();
    this.listeners.clear();
  }

  private contextOptions(): SecureContextOptions {
    const m = this.material;
    return { cert: m.cert, key: m.key, ...(m.ca && { ca: m.ca }) };
  }

  /** A watcher saw something in a folder: read once things have settled. */
  private changed(): void {
    if (this.closed) return;
    if (this.settle) clearTimeout(this.settle);
    this.settle = setTimeout(() => void this.reload().catch(() => undefined), SETTLE_MS);
    this.settle.unref();
  }

  private async readOnce(): Promise<void> {
    const s = this.sources;
    const [cert, key, ca] = await Promise.all([
      readAsync(s.cert.path),
      readAsync(s.key.path),
      s.ca ? readAsync(s.ca.path) : Promise.resolve(undefined),
    ]);
    const raw = { cert, key, ca };
    const d = digest(raw);
    if (this.closed) return;
    if (d === this.seen) {
      if (d === this.lastWarning.digest) this.warnInvalid(d, undefined);
      return;
    }
    this.seen = d;
    let next: ServerMaterial;
    try {
      next = serverMaterial(check(s, raw));
    } catch (e) {
      this.counts.rejected++;
      this.filesValid = false;
      this.warnInvalid(
        d,
        e instanceof TlsFileError
          ? e
          : new TlsFileError(s.cert.variable, `the files could not be checked (${e instanceof Error ? e.name : 'error'})`),
      );
      return;
    }
    this.counts.reloads++;
    this.filesValid = true;
    this.lastWarning = { digest: '', at: 0 };
    this.material = next;
    for (const l of this.listeners) l(next);
    this.logLoaded('TLS certificate reloaded');
  }

  /** Warns about an invalid set: at once when it is new, then at most once a minute. */
  private warnInvalid(d: string, e: TlsFileError | undefined): void {
    const now = Date.now();
    if (e) this.lastError = e;
    else if (now - this.lastWarning.at < REWARN_MS) return;
    this.lastWarning = { digest: d, at: now };
    this.options.logger.warn(
      { port: this.port, variable: this.lastError?.variable, problem: this.lastError?.problem, serving: this.material.fingerprint },
      'TLS files are not a valid set; still serving the last good certificate',
    );
  }

  private logLoaded(msg: string): void {
    const m = this.material;
    // Real time, as OpenSSL's own validity checks use.
    const now = Date.now();
    const fields = {
      port: this.port,
      fingerprint: m.fingerprint,
      subject: m.subject,
      notAfter: m.notAfter.toISOString(),
      clientCertificates: this.requiresClientCertificate ? 'required' : 'not requested',
    };
    this.options.logger.info(fields, msg);
    if (m.notAfter.getTime() <= now) this.options.logger.warn(fields, 'TLS certificate has expired');
  }
}
