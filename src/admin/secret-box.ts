/**
 * Sealing of the secrets a retried CreateKey/RotateKey must return again (src/admin/requests.ts).
 *
 * Contract:
 *  - AES-256-GCM, with a 256-bit key derived by HKDF-SHA256 from the hash secret
 *    (KEYWARD_HASH_SECRET; info SEAL_INFO), a random 96-bit nonce per seal, and
 *    additional data binding the sealed text to its row (caller, request_id, rpc): a
 *    sealed secret moved to another row does not open.
 *  - The sealed form is `v1.<secretId>.<base64(nonce | ciphertext | tag)>`, where
 *    secretId (src/keys/hash.ts) names the hash secret the key came from. open() uses
 *    the primary secret or, during a rotation, KEYWARD_HASH_SECRET_PREVIOUS; anything
 *    else (an unknown secret, a tampered text) gives undefined, never an exception
 *    that could carry the text.
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { secretId } from '../keys/hash';

const SEAL_INFO = 'keyward/admin-requests/secret/v1';
const NONCE_BYTES = 12;
const TAG_BYTES = 16;

export interface SecretBox {
  seal(plaintext: string, additionalData: string): string;
  open(sealed: string, additionalData: string): string | undefined;
}

function derive(hashSecret: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', hashSecret, Buffer.alloc(0), SEAL_INFO, 32));
}

export function createSecretBox(primary: Buffer, previous?: Buffer): SecretBox {
  const keys = new Map<string, Buffer>();
  const primaryId = secretId(primary);
  keys.set(primaryId, derive(primary));
  if (previous) keys.set(secretId(previous), derive(previous));
  return {
    seal(plaintext, additionalData) {
      const nonce = randomBytes(NONCE_BYTES);
      const cipher = createCipheriv('aes-256-gcm', keys.get(primaryId)!, nonce);
      cipher.setAAD(Buffer.from(additionalData, 'utf8'));
      const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
      return `v1.${primaryId}.${Buffer.concat([nonce, body, cipher.getAuthTag()]).toString('base64')}`;
    },
    open(sealed, additionalData) {
      const [version, id, data] = sealed.split('.');
      const key = id === undefined ? undefined : keys.get(id);
      if (version !== 'v1' || !key || data === undefined) return undefined;
      const raw = Buffer.from(data, 'base64');
      if (raw.length < NONCE_BYTES + TAG_BYTES) return undefined;
      try {
        const decipher = createDecipheriv('aes-256-gcm', key, raw.subarray(0, NONCE_BYTES));
        decipher.setAAD(Buffer.from(additionalData, 'utf8'));
        decipher.setAuthTag(raw.subarray(raw.length - TAG_BYTES));
        return Buffer.concat([decipher.update(raw.subarray(NONCE_BYTES, raw.length - TAG_BYTES)), decipher.final()]).toString('utf8');
      } catch {
        return undefined;
      }
    },
  };
}
