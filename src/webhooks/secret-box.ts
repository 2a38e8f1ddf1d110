/**
 * Webhook signing secrets at rest. A secret must be recoverable (it signs every
 * delivery), so it is sealed, not hashed: AES-256-GCM under a key derived by HKDF-SHA256
 * from KEYWARD_HASH_SECRET (info `keyward webhook secret v1`), the webhook id as
 * associated data (a sealed secret copied to another row does not open). During a
 * hash-secret rotation, secrets sealed under KEYWARD_HASH_SECRET_PREVIOUS still open.
 *
 * Format: `v1.` + base64url(iv[12] | tag[16] | ciphertext).
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';

const INFO = 'keyward webhook secret v1';
const PREFIX = 'v1.';

function deriveKey(hashSecret: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', hashSecret, Buffer.alloc(0), INFO, 32));
}

export class SecretBox {
  private readonly keys: Buffer[];

  /** `primary` seals; `previous` (during a hash-secret rotation) may still open. */
  constructor(primary: Buffer, previous?: Buffer) {
    this.keys = [deriveKey(primary), ...(previous ? [deriveKey(previous)] : [])];
  }

  seal(plaintext: string, webhookId: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.keys[0]!, iv);
    cipher.setAAD(Buffer.from(webhookId, 'utf8'));
    const ct = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return PREFIX + Buffer.concat([iv, cipher.getAuthTag(), ct]).toString('base64url');
  }

  /** The secret; throws (without quoting anything) when no key opens it. */
  open(sealed: string, webhookId: string): string {
    if (!sealed.startsWith(PREFIX)) throw new Error('unknown sealed-secret format');
    const raw = Buffer.from(sealed.slice(PREFIX.length), 'base64url');
    for (const key of this.keys) {
      try {
        const decipher = createDecipheriv('aes-256-gcm', key, raw.subarray(0, 12));
        decipher.setAAD(Buffer.from(webhookId, 'utf8'));
        decipher.setAuthTag(raw.subarray(12, 28));
        return Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString('utf8');
      } catch {
        // try the next key
      }
    }
    throw new Error('the webhook secret cannot be opened with the configured hash secret');
  }
}

/** A new signing secret: `whsec_` + 32 random bytes, base64url. */
export function generateWebhookSecret(): string {
  return `whsec_${randomBytes(32).toString('base64url')}`;
}
