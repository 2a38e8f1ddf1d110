/**
 * Test certificates made at run time with node:crypto alone: a small DER encoder builds
 * X.509 v3 certificates (ECDSA P-256, SHA-256) for a CA, servers and clients, so the
 * TLS tests need neither openssl nor a certificate library.
 */
import { createHash, generateKeyPairSync, randomBytes, sign, X509Certificate, type KeyObject } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

// --- DER --------------------------------------------------------------------------
function tlv(tag: number, content: Buffer): Buffer {
  const n = content.length;
  let len: Buffer;
  if (n < 0x80) len = Buffer.from([n]);
  else {
    const bytes: number[] = [];
    for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
    len = Buffer.from([0x80 | bytes.length, ...bytes]);
  }
  return Buffer.concat([Buffer.from([tag]), len, content]);
}
const seq = (...items: Buffer[]) => tlv(0x30, Buffer.concat(items));
const set = (...items: Buffer[]) => tlv(0x31, Buffer.concat(items));
const octets = (b: Buffer) => tlv(0x04, b);
const bits = (b: Buffer, unused = 0) => tlv(0x03, Buffer.concat([Buffer.from([unused]), b]));
const utf8 = (s: string) => tlv(0x0c, Buffer.from(s, 'utf8'));
const TRUE = Buffer.from([0x01, 0x01, 0xff]);

function integer(b: Buffer): Buffer {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  const v = b.subarray(i);
  return tlv(0x02, v[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), v]) : v);
}

function oid(dotted: string): Buffer {
  const parts = dotted.split('.').map(Number);
  const out = [40 * parts[0]! + parts[1]!];
  for (const p of parts.slice(2)) {
    const chunk = [p & 0x7f];
    for (let v = Math.floor(p / 128); v > 0; v = Math.floor(v / 128)) chunk.unshift(0x80 | (v & 0x7f));
    out.push(...chunk);
  }
  return tlv(0x06, Buffer.from(out));
}

function time(d: Date): Buffer {
  const iso = d.toISOString().replace(/[-:T]/g, '').slice(0, 14) + 'Z'; // YYYYMMDDHHMMSSZ
  return d.getUTCFullYear() < 2050 ? tlv(0x17, Buffer.from(iso.slice(2))) : tlv(0x18, Buffer.from(iso));
}

const name = (cn: string) => seq(set(seq(oid('2.5.4.10'), utf8('keyward tests'))), set(seq(oid('2.5.4.3'), utf8(cn))));
const extension = (id: string, value: Buffer, critical = false) => seq(oid(id), ...(critical ? [TRUE] : []), octets(value));
const ECDSA_SHA256 = seq(oid('1.2.840.10045.4.3.2'));

function subjectAltNames(hosts: string[]): Buffer {
  return seq(
    ...hosts.map((h) =>
      /^\d+\.\d+\.\d+\.\d+$/.test(h) ? tlv(0x87, Buffer.from(h.split('.').map(Number))) : tlv(0x82, Buffer.from(h, 'ascii')),
    ),
  );
}

// --- certificates -------------------------------------------------------------------
export interface Issued {
  /** PEM certificate. */
  cert: string;
  /** PEM private key (PKCS#8). */
  key: string;
  /** SHA-256 fingerprint as Node prints it (X509Certificate.fingerprint256). */
  fingerprint: string;
}

export interface TestCa extends Issued {
  /** Issues a certificate signed by this CA. */
  issue(o: { cn: string; hosts?: string[]; usage: 'server' | 'client' }): Issued;
}

interface Signer {
  name: Buffer;
  key: KeyObject;
  keyId: Buffer;
}

