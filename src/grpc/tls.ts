/**
 * Transport security for keyward's three ports (authz gRPC, KeyAdmin gRPC, operations
 * HTTP) and for the CLI's channel to KeyAdmin. One module serves gRPC and HTTPS alike.
 *
 * Contract:
 *  - Files are PEM: a certificate (optionally followed by its chain), a private key
 *    (unencrypted, PKCS#8 / PKCS#1 / SEC1), and, for mTLS, a CA bundle. A set is valid
 *    only when every file reads and parses, the key belongs to the first certificate,
 *    and OpenSSL accepts the whole set as one secure context.
 *  - An invalid set is a TlsFileError naming the environment variable of the file at
 *    fault and the problem (the path, never file contents). At start it stops the
 *    process (config.ts turns it into a ConfigError).
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
import { X509Certificate, createHash, createPrivateKey, type KeyObject } from 'node:crypto';
import { readFileSync, watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { ServerOptions as HttpsServerOptions } from 'node:https';
import { createSecureContext, type SecureContextOptions, type Server as TlsServer } from 'node:tls';
import { credentials, experimental, ServerCredentials, type ChannelCredentials } from '@grpc/grpc-js';
import type { Logger } from 'pino';

/** The ports that can serve TLS; each has its KEYWARD_<PORT>_TLS_* variables. */
export type TlsPort = 'authz' | 'admin' | 'http';

/** A server port's TLS files (paths), from KEYWARD_<PORT>_TLS_CERT, _KEY, _CLIENT_CA. */
export interface TlsFiles {
  /** The server certificate, optionally followed by intermediate certificates. */
  cert: string;
  /** The certificate's private key (unencrypted). */
  key: string;
  /** CA bundle that client certificates must chain to; set, it turns on mTLS. */
  clientCa?: string;
}

/** The CLI's TLS files for KeyAdmin (paths), each optional. */
export interface ClientTlsFiles {
  /** KEYWARD_ADMIN_TLS_CA: CA bundle to trust; unset, the system's roots. */
  ca?: string;
  /** KEYWARD_ADMIN_TLS_CLIENT_CERT: the client certificate for mTLS (with clientKey). */
  clientCert?: string;
  /** KEYWARD_ADMIN_TLS_CLIENT_KEY: its private key. */
  clientKey?: string;
}

/** A file of a TLS set that cannot be used; `variable` names the file's setting. */
export class TlsFileError extends Error {
  constructor(
    readonly variable: string,
    readonly problem: string,
  ) {
    super(`${variable}: ${problem}`);
    this.name = 'TlsFileError';
  }
}

/** The variable names of one port's files, e.g. KEYWARD_AUTHZ_TLS_CERT. */
export function tlsVariables(port: TlsPort): { cert: string; key: string; clientCa: string } {
  const p = `KEYWARD_${port.toUpperCase()}_TLS`;
  return { cert: `${p}_CERT`, key: `${p}_KEY`, clientCa: `${p}_CLIENT_CA` };
}

export const CLIENT_TLS_VARIABLES = {
  ca: 'KEYWARD_ADMIN_TLS_CA',
  clientCert: 'KEYWARD_ADMIN_TLS_CLIENT_CERT',
  clientKey: 'KEYWARD_ADMIN_TLS_CLIENT_KEY',
} as const;

interface Source {
  path: string;
  variable: string;
}

/** Raw file contents, or the error code of a file that could not be read. */
type Raw = Buffer | { error: string };

/** A checked set; `cert` and `key` come together. */
interface Material {
  cert?: Buffer;
  key?: Buffer;
  ca?: Buffer;
  leaf?: X509Certificate;
}

/** A server's checked set. */
export interface ServerMaterial {
  cert: Buffer;
  key: Buffer;
  ca?: Buffer;
  /** SHA-256 fingerprint of the (first) certificate, colon-separated hex. */
  fingerprint: string;
  subject: string;
  notAfter: Date;
}

const CERT_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

function readSync(path: string): Raw {
  try {
    return readFileSync(path);
  } catch (e) {
    return { error: (e as NodeJS.ErrnoException).code ?? 'error' };
  }
}

async function readAsync(path: string): Promise<Raw> {
  try {
    return await readFile(path);
  } catch (e) {
    return { error: (e as NodeJS.ErrnoException).code ?? 'error' };
  }
}

function contents(raw: Raw, s: Source): Buffer {
  if (!Buffer.isBuffer(raw)) throw new TlsFileError(s.variable, `cannot read ${s.path}: ${raw.error}`);
  return raw;
}

/** Every certificate of a PEM file; the first is the leaf. A cut-off block is an error. */
function certificates(pem: Buffer, s: Source): X509Certificate[] {
  const text = pem.toString('latin1');
  const blocks = text.match(CERT_BLOCK) ?? [];
  const begins = text.split('-----BEGIN ').length - 1;
  if (blocks.length === 0) throw new TlsFileError(s.variable, `${s.path} holds no PEM certificate`);
  if (begins !== blocks.length) throw new TlsFileError(s.variable, `${s.path} holds an incomplete or non-certificate PEM block`);
  return blocks.map((b, i) => {
    try {
      return new X509Certificate(b);
    } catch {
      throw new TlsFileError(s.variable, `${s.path}: certificate ${i + 1} is not a valid X.509 certificate`);
    }
  });
}

