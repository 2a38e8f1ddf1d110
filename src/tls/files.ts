/**
 * TLS files: which variables name them, reading them, and checking that they form a
 * valid set (see ./server.ts for the contract). Errors name the variable of the file at
 * fault and the problem: the path, never file contents.
 */
import { X509Certificate, createHash, createPrivateKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createSecureContext } from 'node:tls';

/** The ports that can serve TLS; each has its KEYWARD_<PORT>_TLS_* variables. */
export type TlsPort = 'authz' | 'admin' | 'http' | 'console';

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

/** The CLI's client TLS variables of one port it calls: KEYWARD_<PORT>_TLS_CA, _CLIENT_CERT, _CLIENT_KEY. */
export function clientTlsVariables(port: 'admin' | 'authz'): { ca: string; clientCert: string; clientKey: string } {
  const p = `KEYWARD_${port.toUpperCase()}_TLS`;
  return { ca: `${p}_CA`, clientCert: `${p}_CLIENT_CERT`, clientKey: `${p}_CLIENT_KEY` };
}

export const CLIENT_TLS_VARIABLES = clientTlsVariables('admin');

/** One file of a set: its path and the variable that named it. */
export interface Source {
  path: string;
  variable: string;
}

/** Raw file contents, or the error code of a file that could not be read. */
export type Raw = Buffer | { error: string };

/** A checked set; `cert` and `key` come together. */
export interface Material {
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

/** A file's contents, or the error code that kept it from being read. */
export function readSync(path: string): Raw {
  try {
    return readFileSync(path);
  } catch (e) {
    return { error: (e as NodeJS.ErrnoException).code ?? 'error' };
  }
}

export async function readAsync(path: string): Promise<Raw> {
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
export function check(files: { cert?: Source; key?: Source; ca?: Source }, raw: { cert?: Raw; key?: Raw; ca?: Raw }): Material {
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

/** A server port's files with the variables that name them. */
export function serverSources(port: TlsPort, files: TlsFiles): { cert: Source; key: Source; ca?: Source } {
  const v = tlsVariables(port);
  return {
    cert: { path: files.cert, variable: v.cert },
    key: { path: files.key, variable: v.key },
    ...(files.clientCa !== undefined && { ca: { path: files.clientCa, variable: v.clientCa } }),
  };
}

/** A checked server set with the certificate's fingerprint, subject and expiry. */
export function serverMaterial(m: Material): ServerMaterial {
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

/** A digest of raw contents (or read errors), to tell whether files changed. */
export function digest(raw: { cert?: Raw; key?: Raw; ca?: Raw }): string {
  const h = createHash('sha256');
  for (const r of [raw.cert, raw.key, raw.ca]) {
    if (r === undefined) h.update('-');
    else if (Buffer.isBuffer(r)) h.update(`${r.length}:`).update(r);
    else h.update(`!${r.error}`);
    h.update('\0');
  }
  return h.digest('base64');
}