function certificate(o: { subject: Buffer; publicKey: KeyObject; issuer: Signer; extensions: Buffer[] }): string {
  const spki = o.publicKey.export({ type: 'spki', format: 'der' });
  const serial = randomBytes(16);
  serial[0]! &= 0x7f;
  const now = Date.now();
  const tbs = seq(
    tlv(0xa0, integer(Buffer.from([2]))), // v3
    integer(serial),
    ECDSA_SHA256,
    o.issuer.name,
    seq(time(new Date(now - 3600_000)), time(new Date(now + 30 * 86400_000))),
    o.subject,
    spki,
    tlv(0xa3, seq(...o.extensions, extension('2.5.29.35', seq(tlv(0x80, o.issuer.keyId))))),
  );
  const signature = sign('sha256', tbs, o.issuer.key); // DER ECDSA-Sig-Value
  const der = seq(tbs, ECDSA_SHA256, bits(signature));
  return `-----BEGIN CERTIFICATE-----\n${der
    .toString('base64')
    .replace(/(.{64})/g, '$1\n')
    .replace(/\n?$/, '\n')}-----END CERTIFICATE-----\n`;
}

function keyId(publicKey: KeyObject): Buffer {
  return createHash('sha1')
    .update(publicKey.export({ type: 'spki', format: 'der' }))
    .digest();
}

function pair(): { privateKey: KeyObject; publicKey: KeyObject } {
  return generateKeyPairSync('ec', { namedCurve: 'P-256' });
}

function issued(cert: string, key: KeyObject): Issued {
  return { cert, key: key.export({ type: 'pkcs8', format: 'pem' }) as string, fingerprint: new X509Certificate(cert).fingerprint256 };
}

/** A self-signed CA that can issue server and client certificates. */
export function createCa(cn = 'keyward test CA'): TestCa {
  const { privateKey, publicKey } = pair();
  const self: Signer = { name: name(cn), key: privateKey, keyId: keyId(publicKey) };
  const cert = certificate({
    subject: self.name,
    publicKey,
    issuer: self,
    extensions: [
      extension('2.5.29.19', seq(TRUE), true), // basicConstraints: CA
      extension('2.5.29.15', bits(Buffer.from([0x86]), 1), true), // keyUsage: digitalSignature, keyCertSign, cRLSign
      extension('2.5.29.14', octets(self.keyId)),
    ],
  });
  return {
    ...issued(cert, privateKey),
    issue(o) {
      const leaf = pair();
      const leafCert = certificate({
        subject: name(o.cn),
        publicKey: leaf.publicKey,
        issuer: self,
        extensions: [
          extension('2.5.29.19', seq(), true),
          extension('2.5.29.15', bits(Buffer.from([0x80]), 7), true), // digitalSignature
          extension('2.5.29.37', seq(oid(o.usage === 'server' ? '1.3.6.1.5.5.7.3.1' : '1.3.6.1.5.5.7.3.2'))),
          ...(o.hosts?.length ? [extension('2.5.29.17', subjectAltNames(o.hosts))] : []),
          extension('2.5.29.14', octets(keyId(leaf.publicKey))),
        ],
      });
      return issued(leafCert, leaf.privateKey);
    },
  };
}

/** The usual cast: a CA, a server certificate for 127.0.0.1/localhost, a client certificate. */
export interface TestPki {
  ca: TestCa;
  server: Issued;
  client: Issued;
}

export function createPki(label = 'keyward test'): TestPki {
  const ca = createCa(`${label} CA`);
  return {
    ca,
    server: ca.issue({ cn: 'keyward server', hosts: ['localhost', '127.0.0.1'], usage: 'server' }),
    client: ca.issue({ cn: 'keyward client', usage: 'client' }),
  };
}

/** Writes name.crt / name.key (and returns their paths) in `dir`. */
export function writePair(dir: string, nameStem: string, c: Issued): { cert: string; key: string } {
  mkdirSync(dir, { recursive: true });
  const cert = join(dir, `${nameStem}.crt`);
  const key = join(dir, `${nameStem}.key`);
  writeFileSync(cert, c.cert);
  writeFileSync(key, c.key, { mode: 0o600 });
  return { cert, key };
}

export function writeCa(dir: string, nameStem: string, ca: Issued): string {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${nameStem}.crt`);
  writeFileSync(path, ca.cert);
  return path;
}
