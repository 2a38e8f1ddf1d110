/**
 * Secrets kept recoverable at rest ("sealed", not hashed): the secret a retried
 * CreateKey/RotateKey returns again (src/admin/requests.ts) and webhook signing secrets
 * (src/admin/webhooks.ts seals, src/webhooks/worker.ts opens). One module, one format.
 *
 * Contract:
 *  - AES-256-GCM; a random 96-bit nonce per seal; a 256-bit key per purpose, derived by
 *    HKDF-SHA256 (no salt) from the hash secret (KEYWARD_HASH_SECRET) with the purpose's
 *    info (PURPOSE_INFO): a text sealed for one purpose never opens under another.
 *  - Additional data binds the text to its row (the caller's choice: caller, request_id
 *    and rpc for admin requests; the webhook id for webhooks): moved to another row, it
 *    does not open.
 *  - Sealed form: `v1.<secretId>.<base64url(nonce[12] | ciphertext | tag[16])>`; secretId
 *    (src/keys/hash.ts) names the hash secret the key was derived from, so open() picks
 *    the primary secret or, during a rotation, KEYWARD_HASH_SECRET_PREVIOUS, without
 *    trial. seal() always uses the primary.
 *  - open() never throws: an unknown version or secret id, a malformed or tampered text,
 *    or other additional data all give undefined. No error, log or exception here ever
 *    carries a plaintext, a sealed text or a key.
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { secretId } from './hash';

export type SecretPurpose = 'admin-requests' | 'webhooks';

const PURPOSE_INFO: Record<SecretPurpose, string> = {
  'admin-requests': 'keyward/admin-requests/secret/v1',
  webhooks: 'keyward/webhooks/secret/v1',
};
const VERSION = 'v1';
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const BASE64URL = /^[A-Za-z0-9_-]+$/;

export interface SecretBox {
  readonly purpose: SecretPurpose;
  /** The sealed form of `plaintext`, under the primary hash secret. */
  seal(plaintext: string, additionalData: string): string;
  /** The plaintext, or undefined when the text does not open (never throws). */
  open(sealed: string, additionalData: string): string | undefined;
}

function derive(purpose: SecretPurpose, hashSecret: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', hashSecret, Buffer.alloc(0), PURPOSE_INFO[purpose], 32));
}

/** A box for one purpose: `primary` seals and opens; `previous` (during a rotation) opens. */
export function createSecretBox(purpose: SecretPurpose, primary: Buffer, previous?: Buffer): SecretBox {
  const primaryId = secretId(primary);
  const primaryKey = derive(purpose, primary);
  const keys = new Map<string, Buffer>([[primaryId, primaryKey]]);
  if (previous) keys.set(secretId(previous), derive(purpose, previous));
  return {
    purpose,
    seal(plaintext, additionalData) {
      const nonce = randomBytes(NONCE_BYTES);
      const cipher = createCipheriv('aes-256-gcm', primaryKey, nonce);
      cipher.setAAD(Buffer.from(additionalData, 'utf8'));
      const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
      return `${VERSION}.${primaryId}.${Buffer.concat([nonce, body, cipher.getAuthTag()]).toString('base64url')}`;
    },
    open(sealed, additionalData) {
      const parts = sealed.split('.');
      if (parts.length !== 3 || parts[0] !== VERSION || !BASE64URL.test(parts[2]!)) return undefined;
      const key = keys.get(parts[1]!);
      const raw = Buffer.from(parts[2]!, 'base64url');
      if (!key || raw.length < NONCE_BYTES + TAG_BYTES) return undefined;
      try {
        const decipher = createDecipheriv('aes-256-gcm', key, raw.subarray(0, NONCE_BYTES));
        decipher.setAAD(Buffer.from(additionalData, 'utf8'));
        decipher.setAuthTag(raw.subarray(raw.length - TAG_BYTES));
        const body = raw.subarray(NONCE_BYTES, raw.length - TAG_BYTES);
        return Buffer.concat([decipher.update(body), decipher.final()]).toString('utf8');
      } catch {
        return undefined;
      }
    },
  };
}
