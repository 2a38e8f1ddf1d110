/**
 * Keyed hashing of credentials: HMAC-SHA256 with the server's hash secret.
 * Only these hashes are stored; lookups are by hash, so raw secrets are never
 * compared. Keep the secret out of logs and errors.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export interface CredentialHasher {
  /** Hex HMAC-SHA256 of the credential (what the store holds). */
  hash(credential: string): string;
  /** The same HMAC's 32 bytes as a latin1 string (the key cache's compact key). */
  digest(credential: string): string;
  /** Constant-time comparison of a credential with a stored hash. */
  matches(credential: string, storedHash: string): boolean;
}

export function createHasher(secret: Buffer): CredentialHasher {
  const key = Buffer.from(secret);
  const mac = (credential: string) => createHmac('sha256', key).update(credential, 'utf8');
  const hash = (credential: string) => mac(credential).digest('hex');
  return {
    hash,
    digest: (credential) => mac(credential).digest('binary'),
    matches(credential, storedHash) {
      const a = Buffer.from(hash(credential), 'hex');
      const b = Buffer.from(storedHash, 'hex');
      return a.length === b.length && timingSafeEqual(a, b);
    },
  };
}
