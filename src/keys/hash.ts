/**
 * Keyed hashing of credentials: HMAC-SHA256 with the server's hash secret.
 * Only these hashes are stored; lookups are by hash, so raw secrets are never
 * compared. Keep the secret out of logs and errors.
 *
 * Each secret has an id (secretId): a short fingerprint that names it without
 * revealing it, stored beside every hash (hash_secret_id) and logged at start, so
 * operators can see which secret hashed what while the secret is being rotated.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export interface CredentialHasher {
  /** secretId() of this hasher's secret: 16 hex digits, not secret. */
  readonly id: string;
  /** Hex HMAC-SHA256 of the credential (what the store holds). */
  hash(credential: string): string;
  /** The same HMAC's 32 bytes as a latin1 string (the key cache's compact key). */
  digest(credential: string): string;
  /** Constant-time comparison of a credential with a stored hash. */
  matches(credential: string, storedHash: string): boolean;
}

/**
 * The id of a hash secret: the first 8 bytes of HMAC-SHA256(secret, "keyward-secret-id"),
 * in hex. One-way, and unrelated to any credential's hash, so it may be logged and stored.
 */
export function secretId(secret: Buffer): string {
  return createHmac('sha256', secret).update('keyward-secret-id', 'utf8').digest().subarray(0, 8).toString('hex');
}

export function createHasher(secret: Buffer): CredentialHasher {
  const key = Buffer.from(secret);
  const mac = (credential: string) => createHmac('sha256', key).update(credential, 'utf8');
  const hash = (credential: string) => mac(credential).digest('hex');
  return {
    id: secretId(key),
    hash,
    digest: (credential) => mac(credential).digest('binary'),
    matches(credential, storedHash) {
      const a = Buffer.from(hash(credential), 'hex');
      const b = Buffer.from(storedHash, 'hex');
      return a.length === b.length && timingSafeEqual(a, b);
    },
  };
}