function privateKey(pem: Buffer, s: Source): KeyObject {
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(pem.toString('latin1'))) {
    throw new TlsFileError(s.variable, `${s.path} holds no PEM private key`);
  }
  try {
    return createPrivateKey({ key: pem, format: 'pem' });
  } catch {
    // The parser's message is not passed on: it could quote the input.
    throw new TlsFileError(s.variable, `${s.path} is not a valid unencrypted PEM private key`);
  }
}

/** Checks a set read from disk; throws TlsFileError naming the file at fault. */
function check(files: { cert?: Source; key?: Source; ca?: Source }, raw: { cert?: Raw; key?: Raw; ca?: Raw }): Material {
  const out: Material = {};
  if (files.cert && files.key) {
    const cert = contents(raw.cert!, files.cert);
    const key = contents(raw.key!, files.key);
    const leaf = certificates(cert, files.cert)[0]!;
    const keyObject = privateKey(key, files.key);
    let matches = false;
    try {
      matches = leaf.checkPrivateKey(keyObject);
    } catch {
      // e.g. a key of another algorithm: not this certificate's key either
    }
    if (!matches) {
      throw new TlsFileError(files.key.variable, `${files.key.path} is not the private key of the certificate in ${files.cert.variable}`);
    }
    Object.assign(out, { cert, key, leaf });
  }
  if (files.ca) {
    out.ca = contents(raw.ca!, files.ca);
    certificates(out.ca, files.ca);
  }
  try {
    createSecureContext({ cert: out.cert, key: out.key, ca: out.ca });
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    throw new TlsFileError(
      (files.cert ?? files.ca)!.variable,
      `the TLS library refused the files${typeof code === 'string' ? ` (${code})` : ''}`,
    );
  }
  return out;
}

function serverSources(port: TlsPort, files: TlsFiles): { cert: Source; key: Source; ca?: Source } {
  const v = tlsVariables(port);
  return {
    cert: { path: files.cert, variable: v.cert },
    key: { path: files.key, variable: v.key },
    ...(files.clientCa !== undefined && { ca: { path: files.clientCa, variable: v.clientCa } }),
  };
}

function serverMaterial(m: Material): ServerMaterial {
  return {
    cert: m.cert!,
    key: m.key!,
    ca: m.ca,
    fingerprint: m.leaf!.fingerprint256,
    subject: m.leaf!.subject.replace(/\n/g, ', '),
    notAfter: new Date(m.leaf!.validTo),
  };
}

/** Reads and checks a server port's files now; throws TlsFileError. */
export function readServerTls(port: TlsPort, files: TlsFiles): ServerMaterial {
  const s = serverSources(port, files);
  return serverMaterial(check(s, { cert: readSync(s.cert.path), key: readSync(s.key.path), ca: s.ca && readSync(s.ca.path) }));
}

/**
 * Reads and checks the CLI's files; throws TlsFileError. A client certificate needs
 * its key and the other way round.
 */
export function readClientTls(files: ClientTlsFiles): { ca?: Buffer; cert?: Buffer; key?: Buffer } {
  const v = CLIENT_TLS_VARIABLES;
  if ((files.clientCert === undefined) !== (files.clientKey === undefined)) {
    const [missing, given] = files.clientCert === undefined ? [v.clientCert, v.clientKey] : [v.clientKey, v.clientCert];
    throw new TlsFileError(missing, `must be set together with ${given}`);
  }
  const s = {
    ...(files.clientCert !== undefined && { cert: { path: files.clientCert, variable: v.clientCert } }),
    ...(files.clientKey !== undefined && { key: { path: files.clientKey, variable: v.clientKey } }),
    ...(files.ca !== undefined && { ca: { path: files.ca, variable: v.ca } }),
  };
  const m = check(s, { cert: s.cert && readSync(s.cert.path), key: s.key && readSync(s.key.path), ca: s.ca && readSync(s.ca.path) });
  return { ca: m.ca, cert: m.cert, key: m.key };
}

/** The CLI's channel credentials: TLS trusting `ca` (else the system roots), with a client certificate when given. */
export function clientChannelCredentials(files: ClientTlsFiles): ChannelCredentials {
  const m = readClientTls(files);
  return credentials.createSsl(m.ca ?? null, m.key ?? null, m.cert ?? null);
}

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
    private readonly o: ServerTlsOptions,
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
        o.logger.debug({ port, dir }, 'TLS: cannot watch the folder; relying on the periodic read');
      }
    }
    this.timer = setInterval(() => void this.reload().catch(() => undefined), o.reloadIntervalMs);
    this.timer.unref();
  }

  static open(port: TlsPort, files: TlsFiles, o: ServerTlsOptions): ServerTls {
    return new ServerTls(port, files, o);
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
    this.o.logger.warn(
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
    this.o.logger.info(fields, msg);
    if (m.notAfter.getTime() <= now) this.o.logger.warn(fields, 'TLS certificate has expired');
  }
}

function digest(raw: { cert?: Raw; key?: Raw; ca?: Raw }): string {
  const h = createHash('sha256');
  for (const r of [raw.cert, raw.key, raw.ca]) {
    if (r === undefined) h.update('-');
    else if (Buffer.isBuffer(r)) h.update(`${r.length}:`).update(r);
    else h.update(`!${r.error}`);
    h.update('\0');
  }
  return h.digest('base64');
}
